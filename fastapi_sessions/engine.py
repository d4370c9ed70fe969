"""Loading a request's session from its cookie, and committing it back to the store.

This is the per-request path every user pays for: one signature check, one store read (with the
rolling TTL refresh folded in), and at commit one snapshot comparison; a write only when something
changed, a cookie only when the browser's copy must change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Generic, TypeVar

from pydantic import BaseModel

from .clock import Clock
from .codec import READ_ONLY, ModelCodec, Snapshot
from .cookies import CookieWriter, cookie_values
from .exceptions import (
    SessionConflictError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLargeError,
)
from .logs import log, ref, security_log
from .session import SessionState
from .settings import SessionSettings
from .signing import SessionSigner, VerifiedId, new_session_id, store_key
from .stores.base import (
    CorruptRecordError,
    SessionChange,
    SessionMeta,
    SessionRecord,
    SessionStore,
    WriteResult,
    json_document,
)

__all__ = ["SessionEngine"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# Metadata dated further ahead than this is forged or from a broken clock.
_CLOCK_SKEW = 60.0
# Attempts to find a free ID; a collision of 256-bit IDs means a broken random source.
_ID_ATTEMPTS = 3
# Version-checked writes retried after a concurrent change to *other* fields.
_MERGE_ATTEMPTS = 3


class SessionEngine(Generic[M]):
    """Turns cookies into sessions and sessions into store writes and cookies."""

    def __init__(
        self,
        codec: ModelCodec[M],
        settings: SessionSettings,
        store: SessionStore,
        clock: Clock,
    ) -> None:
        self.codec = codec
        self.settings = settings
        self.store = store
        self.clock = clock
        self.signer = SessionSigner(settings.signing_keys(), max_age=settings.max_age, clock=clock)
        self.cookies = CookieWriter(settings)
        self.cookie_name = settings.cookie_name.encode("latin-1")
        self.version_check = settings.concurrency == "version_check"
        self.degrade = settings.on_store_error == "degrade"
        self.max_age = settings.max_age
        self.max_size = settings.max_size

    # -- store calls -------------------------------------------------------------------------

    async def _call(self, what: str, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except SessionStoreError as exc:
            self._failure(what, exc)
            raise
        except Exception as exc:
            raise SessionStoreError(self._failure(what, exc)) from exc

    @staticmethod
    def _failure(what: str, exc: Exception) -> str:
        """Log a store failure; the message for the error raised in its place."""
        log.error("Session store failed to %s: %s: %s", what, type(exc).__name__, exc)
        return (
            f"The session store failed to {what} ({type(exc).__name__}: {exc}). "
            "Check that the store is reachable; the request was answered 503."
        )

    # -- load --------------------------------------------------------------------------------

    async def load(self, headers: Iterable[tuple[bytes, bytes]]) -> SessionState[M]:
        """The session a request's cookies point at, or a new one; never adopts an unknown ID."""
        values = cookie_values(headers, self.cookie_name)
        if not values:
            return SessionState(self.codec.new(), self.codec.defaults)
        if len(values) > 1:
            security_log.warning("Request sent %d cookies named %r", len(values), self.cookie_name)
        for value in values:
            verified = self.signer.verify(value)
            if verified is None:
                security_log.warning("Session cookie with a bad signature, format or age ignored")
                continue
            key = verified.key
            try:
                record = await self.store.load(key, touch=self.settings.idle_timeout)
            except CorruptRecordError as exc:
                state: SessionState[M] | str = f"is corrupt ({exc})"
            except Exception as exc:
                message = self._failure("load a session", exc)
                if self.degrade:
                    return SessionState(self.codec.new_read_only(), self.codec.defaults, degraded=True)
                raise SessionStoreUnavailable(message) from exc
            else:
                if record is None:
                    security_log.warning("Session %s is unknown or expired; starting anew", ref(key))
                    continue
                state = self._adopt(verified, record)
            if isinstance(state, SessionState):
                return state
            security_log.warning("Session %s %s; discarded", ref(key), state or "expired")
            try:
                await self.store.delete(key)
            except Exception as exc:
                raise SessionStoreUnavailable(self._failure("delete a dead session", exc)) from exc
        return SessionState(self.codec.new(), self.codec.defaults, had_cookie=True)

    def _adopt(self, verified: VerifiedId, record: SessionRecord) -> SessionState[M] | str:
        """The session in ``record``, or why it is dead: '' when expired, else the problem."""
        now = self.clock.time()
        meta = record.meta
        if not meta.created_at <= now + _CLOCK_SKEW:
            return "has a creation time in the future"
        if min(meta.expires_at, meta.created_at + self.max_age) <= now:
            return ""
        document = record.document
        if document is None:
            document = json_document(record.fields)
        if len(document) > self.max_size:  # the document is the values and more: only then count
            size = record.size
            if size > self.max_size:
                return f"holds {size} bytes, over SESSION_MAX_SIZE"
        try:
            model = self.codec.decode(document)
        except (ValueError, RecursionError) as exc:
            return f"does not fit the model ({type(exc).__name__})"
        # Positional: keywords make this call, on every read, about twice as dear.
        session_id, key, stale_key = verified
        return SessionState(model, self.codec.snapshot(model), session_id, key, record, True, stale_key)

    # -- commit ------------------------------------------------------------------------------

    @staticmethod
    def settled(state: SessionState[M], current: Snapshot) -> bool:
        """True when ``commit`` would surely write nothing and send no cookie, ``current`` being the
        model's snapshot now: the common read, told apart without a coroutine or a store call. (False
        does not promise a write: ``commit`` still decides.)"""
        return current == state.baseline and not (
            state.destroyed or state.regenerate or state.stale_key or state.expiry
        )

    async def commit(self, state: SessionState[M], current: Snapshot) -> bytes | None:
        """Persist what the request changed; returns the ``Set-Cookie`` value to send, if any.

        ``current`` is the model's snapshot now. Raises ``SessionConflictError`` (409),
        ``SessionStoreError`` (503) or ``SessionTooLargeError``; in each case nothing is half-written
        and no cookie is sent.
        """
        if state.degraded:
            if current != state.baseline:
                raise SessionStoreError(READ_ONLY)
            return None
        if state.destroyed:
            if state.key is not None:
                await self._call("delete a session", self.store.delete(state.key))
            if current == state.baseline and state.expiry is None:
                return self.cookies.delete() if state.had_cookie else None
            return await self._create(current, state)
        record, key, session_id = state.record, state.key, state.session_id
        if record is None or key is None or session_id is None:
            if current == state.baseline and state.expiry is None:
                return None
            return await self._create(current, state)
        baseline = state.baseline  # an unchanged session rarely gets here: the hook settles it first
        encode = self.codec.encode
        changed = {
            name: encode(value) for name, value in current.items() if baseline.get(name, _MISSING) != value
        }
        removed = (  # a set difference only when some field is really gone (never, for most models)
            _NONE if current.keys() >= baseline.keys() else frozenset(baseline.keys() - current.keys())
        )
        expiry = None if state.expiry is None else self._expiry(state, record.meta.created_at)
        if not (changed or removed or expiry or state.regenerate or state.stale_key):
            return None
        document = record.document  # holds every stored value: a bound that spares the count
        if document is None or len(document) + sum(map(len, changed.values())) > self.max_size:
            stored = record.fields
            size = record.size + sum(
                len(value) - len(stored.get(name, b"")) for name, value in changed.items()
            )
            size -= sum(len(stored.get(name, b"")) for name in removed)
            if size > self.max_size:
                raise SessionTooLargeError(size, self.max_size)
        expires_at, persistent = expiry or (record.meta.expires_at, record.meta.persistent)
        change = SessionChange(
            changed,
            removed,
            None if expiry is None else expires_at,
            None if expiry is None else persistent,
        )
        ttl = self._ttl(expires_at)
        version = record.meta.version if self.version_check else None
        if state.regenerate:
            for _ in range(_ID_ATTEMPTS):
                session_id = new_session_id()
                result = await self._call(
                    "regenerate a session",
                    self.store.rename(
                        key, store_key(session_id), change, ttl=ttl, expected_version=version
                    ),
                )
                if result is not WriteResult.EXISTS:
                    break
        elif changed or removed or expiry:
            result = await self._update(key, change, ttl, record, version)
        else:  # only the cookie key is stale: re-sign, nothing to write
            result = WriteResult.OK
        if result is not WriteResult.OK:
            raise self._conflict(result, key)
        if not (state.regenerate or state.stale_key or expiry):
            return None
        return self._cookie(session_id, expires_at, persistent)

    async def _update(
        self, key: str, change: SessionChange, ttl: float, record: SessionRecord, version: int | None
    ) -> WriteResult:
        """Update; under version checks, retry when only fields this request did not touch moved on."""
        for _ in range(_MERGE_ATTEMPTS):
            result = await self._call(
                "update a session", self.store.update(key, change, ttl=ttl, expected_version=version)
            )
            if result is not WriteResult.CONFLICT:
                return result
            touched = change.fields.keys() | change.removed
            fresh = await self._call("reload a session", self.store.load(key))
            if fresh is None:
                return WriteResult.MISSING
            if any(fresh.fields.get(name) != record.fields.get(name) for name in touched):
                return WriteResult.CONFLICT
            version = fresh.meta.version
        return WriteResult.CONFLICT

    async def _create(self, current: dict[str, object], state: SessionState[M]) -> bytes:
        fields = {name: self.codec.encode(value) for name, value in current.items()}
        size = sum(map(len, fields.values()))
        if size > self.max_size:
            raise SessionTooLargeError(size, self.max_size)
        now = self.clock.time()
        expires_at, persistent = self._expiry(state, now) or (now + self.max_age, False)
        record = SessionRecord(fields, SessionMeta(now, expires_at, persistent, 0))
        for _ in range(_ID_ATTEMPTS):
            session_id = new_session_id()
            result = await self._call(
                "create a session",
                self.store.create(store_key(session_id), record, ttl=self._ttl(expires_at)),
            )
            if result is WriteResult.OK:
                return self._cookie(session_id, expires_at, persistent)
            security_log.error("Session ID collision; the random source may be broken")
        raise SessionStoreError(
            f"Could not find a free session ID in {_ID_ATTEMPTS} attempts; the store reports every "
            "new key as taken. Check the store's create() and the system's random source."
        )

    def _expiry(self, state: SessionState[M], created_at: float) -> tuple[float, bool] | None:
        """The ``(expires_at, persistent)`` that set_expiry asked for, within SESSION_MAX_AGE."""
        if state.expiry is None:
            return None
        limit = created_at + self.max_age
        (seconds,) = state.expiry
        if seconds is None:
            return limit, False
        return min(self.clock.time() + seconds, limit), True

    def _ttl(self, expires_at: float) -> float:
        ttl = expires_at - self.clock.time()
        if self.settings.idle_timeout is not None:
            ttl = min(ttl, self.settings.idle_timeout)
        return max(ttl, 1.0)

    def _cookie(self, session_id: str, expires_at: float, persistent: bool) -> bytes:
        now = self.clock.time()
        max_age = max(round(expires_at - now), 0) if persistent else None
        return self.cookies.set(self.signer.sign(session_id), max_age=max_age, now=now)

    @staticmethod
    def _conflict(result: WriteResult, key: str) -> SessionConflictError:
        if result is WriteResult.CONFLICT:
            reason = "was changed by a concurrent request (SESSION_CONCURRENCY=version_check)"
        else:
            reason = "was destroyed, expired or regenerated by another request"
        log.info("Session %s %s; this request's changes were dropped", ref(key), reason)
        return SessionConflictError(
            f"The session {reason}; this request's changes were not saved. Retry the request."
        )


_MISSING = object()
_NONE: frozenset[str] = frozenset()
