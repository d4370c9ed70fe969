"""The store interface: six async methods that every backend implements, and the records they move.

A store keeps one record per session under a key the manager derives from the session ID (a hash: the
store never sees an ID that could be used as a cookie). A record is the session's top-level fields,
each as its own JSON document, plus metadata. Keeping fields apart is what lets two concurrent requests
that change *different* fields both survive: an update writes only the fields that changed.

Rules every store follows (the conformance suite in ``fastapi_sessions.testing`` checks each one):

* ``create`` never overwrites: an existing key answers ``EXISTS``.
* ``update`` and ``rename`` never resurrect: a missing key answers ``MISSING``.
* ``expected``, when given, names the stored value each field the change touches must still have
  (``None``: absent); any other value answers ``CONFLICT``, so only a change to the *same* field
  conflicts. Every successful ``update``/``rename`` adds one to the version.
* A record lives ``ttl`` seconds after each write; ``load(..., touch=s)`` resets that to ``s`` seconds
  without rewriting, never past ``meta.expires_at``. Expired records are absent.
* Every operation is atomic with respect to the others on the same key.
* Failures raise; the manager turns any exception into a 503, never into an empty session.
  A ``rename`` that raises leaves the request with its old cookie, so it must not have moved the
  record: a store that lost the answer finds out what happened first (and returns ``OK`` if it moved).
  Only ``CorruptRecordError`` from ``load`` means "this record is garbage": a fresh session.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple, Protocol, runtime_checkable

from pydantic_core import from_json

from ..exceptions import CorruptRecordError

__all__ = [
    "CorruptRecordError",
    "EncodedFields",
    "SessionChange",
    "SessionMeta",
    "SessionRecord",
    "SessionStore",
    "WriteResult",
    "json_document",
    "json_value_problem",
]

# JSON spellings of field names with their colon: names repeat across every session of a model.
_KEY_PREFIXES: dict[str, bytes] = {}
_MAX_KEY_PREFIXES = 4096
new_tuple = tuple.__new__  # builds a named tuple without its Python-level __new__: for hot paths


def field_prefix(name: str) -> bytes:
    """``"name":``, the start of a field in a JSON document."""
    prefix = _KEY_PREFIXES.get(name)
    if prefix is None:
        prefix = json.dumps(name).encode() + b":"
        if len(_KEY_PREFIXES) < _MAX_KEY_PREFIXES:
            _KEY_PREFIXES[name] = prefix
    return prefix


class EncodedFields(dict[str, bytes]):
    """Field values the engine encoded itself, each exactly one JSON value.

    A store that must check values written by other callers (MemoryStore joins them into one
    document) may skip its parse for these: it costs a login about 2 us for seven fields.
    """

    __slots__ = ()


def json_value_problem(value: bytes) -> str:
    """Why ``value`` is not exactly one JSON value, or '' when it is."""
    try:
        # jiter reads the whole input: trailing data after the first value is an error. Strings are
        # not cached: garbage must not fill pydantic-core's cache of them.
        from_json(value, cache_strings=False)
    except ValueError as exc:
        return str(exc)
    return ""


def json_document(fields: Mapping[str, bytes]) -> bytes:
    """The fields joined into one JSON object, ``{"name":<value>,...}``: what the model validates.

    Stores that keep a session as this one document hand it over as ``SessionRecord.document``.
    Raises ``CorruptRecordError`` when a value is not exactly one JSON value: joined, a value such as
    ``["x"],"user_id":999`` would set other fields than its own.
    """
    prefixes = _KEY_PREFIXES
    parts = []
    for name, value in fields.items():
        # A parse of each value, about 0.1 us for a small one and 0.5 us per KB (pydantic-core):
        # the price of a read from a store that does not hand over its document (Redis, a Backend),
        # which is a round trip to another process anyway. MemoryStore checks values as they are
        # written instead, so its reads pay nothing.
        problem = json_value_problem(value)
        if problem:
            raise CorruptRecordError(f"field {name!r} is not one JSON value ({problem})")
        parts.append((prefixes.get(name) or field_prefix(name)) + value)
    return b"{" + b",".join(parts) + b"}"


class SessionMeta(NamedTuple):
    """Server-side facts about a session; limits from the settings always win over them.

    Records and their metadata are named tuples: immutable, and built on every read at a third of a
    frozen dataclass' cost.
    """

    created_at: float
    """Wall-clock time the session was created; kept across regeneration."""
    expires_at: float
    """Wall-clock time after which the session is dead, whatever its TTL."""
    persistent: bool = False
    """Whether the cookie carries Max-Age (``set_expiry``) or lives for the browser session."""
    version: int = 0
    """Incremented by every update and rename: how many times the record was changed."""

    def after(self, change: SessionChange) -> SessionMeta:
        """The metadata once ``change`` is written: its expiry, if any, and the next version."""
        created_at, expires_at, persistent, version = self
        if change.expires_at is not None:
            expires_at = change.expires_at
        if change.persistent is not None:
            persistent = change.persistent
        return new_tuple(SessionMeta, (created_at, expires_at, persistent, version + 1))


class SessionRecord(NamedTuple):
    """A stored session: JSON per top-level field, and metadata."""

    fields: Mapping[str, bytes]
    meta: SessionMeta
    document: bytes | None = None
    """Optional: ``json_document(fields)``, for a store that keeps the session as that one document
    (it spares the engine the join on every read). Leave it None unless it is exactly that."""

    @property
    def size(self) -> int:
        """Bytes of serialized session data."""
        return sum(map(len, self.fields.values()))

    def applied(self, change: SessionChange) -> SessionRecord:
        """This record with ``change`` applied and its version advanced: what a write stores."""
        fields = {**self.fields, **change.fields}
        for name in change.removed:
            fields.pop(name, None)
        return SessionRecord(fields, self.meta.after(change))


class SessionChange(NamedTuple):
    """What one request changes in an existing record."""

    fields: Mapping[str, bytes] = MappingProxyType({})
    """Top-level fields to set, as JSON."""
    removed: frozenset[str] = frozenset()
    """Top-level fields to delete."""
    expires_at: float | None = None
    """A new absolute deadline, or None to keep the stored one."""
    persistent: bool | None = None
    """A new cookie persistence, or None to keep the stored one."""


class WriteResult(enum.Enum):
    """How a write ended."""

    OK = "ok"
    EXISTS = "exists"
    """``create``/``rename``: the target key is already taken; nothing was written."""
    MISSING = "missing"
    """``update``/``rename``: the record is gone (destroyed, expired, regenerated); nothing written."""
    CONFLICT = "conflict"
    """A field the change touches no longer holds its ``expected`` value; nothing was written."""


def meets(fields: Mapping[str, bytes], expected: Mapping[str, bytes | None] | None) -> bool:
    """Whether ``fields`` hold every value ``expected`` names (``None``: absent); True without any."""
    return expected is None or all(fields.get(name) == value for name, value in expected.items())


@runtime_checkable
class SessionStore(Protocol):
    """What fastapi_sessions needs from a store. Inherit nothing: implement these six methods."""

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        """The record under ``key``, or None. With ``touch``, also reset its TTL (one round trip)."""
        ...

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        """Store a new record, only if ``key`` is free: ``OK`` or ``EXISTS``."""
        ...

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        """Apply ``change`` to an existing record: ``OK``, ``MISSING`` or ``CONFLICT``.

        ``expected`` (``SESSION_CONCURRENCY=version_check``) maps each field the change sets or removes
        to the value it had when the request loaded it; the check and the write are one atomic step.
        """
        ...

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        """Move a record to ``new_key`` with ``change`` applied, removing ``old_key``, atomically."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the record under ``key``, if any."""
        ...

    async def aclose(self) -> None:
        """Release connections; called at shutdown for stores the manager created."""
        ...
