"""Encryption at rest: ``EncryptedStore`` keeps every session value of any store AES-256-GCM encrypted.

The wrapped store sees ciphertexts only, each a JSON string sealed by ``sealing.Keyring``: the first
key encrypts, every key decrypts, so keys rotate without a flag day.

Binding. Each record gets a random *record id* at creation, kept in one hidden field,
``BINDING_FIELD``, sealed with the store key as associated data; every value is sealed with the record
id and its field name as associated data. A value copied to another field or another session, or a
whole record copied under another key, fails authentication, and ``load`` raises
``CorruptRecordError``: the engine starts a fresh session and logs it. A rename (regeneration,
rotation) re-seals only the hidden field for the new key, in the same atomic step, so the values a
concurrent request writes meanwhile stay valid.

Calls to the wrapped store: a read is one; a write is one, once this process knows the record's id
(from its own load, create or rename of that key; else one load first). A write with ``expected``
(``SESSION_CONCURRENCY=version_check``, and the guard of an automatic rotation) costs one load more:
the wrapped store compares ciphertexts, so the expected plaintexts are checked against a fresh load and
the ciphertexts found are what the write expects. What was opened or written is remembered
(``opened.py``), so a session read again costs no decryption.

What it does not protect: field names, the metadata (creation, expiry, version) and the number and
size of the values are in the clear; someone who can write to the store can delete a session or put
back an older value of one of its own fields (replay), though never forge or move one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..exceptions import SessionConfigError
from ..logs import log, ref
from ..state import state_field
from .base import (
    CorruptRecordError,
    SessionChange,
    SessionRecord,
    SessionStore,
    WriteResult,
    json_document,
    json_value_problem,
)
from .index import IndexedSession, UserIndexStore
from .opened import Known, OpenedRecords
from .sealing import Keyring, key_id  # imports cryptography: the [crypto] extra

__all__ = ["BINDING_FIELD", "EncryptedStore", "Keyring", "key_id"]

BINDING_FIELD = state_field("enc")
"""The hidden field holding the record id, sealed to the store key. A ``$fs:`` name: no model field
and no ``request.session`` key can take it, and the wrapper never hands it out."""
_RECORD_ID_BYTES = 16
_FIELD_AAD = b"fastapi_sessions:v1:field\x00"
_RECORD_AAD = b"fastapi_sessions:v1:record\x00"


def _check_takes_expected(store: SessionStore) -> None:
    """Refuse a store whose writes cannot be made conditional: the wrapper's writes all are."""
    for method in ("update", "rename"):
        parameters = inspect.signature(getattr(store, method)).parameters.values()
        if not any(p.name == "expected" or p.kind is p.VAR_KEYWORD for p in parameters):
            raise SessionConfigError(
                f"Encryption at rest (SESSION_ENCRYPTION_KEYS) needs a store whose update() and rename() "
                f"take expected=; {type(store).__name__}.{method}() does not. A store written for "
                "expected_version= must switch to expected= (see 'Custom stores' in the docs)."
            )


def _name(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


class EncryptedStore:
    """A store that keeps ``inner``'s values encrypted with ``keys`` (32 bytes each, newest first).

    Every door wraps its store in one when ``SESSION_ENCRYPTION_KEYS`` is set; build it yourself only
    to use a store outside a door. When ``inner`` keeps users' indexes (``UserIndexStore``), so does
    the wrapper (it is then an instance of a subclass). Other public attributes of ``inner`` (``prefix``,
    optional capabilities such as ``purge_expired``) are reached through it.
    """

    def __new__(cls, inner: SessionStore, keys: Sequence[bytes]) -> EncryptedStore:
        if cls is EncryptedStore and isinstance(inner, UserIndexStore):
            cls = _EncryptedIndexStore
        return super().__new__(cls)

    def __init__(self, inner: SessionStore, keys: Sequence[bytes]) -> None:
        _check_takes_expected(inner)
        self.inner = inner
        """The wrapped store, which holds ciphertexts only."""
        self._keys = Keyring(keys)
        self._opened = OpenedRecords()
        """What this wrapper knows of the records it read or wrote: ids, and values it decrypted."""

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        # Only what the class does not define: the inner store's public extras.
        if name.startswith("_") or name == "inner" or name.startswith("index_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the record id, and the values sealed with it -----------------------------------------------

    def _known_record(self, key: str, fields: Mapping[str, bytes]) -> Known:
        """The record stored under ``key``, its id authenticated; ``CorruptRecordError`` if it was not
        sealed for that key."""
        binding = fields.get(BINDING_FIELD)
        if binding is None:
            raise CorruptRecordError("is not encrypted (written before SESSION_ENCRYPTION_KEYS was set?)")
        known = self._opened.get(key)
        if known is not None and known.binding == binding:
            return known
        try:
            record_id = self._keys.open(binding, _RECORD_AAD + key.encode())
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"does not belong under its key: {exc}") from None
        if len(record_id) != _RECORD_ID_BYTES:
            raise CorruptRecordError("holds a malformed record id")
        return self._opened.add(key, binding, record_id)

    def _plain(self, key: str, known: Known, name: str, sealed: bytes) -> bytes:
        """The plaintext of the field ``name`` of ``known``, stored as ``sealed``: remembered, else
        decrypted (and remembered)."""
        seen = known.values.get(name)
        if seen is not None and seen[0] == sealed:
            return seen[1]
        try:
            plain = self._keys.open(sealed, _FIELD_AAD + known.record_id + _name(name))
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"field {name[:40]!a}: {exc}") from None
        self._opened.note(key, known, name, sealed, plain)
        return plain

    def _decrypted(self, key: str, record: SessionRecord) -> SessionRecord:
        """``record`` as stored under ``key``, decrypted, without the hidden field."""
        document = record.document
        known = self._opened.get(key)
        if document is not None and known is not None and known.opened is not None:
            # The very bytes opened before (same binding, same ciphertexts): the same plaintexts.
            # MemoryStore hands its document over, and this spares a read unpacking its fields
            # and the engine parsing them.
            seen, opened = known.opened
            if seen == document:
                return opened._replace(meta=record.meta)
        stored = record.fields
        known = self._known_record(key, stored)
        fields = {
            name: self._plain(key, known, name, sealed)
            for name, sealed in stored.items()
            if name != BINDING_FIELD
        }
        if document is None:
            return SessionRecord(fields, record.meta)
        opened = SessionRecord(MappingProxyType(fields), record.meta, json_document(fields))
        self._opened.keep_opened(key, known, document, opened)
        return opened

    def _sealed(self, record_id: bytes, fields: Mapping[str, bytes]) -> dict[str, bytes]:
        """``fields`` encrypted for the record ``record_id``; refuses what a store must not hold."""
        prefix = _FIELD_AAD + record_id
        sealed = {}
        for name, value in fields.items():
            if name == BINDING_FIELD:
                raise ValueError(f"{BINDING_FIELD!r} is EncryptedStore's own field. Nothing was written.")
            # Checked here, where the value is still readable: the wrapped store sees a JSON string.
            problem = json_value_problem(value)
            if problem:
                raise ValueError(
                    f"A session field must be one JSON value; {name!r} is not ({problem}). Nothing was "
                    "written."
                )
            sealed[name] = self._keys.seal(value, prefix + _name(name))
        return sealed

    def _change(
        self, record_id: bytes, change: SessionChange, binding: bytes | None = None
    ) -> SessionChange:
        """``change`` with its values sealed; with ``binding``, the record's new hidden field too."""
        if BINDING_FIELD in change.removed:
            raise ValueError(f"{BINDING_FIELD!r} is EncryptedStore's own field. Nothing was written.")
        fields = self._sealed(record_id, change.fields)
        if binding is not None:
            fields[BINDING_FIELD] = binding
        return change._replace(fields=fields)

    def _written(self, key: str, known: Known, change: SessionChange, sealed: SessionChange) -> None:
        """Remember what a successful write of ``change`` (stored as ``sealed``) left under ``key``."""
        for name, plain in change.fields.items():
            self._opened.note(key, known, name, sealed.fields[name], plain)
        for name in change.removed:
            self._opened.drop(key, known, name)

    async def _fresh(self, key: str) -> Known | None:
        """The record under ``key``, from a load; None if there is none (or none this wrapper can
        read, which no write may touch)."""
        self._opened.forget(key)
        record = await self.inner.load(key)
        if record is None:
            return None
        try:
            return self._known_record(key, record.fields)
        except CorruptRecordError:
            return None

    async def _expected(
        self, key: str, expected: Mapping[str, bytes | None]
    ) -> tuple[Known, Mapping[str, bytes | None]] | WriteResult:
        """The record under ``key`` and what the wrapped store must find for ``expected`` (stored
        ciphertexts), from a fresh load; ``MISSING`` or ``CONFLICT`` when that load settles it."""
        record = await self.inner.load(key)
        if record is None:
            return WriteResult.MISSING
        stored = record.fields
        try:
            known = self._known_record(key, stored)
        except CorruptRecordError:
            return WriteResult.MISSING
        translated: dict[str, bytes | None] = {BINDING_FIELD: known.binding}
        for name, value in expected.items():
            sealed = stored.get(name)
            if name == BINDING_FIELD or (sealed is None) != (value is None):
                return WriteResult.CONFLICT
            if sealed is not None:
                try:
                    if self._plain(key, known, name, sealed) != value:
                        return WriteResult.CONFLICT
                except CorruptRecordError:
                    return WriteResult.CONFLICT
            translated[name] = sealed
        return known, translated

    # -- the store protocol --------------------------------------------------------------------------

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        record = await self.inner.load(key, touch=touch)
        return None if record is None else self._decrypted(key, record)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        record_id = os.urandom(_RECORD_ID_BYTES)
        binding = self._keys.seal(record_id, _RECORD_AAD + key.encode())
        fields = self._sealed(record_id, record.fields)
        fields[BINDING_FIELD] = binding
        result = await self.inner.create(key, SessionRecord(fields, record.meta), ttl=ttl)
        if result is WriteResult.OK:
            known = self._opened.add(key, binding, record_id)
            for name, plain in record.fields.items():
                self._opened.note(key, known, name, fields[name], plain)
        return result

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if expected is not None:
            found = await self._expected(key, expected)
            if isinstance(found, WriteResult):
                return found
            return await self._updated(key, found[0], change, ttl, found[1])
        known = self._opened.get(key)
        remembered = known is not None
        if known is None:
            known = await self._fresh(key)
        while known is not None:
            # Expecting the binding: a record deleted and created anew under this key (another id)
            # must never get values sealed for the old one.
            result = await self._updated(key, known, change, ttl, {BINDING_FIELD: known.binding})
            if result is not WriteResult.CONFLICT or not remembered:
                return result
            remembered, known = False, await self._fresh(key)  # what was remembered was stale
        return WriteResult.MISSING

    async def _updated(
        self,
        key: str,
        known: Known,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None],
    ) -> WriteResult:
        sealed = self._change(known.record_id, change)
        result = await self.inner.update(key, sealed, ttl=ttl, expected=expected)
        if result is WriteResult.OK:
            self._written(key, known, change, sealed)
        return result

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if expected is not None:
            found = await self._expected(old_key, expected)
            if isinstance(found, WriteResult):
                return found
            return await self._moved(old_key, new_key, found[0], change, ttl, found[1])
        known = self._opened.get(old_key)
        remembered = known is not None
        if known is None:
            known = await self._fresh(old_key)
        while known is not None:
            result = await self._moved(old_key, new_key, known, change, ttl, {BINDING_FIELD: known.binding})
            if result is not WriteResult.CONFLICT or not remembered:
                return result
            remembered, known = False, await self._fresh(old_key)
        return WriteResult.MISSING

    async def _moved(
        self,
        old_key: str,
        new_key: str,
        known: Known,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None],
    ) -> WriteResult:
        """Rename with the record id re-sealed for ``new_key``: the one field a move rewrites."""
        binding = self._keys.seal(known.record_id, _RECORD_AAD + new_key.encode())
        sealed = self._change(known.record_id, change, binding)
        result = await self.inner.rename(old_key, new_key, sealed, ttl=ttl, expected=expected)
        if result is WriteResult.OK:
            values = known.values if self._opened.get(old_key) is known else {}
            self._opened.forget(old_key)
            moved = self._opened.add(new_key, binding, known.record_id)
            for name, (stored, plain) in values.items():  # still true: same record id, same names
                self._opened.note(new_key, moved, name, stored, plain)
            self._written(new_key, moved, change, sealed)
        return result

    async def delete(self, key: str) -> None:
        self._opened.forget(key)
        await self.inner.delete(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _EncryptedIndexStore(EncryptedStore):
    """An ``EncryptedStore`` over a ``UserIndexStore``: the index, with its records decrypted."""

    def __init__(self, inner: SessionStore, keys: Sequence[bytes]) -> None:
        super().__init__(inner, keys)
        assert isinstance(inner, UserIndexStore)  # noqa: S101 - EncryptedStore.__new__ checked it
        self._index: UserIndexStore = inner

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        await self._index.index_add(user, key, until=until, now=now)

    async def index_remove(self, user: str, key: str) -> None:
        await self._index.index_remove(user, key)

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:
        listed = await self._index.index_sessions(user, now=now)
        sessions = []
        for entry in listed:
            try:
                record = self._decrypted(entry.key, entry.record)
            except CorruptRecordError as exc:
                log.warning("Session %s left out of its user's list: it %s", ref(entry.key), exc)
                continue
            sessions.append(entry._replace(record=record))
        return sessions
