"""Loading a request's session from its cookie, and committing it back to the store.

This is the per-request path every user pays for: one signature check, one store read (with the
rolling TTL refresh folded in), and at commit one snapshot comparison; a write only when something
changed, a cookie only when the browser's copy must change.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import ValidationError

from .clock import Clock
from .codec import Codec, Snapshot
from .cookies import CookieWriter, PlainHttpCheck, cookie_values
from .exceptions import (
    READ_ONLY,
    CorruptRecordError,
    SessionConfigError,
    SessionConflictError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLargeError,
)
from .indexing import UserIndexing, login_user
from .logs import log, ref, security_log
from .metrics import session_metrics
from .rotation import ROTATION_FIELD, Rotation
from .session import Loaded
from .settings import SessionSettings
from .signing import SessionSigner, could_be_ours, new_session_id, store_key
from .state import STATE_MARK, encode_entry, is_state_field, reserved_key, state_field
from .stores.base import (
    EncodedFields,
    SessionChange,
    SessionMeta,
    SessionRecord,
    SessionStore,
    WriteResult,
    json_document,
    new_tuple,
)
from .stores.index import UserIndexStore

if TYPE_CHECKING:
    from .session import Session

__all__ = ["SessionEngine"]

D = TypeVar("D")
T = TypeVar("T")

# Metadata dated further ahead than this is forged or from a broken clock.
_CLOCK_SKEW = 60.0
# Attempts to find a free ID; a collision of 256-bit IDs means a broken random source.
_ID_ATTEMPTS = 3
# Cookie values of our shape tried per request, each costing an HMAC, a store read or both; values
# of any other shape cost nothing and are skipped however many there are.
_MAX_TRIED = 4
# Forwards a logout follows from the key it deletes. Grace < interval makes one the most there can
# be; the others cover a session rotated again early (its state overwritten by a concurrent write).
_MAX_HOPS = 4


class SessionEngine(Generic[D]):
    """Turns cookies into sessions and sessions into store writes and cookies; serves every door."""

    def __init__(
        self,
        codec: Codec[D],
        settings: SessionSettings,
        store: SessionStore,
        clock: Clock,
    ) -> None:
        self.codec = codec
        self.settings = settings
        self.metrics = session_metrics(settings.metrics)
        """Where the counts go (SESSION_METRICS), or None: metrics off, or OpenTelemetry absent."""
        self.store = store if self.metrics is None else self.metrics.timed(store)
        """The store, timed when metrics are on; the checks below look at the store as given."""
        self.clock = clock
        self.namespace = settings.cookie_name
        self.signer = SessionSigner(
            settings.signing_keys(), max_age=settings.max_age, clock=clock, namespace=self.namespace
        )
        self.cookies = CookieWriter(settings)
        self.plain_http = PlainHttpCheck(settings)
        """Warns once if the door sends its Secure cookie where it will not come back."""
        self.cookie_name = settings.cookie_name.encode("latin-1")
        self.version_check = settings.concurrency == "version_check"
        if self.version_check:
            _check_takes_expected(store)
        self.degrade = settings.on_store_error == "degrade"
        self.max_age = settings.max_age
        self.max_size = settings.max_size
        self.users = UserIndexing(store, clock, self.max_age) if isinstance(store, UserIndexStore) else None
        """Keeps users' indexes of sessions in step with key changes; None for a store without one."""
        self.strip_state = codec.keeps_unknown_fields
        # A dict session refuses the library's field names when assigned; a model that keeps unknown
        # fields is checked at commit.
        self.refuse_state = self.strip_state and not getattr(codec, "checks_keys", False)
        """Whether the library's own stored field must be kept out of what the codec decodes (a dict
        session, or a model that keeps or forbids unknown fields); a default model ignores it."""
        self.rotation = None if settings.rotate_interval is None else Rotation(settings, self.store, clock)
        """Automatic ID rotation (SESSION_ROTATE_INTERVAL), or None when it is off."""
        self.guard_rotation = self.rotation is not None and _method_without_expected(store) is None
        """Whether a rotation's write of the state can be made conditional (``expected=``), so that it
        never overwrites a state change a concurrent request made."""

    # -- store calls -------------------------------------------------------------------------

    @staticmethod
    async def _call(what: str, operation: Awaitable[T]) -> T:
        """Await a store write; any failure becomes one ``SessionStoreError``, which the door logs."""
        try:
            return await operation
        except SessionStoreError:
            raise
        except Exception as exc:
            raise SessionStoreError(_failure(what, exc)) from exc

    def _unavailable(self, what: str, exc: Exception) -> Loaded:
        """A failed load: the degraded stand-in when configured, else ``SessionStoreUnavailable``."""
        message = _failure(what, exc)
        log.error("%s", message)
        metrics = self.metrics
        if self.degrade:
            if metrics is not None:
                metrics.degraded += 1
            return Loaded(self.codec.new_read_only(), self.codec.defaults, degraded=True)
        if metrics is not None:
            metrics.unavailable_load += 1
        raise SessionStoreUnavailable(message) from exc

    # -- load --------------------------------------------------------------------------------

    async def load(self, headers: Iterable[tuple[bytes, bytes]]) -> Loaded:
        """The session a request's cookies point at, or a new one; never adopts an unknown ID."""
        values = cookie_values(headers, self.cookie_name)
        if not values:
            return Loaded(self.codec.new(), self.codec.defaults)
        if len(values) > 1:
            security_log.warning("Request sent %d cookies named %r", len(values), self.cookie_name)
        tried = 0  # values of our shape so far: each cost an HMAC, a store read or both
        misshapen = False  # a value of another shape was seen: refused at no cost, logged once
        for value in values:
            if tried == _MAX_TRIED:
                security_log.warning("Only the first %d session cookies of our shape were tried", tried)
                break
            verified = self.signer.verify(value)
            if verified is None:
                if could_be_ours(value):
                    tried += 1
                    security_log.warning("Session cookie with a bad signature or age ignored")
                elif not misshapen:
                    misshapen = True
                    security_log.warning("Session cookie of a format we never issue ignored")
                continue
            tried += 1
            session_id, key, stale_key = verified
            try:
                record = await self.store.load(key, touch=self.settings.idle_timeout)
            except CorruptRecordError as exc:
                problem = f"is corrupt ({exc})"
            except Exception as exc:
                return self._unavailable("load a session", exc)
            else:
                if record is None:
                    if self.rotation is not None:  # only on a miss: a previous ID, while its grace lasts?
                        try:
                            forwarded = await self._forwarded(key)
                        except Exception as exc:
                            return self._unavailable("follow a rotated session", exc)
                        if forwarded is not None:
                            return forwarded
                    security_log.warning("Session %s is unknown or expired; starting anew", ref(key))
                    continue
                problem = self._problem(record)
                if not problem:
                    try:
                        document = record.document
                        if document is None:
                            document = json_document(record.fields)
                        # The library's own fields reach a dict (or a model that keeps or forbids
                        # unknown fields) only if they are there: one search of the bytes, in C.
                        if self.strip_state and document.find(STATE_MARK) >= 0:
                            document = _without_state(record)
                        data = self.codec.decode(document)
                    except CorruptRecordError as exc:  # a value that is not one JSON value
                        problem = f"is corrupt ({exc})"
                    except (ValueError, RecursionError) as exc:
                        problem = f"does not fit the session data ({_what_failed(exc)})"
                    else:
                        baseline = self.codec.snapshot(data)
                        if self.rotation is not None and not stale_key:
                            # Due for a new ID: like a cookie to re-sign, it must reach the commit,
                            # which tells the two apart.
                            stale_key = self.rotation.due(key, record, self.clock.time())
                        # Built without the named tuple's __new__, a Python function: about 800
                        # instructions off every read (callgrind, mean of four heap layouts). With
                        # Session.load adopting inline: -0.8 us on /read, -1.2 us on /write.
                        loaded = (data, baseline, session_id, key, record, True, stale_key, False)
                        if self.metrics is not None:
                            self.metrics.loaded += 1
                        return new_tuple(Loaded, loaded)
            security_log.warning("Session %s %s; discarded", ref(key), problem)
            try:
                await self.store.delete(key)
            except Exception as exc:
                return self._unavailable("delete a dead session", exc)
        return Loaded(self.codec.new(), self.codec.defaults, had_cookie=True)

    async def _forwarded(self, key: str) -> Loaded | None:
        """The session that the session once at ``key`` was rotated to, during the grace window.

        One hop only: the forward's target must still hold the very session (same creation time);
        if it was renamed again or deleted, the previous ID opens nothing. The session comes without
        an ID (``session_id`` None): the store never holds IDs, and this request must not send its
        cookie back (the browser gets the new one from the request that rotated it).
        """
        assert self.rotation is not None  # noqa: S101 - called only with rotation on
        found = await self.rotation.target(key)
        if found is None:
            return None
        new_key, created_at = found
        try:
            record = await self.store.load(new_key, touch=self.settings.idle_timeout)
        except CorruptRecordError:
            return None
        if record is None or record.meta.created_at != created_at or self._problem(record):
            return None
        try:
            document = _document(record)
            if self.strip_state and document.find(STATE_MARK) >= 0:
                document = _without_state(record)
            data = self.codec.decode(document)
        except (CorruptRecordError, ValueError, RecursionError):
            return None  # the session's own ID finds it corrupt, and discards it
        log.debug("Session %s reached through the forward of its previous ID", ref(new_key))
        if self.metrics is not None:
            self.metrics.loaded += 1
        return Loaded(data, self.codec.snapshot(data), None, new_key, record, had_cookie=True)

    async def delete_session(self, key: str) -> None:
        """Delete the session at ``key`` and, with rotation on, the sessions its forwards lead to.

        The key is deleted first and its forward read after: rotation writes the forward before it
        renames, so whatever the interleaving, the session cannot escape to its new key.
        """
        await self._call("delete a session", self.store.delete(key))
        if self.metrics is not None:
            self.metrics.destroyed += 1
        rotation = self.rotation
        for _ in range(_MAX_HOPS if rotation is not None else 0):
            found = await self._call("delete a session", rotation.target(key))  # type: ignore[union-attr]
            if found is None:
                return
            await self._call("delete a session", rotation.drop_forward(key))  # type: ignore[union-attr]
            key = found[0]
            await self._call("delete a session", self.store.delete(key))

    def _problem(self, record: SessionRecord) -> str:
        """Why ``record`` cannot be this request's session, or '' when it can."""
        now = self.clock.time()
        meta = record.meta
        # Each test is written to fail on a NaN, which compares false with everything: with
        # min(expires_at, ...) <= now, a NaN expiry would never expire.
        if not meta.created_at <= now + _CLOCK_SKEW:
            return _not_a_time(meta.created_at) or "has a creation time in the future"
        if not (meta.expires_at > now and meta.created_at + self.max_age > now):
            return _not_a_time(meta.expires_at) or "expired"
        # The document is the values and more: only when it is over the limit count the values.
        if record.document is not None and len(record.document) <= self.max_size:
            return ""
        size = record.size
        return f"holds {size} bytes, over SESSION_MAX_SIZE" if size > self.max_size else ""

    # -- commit ------------------------------------------------------------------------------

    async def commit(self, session: Session[D], current: Snapshot) -> bytes | None:
        """Persist what the request changed; returns the ``Set-Cookie`` value to send, if any.

        ``current`` is the data's snapshot now. Raises ``SessionConflictError`` (409),
        ``SessionStoreError`` (503) or ``SessionTooLargeError``; in each case nothing is half-written
        and no cookie is sent.
        """
        if session.degraded:
            if current != session.baseline:
                raise SessionStoreError(READ_ONLY)
            return None
        if session.destroyed:
            if session.key is not None:
                await self.delete_session(session.key)
                users = self.users
                user = None if users is None else users.stored_user(session.record)
                if users is not None and user is not None:  # a logout: it leaves its user's index
                    await users.removed(user, session.key)
            if current == session.baseline and not (session.expiry_set or session.state_changed):
                return self.cookies.delete() if session.had_cookie else None
            return await self._create(current, session)
        record, key = session.record, session.key
        if record is None or key is None:
            if current == session.baseline and not (session.expiry_set or session.state_changed):
                return None
            return await self._create(current, session)
        baseline = session.baseline  # an unchanged session rarely gets here: the door settles it first
        encode = self.codec.encode
        changed = {
            name: encode(name, value)
            for name, value in current.items()
            if baseline.get(name, _MISSING) != value
        }
        removed = (  # a set difference only when some field is really gone (never, for most models)
            _NONE if current.keys() >= baseline.keys() else frozenset(baseline.keys() - current.keys())
        )
        if self.refuse_state:
            _refuse_state_fields(changed)
        if session.state_changed:
            removed = self._state_changes(session, record, changed, removed)
        expiry = self._expiry(session, record.meta.created_at) if session.expiry_set else None
        if not (changed or removed or expiry or session.regenerating or session.stale_key):
            return None
        session_id = session.session_id
        if session_id is None and expiry and not session.regenerating:
            raise _cannot_send_cookie(key)  # reached through a previous ID's forward
        rotation = self.rotation
        rotating = (  # the load found it due (stale_key) and this request may give it its new ID
            rotation is not None
            and session.stale_key
            and session_id is not None
            and not session.regenerating
            and rotation.due(key, record, self.clock.time())
        )
        unrotated = changed  # what to write should another request rotate it first
        if rotating:
            assert rotation is not None  # noqa: S101 - for mypy
            changed = dict(changed)
            changed[ROTATION_FIELD] = encode_entry(rotation.rotated_entry(self.clock.time()))
        elif rotation is not None and session.regenerating:
            # A regeneration gives a new ID too: the interval starts again, or a login to a session
            # older than the interval would get another new ID on the very next request.
            changed = dict(changed)
            changed[ROTATION_FIELD] = encode_entry(rotation.rotated_entry(self.clock.time()))
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
            EncodedFields(changed),
            removed,
            None if expiry is None else expires_at,
            None if expiry is None else persistent,
        )
        ttl = self._ttl(expires_at)
        # Under version checks the store compares the fields this request changes with the values
        # they had when it loaded, in the same atomic write: only a change to one of those conflicts.
        checks = {"expected": _expected(record, changed, removed)} if self.version_check else {}
        followed = False  # written through the forward of a rotation: no cookie for the old ID
        if rotating:
            if self.guard_rotation and not checks:  # never overwrite a concurrent change of the state
                checks = {"expected": {ROTATION_FIELD: record.fields.get(ROTATION_FIELD)}}

            def rotate(new_key: str) -> Awaitable[WriteResult]:
                return self._rotate(key, new_key, record.meta.created_at, change, ttl, checks)

            session_id, result = await self._move("rotate a session's ID", session, key, rotate)
            if result is not WriteResult.OK:
                # MISSING: another request is moving the session to a new ID, or it is gone; this
                # request must not send the ID back. CONFLICT: its state changed meanwhile (the
                # next request rotates it) or a version check failed (the update says so again).
                moving = result is WriteResult.MISSING
                rotating = False
                session_id = session.session_id
                if not (unrotated or removed or expiry):
                    return None
                if moving and expiry:
                    raise _cannot_send_cookie(key)
                change = change._replace(fields=unrotated)
                checks = {"expected": _expected(record, unrotated, removed)} if self.version_check else {}
                result = await self._call(
                    "update a session", self.store.update(key, change, ttl=ttl, **checks)
                )
                if result is WriteResult.MISSING:
                    result, followed = await self._update_moved(key, record, change, ttl, checks, expiry)
                followed = followed or moving
        elif session.regenerating:

            def rename(new_key: str) -> Awaitable[WriteResult]:
                return self._rename(key, record, new_key, change, ttl, checks, session_id is not None)

            session_id, result = await self._move("regenerate a session", session, key, rename)
        elif changed or removed or expiry:
            result = await self._call("update a session", self.store.update(key, change, ttl=ttl, **checks))
            # Gone: a concurrent rotation may have moved it (not when reached through a forward: the
            # record is the rotated one already). The plain write pays one identity test.
            if result is WriteResult.MISSING and self.rotation is not None and session_id is not None:
                result, followed = await self._update_moved(key, record, change, ttl, checks, expiry)
        else:  # only the cookie key is stale: re-sign, nothing to write
            result = WriteResult.OK
        if result is not WriteResult.OK:
            raise self._conflict(result, key)
        if not (session.regenerating or rotating or session.stale_key or expiry) or followed:
            return None
        if session_id is None:  # reached through a forward: the browser has the new cookie
            return None
        return self._cookie(session_id, expires_at, persistent)

    # -- rotation (SESSION_ROTATE_INTERVAL) --------------------------------------------------

    async def _rotate(
        self,
        key: str,
        new_key: str,
        created_at: float,
        change: SessionChange,
        ttl: float,
        checks: Mapping[str, Mapping[str, bytes | None]],
    ) -> WriteResult:
        """Rename as ``regenerate`` does, after leaving a forward to the new key for the grace window;
        ``MISSING`` when another request is rotating the session (its forward is there)."""
        rotation = self.rotation
        assert rotation is not None  # noqa: S101 - called only with rotation on
        if await rotation.leave_forward(key, new_key, created_at) is WriteResult.EXISTS:
            return WriteResult.MISSING
        result = await self.store.rename(key, new_key, change, ttl=ttl, **checks)
        if result is not WriteResult.OK:
            await rotation.drop_forward(key)
        return result

    async def _follow(self, key: str, record: SessionRecord) -> str | None:
        """The key a rotation moved the session loaded from ``key`` to, while its forward lasts."""
        if self.rotation is None:
            return None
        found = await self._call("follow a rotated session", self.rotation.target(key))
        if found is None or found[1] != record.meta.created_at:
            return None
        return found[0]

    async def _update_moved(
        self,
        key: str,
        record: SessionRecord,
        change: SessionChange,
        ttl: float,
        checks: Mapping[str, Mapping[str, bytes | None]],
        expiry: tuple[float, bool] | None,
    ) -> tuple[WriteResult, bool]:
        """The update that found ``key`` gone, at the key a concurrent rotation moved the session to
        (then True); ``MISSING`` if it was not moved."""
        new_key = await self._follow(key, record)
        if new_key is None:
            return WriteResult.MISSING, False
        if expiry:
            raise _cannot_send_cookie(key)
        return await self._call(
            "update a session", self.store.update(new_key, change, ttl=ttl, **checks)
        ), True

    async def _rename(
        self,
        key: str,
        record: SessionRecord,
        new_key: str,
        change: SessionChange,
        ttl: float,
        checks: Mapping[str, Mapping[str, bytes | None]],
        may_follow: bool,
    ) -> WriteResult:
        """Regenerate: move the session to ``new_key``; from where a concurrent rotation moved it, if
        it did (``may_follow``: the request loaded it by its own ID, not through a forward)."""
        result = await self.store.rename(key, new_key, change, ttl=ttl, **checks)
        if result is WriteResult.MISSING and may_follow:
            moved = await self._follow(key, record)
            if moved is not None:
                result = await self.store.rename(moved, new_key, change, ttl=ttl, **checks)
                if result is WriteResult.OK and self.rotation is not None:
                    await self.rotation.drop_forward(key)  # it leads nowhere now
        return result

    @staticmethod
    def _state_changes(
        session: Session[D], record: SessionRecord, changed: dict[str, bytes], removed: frozenset[str]
    ) -> frozenset[str]:
        """Add the state entries this request changed to ``changed`` (each is its own field, so
        concurrent changes of different entries merge); the fields to remove, with removed entries."""
        state, stored = session.state, record.fields
        gone = []
        for name in session.changed_state or ():
            field = state_field(name)
            value = state.get(name)
            if value is not None:
                changed[field] = encode_entry(value)
            elif field in stored:
                gone.append(field)
        return removed | frozenset(gone) if gone else removed

    async def _create(self, current: Snapshot, session: Session[D]) -> bytes:
        if self.refuse_state:
            _refuse_state_fields(current)
        encode = self.codec.encode
        fields = EncodedFields({name: encode(name, value) for name, value in current.items()})
        if session.state_changed:
            for name, value in session.state.items():
                fields[state_field(name)] = encode_entry(value)
        size = sum(map(len, fields.values()))
        if size > self.max_size:
            raise SessionTooLargeError(size, self.max_size)
        now = self.clock.time()
        expires_at, persistent = self._expiry(session, now) or (now + self.max_age, False)
        record = SessionRecord(fields, SessionMeta(now, expires_at, persistent, 0))
        ttl = self._ttl(expires_at)

        def create(key: str) -> Awaitable[WriteResult]:
            return self.store.create(key, record, ttl=ttl)

        write: Callable[[str], Awaitable[WriteResult]] = create
        users = self.users
        user = login_user(session.state) if users is not None and session.state_changed else None
        if users is not None and user is not None:  # a login: the new session joins its user's index
            write = users.indexed(user, now, create)
        session_id, _ = await self._with_new_id("create a session", write)
        if self.metrics is not None:
            self.metrics.created += 1
        return self._cookie(session_id, expires_at, persistent)

    async def _move(
        self, what: str, session: Session[D], key: str, rename: Callable[[str], Awaitable[WriteResult]]
    ) -> tuple[str, WriteResult]:
        """Move a stored session from ``key`` to a fresh ID's key with ``rename``: ``_with_new_id``,
        with its user's index (if it is logged in) following the move.

        Every key change of a stored session (regeneration, automatic rotation) goes through here.
        """
        users = self.users
        if users is None:
            return await self._with_new_id(what, rename)
        before = users.stored_user(session.record)
        after = login_user(session.state)
        if after is not None:
            assert session.record is not None  # noqa: S101 - only a stored session moves
            rename = users.indexed(after, session.record.meta.created_at, rename)
        session_id, result = await self._with_new_id(what, rename)
        if before is not None and result is WriteResult.OK:
            await users.removed(before, key)
        return session_id, result

    async def _with_new_id(
        self, what: str, write: Callable[[str], Awaitable[WriteResult]]
    ) -> tuple[str, WriteResult]:
        """Write under a fresh ID's key; the ID and what the write answered other than ``EXISTS``.

        A taken key means two 256-bit IDs collided: a broken random source, not a race. Creation and
        regeneration treat it alike: a security error per collision, and a 503 after three.
        """
        for _ in range(_ID_ATTEMPTS):
            session_id = new_session_id()
            result = await self._call(what, write(store_key(session_id, self.namespace)))
            if result is not WriteResult.EXISTS:
                return session_id, result
            security_log.error("Session ID collision; the random source may be broken")
        raise SessionStoreError(
            f"Could not find a free session ID in {_ID_ATTEMPTS} attempts (to {what}); the store "
            "reports every new key as taken. Check the store's create() and rename() and the "
            "system's random source."
        )

    def _expiry(self, session: Session[D], created_at: float) -> tuple[float, bool] | None:
        """The ``(expires_at, persistent)`` that set_expiry asked for, within SESSION_MAX_AGE."""
        if not session.expiry_set:
            return None
        limit = created_at + self.max_age
        seconds = session.persist_for
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
            reason = (
                "was changed by a concurrent request in a field this request changed too "
                "(SESSION_CONCURRENCY=version_check)"
            )
        else:
            reason = "was destroyed, expired or regenerated by another request"
        log.info("Session %s %s; this request's changes were dropped", ref(key), reason)
        return SessionConflictError(
            f"The session {reason}; this request's changes were not saved. Retry the request."
        )


def _failure(what: str, exc: Exception) -> str:
    """The message for a store failure: what failed, and what to check."""
    return (
        f"The session store failed to {what} ({type(exc).__name__}: {exc}). "
        "Check that the store is reachable; the request was answered 503."
    )


def _not_a_time(value: float) -> str:
    """Why a stored time is corrupt (it is NaN), or '' when it is a number."""
    return f"is corrupt (a stored time is {value!r})" if math.isnan(value) else ""


def _expected(
    record: SessionRecord, changed: Mapping[str, bytes], removed: frozenset[str]
) -> dict[str, bytes | None]:
    """The stored values (None: absent) of the fields a change sets or removes, as loaded."""
    stored = record.fields
    return {name: stored.get(name) for name in (*changed, *removed)}


def _what_failed(exc: BaseException) -> str:
    """Which stored fields failed validation and how, for the log; never a value (it may be a secret).

    A stored field name is data too, so each is cut short and shown as an escaped literal.
    """
    if not isinstance(exc, ValidationError):
        return type(exc).__name__
    failed = {
        f"{str(error['loc'][0])[:40]!a} ({error['type']})" if error["loc"] else error["type"]
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    }
    return "fields failing validation: " + ", ".join(sorted(failed))


def _method_without_expected(store: SessionStore) -> str | None:
    """The first of the store's update() and rename() that cannot take ``expected=``, if any."""
    for method in ("update", "rename"):
        parameters = inspect.signature(getattr(store, method)).parameters.values()
        if not any(p.name == "expected" or p.kind is p.VAR_KEYWORD for p in parameters):
            return method
    return None


def _cannot_send_cookie(key: str) -> SessionConflictError:
    """The error for set_expiry on a session this request reached through its previous ID."""
    log.info("Session %s rotated while a request to set its expiry was in flight", ref(key))
    return SessionConflictError(
        "The session got a new ID (SESSION_ROTATE_INTERVAL) while this request, sent with the "
        "previous one, was in flight; set_expiry needs a new cookie, which only the new ID can carry. "
        "Nothing was saved. Retry the request."
    )


def _check_takes_expected(store: SessionStore) -> None:
    """Refuse, at start-up, a store whose update() or rename() cannot take ``expected=``."""
    method = _method_without_expected(store)
    if method is not None:
        raise SessionConfigError(
            f"SESSION_CONCURRENCY=version_check needs a store whose update() and rename() take "
            f"expected= (the values the changed fields had when loaded); "
            f"{type(store).__name__}.{method}() does not. A store written for expected_version= "
            "must switch to expected= (see 'Custom stores' in the docs), or use the default "
            "SESSION_CONCURRENCY=last_write_wins."
        )


def _without_state(record: SessionRecord) -> bytes:
    """The record's JSON document without the library's own fields, for a codec that would keep them."""
    fields = record.fields
    return json_document({name: value for name, value in fields.items() if not is_state_field(name)})


def _refuse_state_fields(data: Mapping[str, object]) -> None:
    """Refuse app data (a dict session's keys) named like the library's own fields."""
    for name in data:
        if is_state_field(name):
            raise reserved_key(name)


def _document(record: SessionRecord) -> bytes:
    """The record's JSON document, as the data validates it."""
    document = record.document
    return json_document(record.fields) if document is None else document


_MISSING = object()
_NONE: frozenset[str] = frozenset()
