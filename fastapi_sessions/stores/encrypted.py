"""Encryption at rest: ``EncryptedStore`` keeps every session value of any store AES-256-GCM encrypted.

The wrapped store sees ciphertexts only, each a JSON string (so every store keeps it as it keeps any
value): base64 of a format byte, the id of the key that sealed it (4 bytes), a fresh random nonce
(12 bytes) and the ciphertext with its tag. The first key encrypts, every key decrypts: the key id
picks the key without trying them all, so keys rotate without a flag day.

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
the ciphertexts found are what the write expects.

What it does not protect: field names, the metadata (creation, expiry, version) and the number and
size of the values are in the clear; someone who can write to the store can delete a session or put
back an older value of one of its own fields (replay), though never forge or move one.
"""

from __future__ import annotations

import binascii
import hashlib
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - exercised in the run without extras
    raise ImportError(
        "Encrypting sessions at rest needs the cryptography package: pip install "
        "'pselfastapise-async[crypto]'",
        name="cryptography",
    ) from exc

from ..encryption import KEY_BYTES
from ..exceptions import SessionConfigError
from ..logs import log, ref
from ..state import state_field
from .base import (
    CorruptRecordError,
    SessionChange,
    SessionRecord,
    SessionStore,
    WriteResult,
    json_value_problem,
)
from .index import IndexedSession, UserIndexStore

__all__ = ["BINDING_FIELD", "EncryptedStore", "Keyring", "key_id"]

BINDING_FIELD = state_field("enc")
"""The hidden field holding the record id, sealed to the store key. A ``$fs:`` name: no model field
and no ``request.session`` key can take it, and the wrapper never hands it out."""
_FORMAT = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_RECORD_ID_BYTES = 16
_HEADER = 1 + _KEY_ID_BYTES
_FIELD_AAD = b"fastapi_sessions:v1:field\x00"
_RECORD_AAD = b"fastapi_sessions:v1:record\x00"
_REMEMBERED = 16_384
"""Record ids a store remembers (the oldest go first): a write needs its record's id, and the
request that writes loaded it moments before, so this needs only to span the requests in flight."""


def key_id(key: bytes) -> bytes:
    """The short id of ``key`` stored with each value it seals (a hash: it says nothing of the key)."""
    return hashlib.sha256(b"fastapi_sessions key id\x00" + key).digest()[:_KEY_ID_BYTES]


class Keyring:
    """AES-256-GCM under a list of keys, newest first: the newest seals, each opens what it sealed."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SessionConfigError("EncryptedStore needs at least one key (SESSION_ENCRYPTION_KEYS).")
        ciphers: dict[bytes, AESGCM] = {}
        for index, key in enumerate(keys):
            if len(key) != KEY_BYTES:
                raise SessionConfigError(
                    f"Encryption key {index} is {len(key)} bytes; an AES-256 key is {KEY_BYTES} "
                    "(SESSION_ENCRYPTION_KEYS holds each in urlsafe base64)."
                )
            kid = key_id(key)
            if kid in ciphers:
                raise SessionConfigError(
                    "SESSION_ENCRYPTION_KEYS lists one key twice; list each key once, newest first."
                )
            ciphers[kid] = AESGCM(key)
        self._ciphers = ciphers
        newest = key_id(keys[0])
        self._header = _FORMAT + newest
        self._newest = ciphers[newest]

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` encrypted under the newest key with a fresh nonce, as a JSON string."""
        nonce = os.urandom(_NONCE_BYTES)
        body = self._header + nonce + self._newest.encrypt(nonce, plaintext, aad)
        return b'"' + binascii.b2a_base64(body, newline=False) + b'"'

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of a value ``seal`` made with this ``aad``; ``CorruptRecordError`` otherwise."""
        if sealed[:1] != b'"' or sealed[-1:] != b'"':
            raise CorruptRecordError("a value is not encrypted")
        try:
            body = binascii.a2b_base64(sealed[1:-1])
        except binascii.Error:
            raise CorruptRecordError("a value is not encrypted") from None
        cipher = self._ciphers.get(body[1:_HEADER]) if body[:1] == _FORMAT else None
        if cipher is None:
            raise CorruptRecordError(
                "a value is sealed with a key that SESSION_ENCRYPTION_KEYS no longer lists, or is not "
                "encrypted"
            )
        nonce_end = _HEADER + _NONCE_BYTES
        try:
            return cipher.decrypt(body[_HEADER:nonce_end], body[nonce_end:], aad)
        except (InvalidTag, ValueError):
            raise CorruptRecordError(
                "a value fails authentication (altered, or copied from another field or session)"
            ) from None


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
        self._bindings: dict[str, tuple[bytes, bytes]] = {}
        """Per store key, its record's sealed binding and the record id inside."""

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        # Only what the class does not define: the inner store's public extras.
        if name.startswith("_") or name == "inner" or name.startswith("index_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the record id, and the values sealed with it -----------------------------------------------

    def _remember(self, key: str, binding: bytes, record_id: bytes) -> None:
        bindings = self._bindings
        if len(bindings) >= _REMEMBERED and key not in bindings:
            del bindings[next(iter(bindings))]  # the oldest
        bindings[key] = (binding, record_id)

    def _record_id(self, key: str, fields: Mapping[str, bytes]) -> bytes:
        """The id of the record stored under ``key``, authenticated; ``CorruptRecordError`` if it
        was not sealed for that key."""
        binding = fields.get(BINDING_FIELD)
        if binding is None:
            raise CorruptRecordError("is not encrypted (written before SESSION_ENCRYPTION_KEYS was set?)")
        known = self._bindings.get(key)
        if known is not None and known[0] == binding:
            return known[1]
        try:
            record_id = self._keys.open(binding, _RECORD_AAD + key.encode())
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"does not belong under its key: {exc}") from None
        if len(record_id) != _RECORD_ID_BYTES:
            raise CorruptRecordError("holds a malformed record id")
        self._remember(key, binding, record_id)
        return record_id

    def _opened(self, key: str, record: SessionRecord) -> SessionRecord:
        """``record`` as stored under ``key``, decrypted, without the hidden field."""
        stored = record.fields
        prefix = _FIELD_AAD + self._record_id(key, stored)
        fields = {}
        for name, value in stored.items():
            if name != BINDING_FIELD:
                try:
                    fields[name] = self._keys.open(value, prefix + _name(name))
                except CorruptRecordError as exc:
                    raise CorruptRecordError(f"field {name[:40]!a}: {exc}") from None
        return SessionRecord(fields, record.meta)

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

    async def _known(self, key: str) -> tuple[bytes, bytes] | None:
        """The binding and record id under ``key``, loaded if not known; None if there is no record
        (or none this wrapper can read, which no write may touch)."""
        known = self._bindings.get(key)
        if known is not None:
            return known
        return await self._fresh(key)

    async def _fresh(self, key: str) -> tuple[bytes, bytes] | None:
        """The binding and record id under ``key``, from a load of the record."""
        self._bindings.pop(key, None)
        record = await self.inner.load(key)
        if record is None:
            return None
        try:
            record_id = self._record_id(key, record.fields)
        except CorruptRecordError:
            return None
        return record.fields[BINDING_FIELD], record_id

    async def _expected(
        self, key: str, expected: Mapping[str, bytes | None]
    ) -> tuple[bytes, Mapping[str, bytes | None]] | WriteResult:
        """The record id under ``key`` and what the wrapped store must find for ``expected`` (stored
        ciphertexts), from a fresh load; ``MISSING`` or ``CONFLICT`` when that load settles it."""
        record = await self.inner.load(key)
        if record is None:
            return WriteResult.MISSING
        stored = record.fields
        try:
            record_id = self._record_id(key, stored)
        except CorruptRecordError:
            return WriteResult.MISSING
        prefix = _FIELD_AAD + record_id
        translated: dict[str, bytes | None] = {BINDING_FIELD: stored[BINDING_FIELD]}
        for name, value in expected.items():
            sealed = stored.get(name)
            if name == BINDING_FIELD or (sealed is None) != (value is None):
                return WriteResult.CONFLICT
            if sealed is not None:
                try:
                    if self._keys.open(sealed, prefix + _name(name)) != value:
                        return WriteResult.CONFLICT
                except CorruptRecordError:
                    return WriteResult.CONFLICT
            translated[name] = sealed
        return record_id, translated

    # -- the store protocol --------------------------------------------------------------------------

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        record = await self.inner.load(key, touch=touch)
        return None if record is None else self._opened(key, record)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        record_id = os.urandom(_RECORD_ID_BYTES)
        binding = self._keys.seal(record_id, _RECORD_AAD + key.encode())
        fields = self._sealed(record_id, record.fields)
        fields[BINDING_FIELD] = binding
        result = await self.inner.create(key, SessionRecord(fields, record.meta), ttl=ttl)
        if result is WriteResult.OK:
            self._remember(key, binding, record_id)
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
            record_id, checks = found
            return await self.inner.update(key, self._change(record_id, change), ttl=ttl, expected=checks)
        cached = key in self._bindings
        known = await self._known(key)
        while known is not None:
            binding, record_id = known
            # Expecting the binding: a record deleted and created anew under this key (another id)
            # must never get values sealed for the old one.
            result = await self.inner.update(
                key, self._change(record_id, change), ttl=ttl, expected={BINDING_FIELD: binding}
            )
            if result is not WriteResult.CONFLICT or not cached:
                return result
            cached, known = False, await self._fresh(key)  # the remembered id was stale: once more
        return WriteResult.MISSING

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
            record_id, checks = found
            return await self._moved(old_key, new_key, record_id, change, ttl, checks)
        cached = old_key in self._bindings
        known = await self._known(old_key)
        while known is not None:
            binding, record_id = known
            result = await self._moved(old_key, new_key, record_id, change, ttl, {BINDING_FIELD: binding})
            if result is not WriteResult.CONFLICT or not cached:
                return result
            cached, known = False, await self._fresh(old_key)
        return WriteResult.MISSING

    async def _moved(
        self,
        old_key: str,
        new_key: str,
        record_id: bytes,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None],
    ) -> WriteResult:
        """Rename with the record id re-sealed for ``new_key``: the one field a move rewrites."""
        binding = self._keys.seal(record_id, _RECORD_AAD + new_key.encode())
        sealed = self._change(record_id, change, binding)
        result = await self.inner.rename(old_key, new_key, sealed, ttl=ttl, expected=expected)
        if result is WriteResult.OK:
            self._bindings.pop(old_key, None)
            self._remember(new_key, binding, record_id)
        return result

    async def delete(self, key: str) -> None:
        self._bindings.pop(key, None)
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
                record = self._opened(entry.key, entry.record)
            except CorruptRecordError as exc:
                log.warning("Session %s left out of its user's list: it %s", ref(entry.key), exc)
                continue
            sessions.append(entry._replace(record=record))
        return sessions
