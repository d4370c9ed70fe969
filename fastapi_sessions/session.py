"""The per-request session: one object that owns one request's session from load to commit.

Every door (the typed ``Depends()`` door, the classic ``request.session`` middleware, Sanic) makes one
``Session`` per request that uses sessions, and talks only to it. It loads at most once, registers
itself where ``regenerate(model)`` and friends can find it, records what the request asks for at commit,
and commits once, through the engine, when the response starts. After that it is *closed*: its data
can still be read, but changes cannot be saved, and it says so instead of losing them silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from .exceptions import (
    READ_ONLY,
    SessionConflictError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionUsageError,
)
from .logs import log
from .state import stored_state
from .stores.base import SessionRecord

if TYPE_CHECKING:
    from .clock import Clock
    from .codec import Snapshot
    from .engine import SessionEngine

__all__ = ["LATE_CHANGE", "Loaded", "Session", "live_session"]

D = TypeVar("D")

#: Logged when a request changed its session after the response started: the change is not saved.
LATE_CHANGE = (
    "A session was changed after the response started (in a BackgroundTask, a streaming body or "
    "after WebSocket accept); the change was NOT saved. Change the session before the endpoint "
    "returns its response."
)
_TOO_LATE = (
    "{}() was called after the response started (in a BackgroundTask, a streaming body or after "
    "WebSocket accept), when the session is already saved; call it before the endpoint returns."
)


class Loaded(NamedTuple):
    """What the engine found for a request: the data, and where it came from.

    (Not generic in the data's type: a generic named tuple needs Python 3.11.)
    """

    data: Any
    baseline: Snapshot
    session_id: str | None = None
    key: str | None = None
    record: SessionRecord | None = None
    had_cookie: bool = False
    stale_key: bool = False
    """The cookie was signed with a fallback key: re-issue it under the current one."""
    degraded: bool = False
    """The store failed and SESSION_ON_STORE_ERROR=degrade: a read-only stand-in."""


class Session(Generic[D]):
    """One request's session: its data (a model or a dict), where it is stored, and what to do at commit.

    ``data`` is None until ``load``. ``baseline`` is the snapshot the data had when loaded (or when
    destroyed, or when committed): the session is dirty when its snapshot differs.
    """

    _memo: dict[str, Any]  # see memo(): deliberately not set in __init__

    __slots__ = (
        "_engine",
        "_headers",
        "_memo",
        "_registry",
        "_state",
        "baseline",
        "changed_state",
        "committed",
        "data",
        "degraded",
        "destroyed",
        "expiry_set",
        "had_cookie",
        "key",
        "persist_for",
        "record",
        "regenerating",
        "session_id",
        "stale_key",
        "state_changed",
    )

    def __init__(
        self,
        engine: SessionEngine[D],
        headers: Iterable[tuple[bytes, bytes]],
        registry: MutableMapping[int, Session[D]] | None = None,
    ) -> None:
        self._engine = engine
        self._headers = headers
        self._registry = registry
        """Where the door finds this session by ``id(data)`` (for ``regenerate(model)`` and the
        SessionDict methods), until ``release``."""
        self.data: D | None = None
        self.baseline: Snapshot = {}
        self.session_id: str | None = None
        self.key: str | None = None
        self.record: SessionRecord | None = None
        self.had_cookie = False
        self.stale_key = False
        self.degraded = False
        self.committed = False
        """True once the response started: saved (or deliberately not), nothing more can be."""
        self.regenerating = False
        self.destroyed = False
        self.expiry_set = False
        """set_expiry was called: ``persist_for`` seconds, or None for a browser-session cookie."""
        self.persist_for: float | None = None
        self._state: dict[str, Any] | None = None
        self.state_changed = False
        """``set_state`` was called: the library's own state is written at commit."""
        self.changed_state: set[str] | None = None
        """The state entries ``set_state`` changed (each is its own stored field); None until then."""

    @property
    def engine(self) -> SessionEngine[D]:
        """The engine this session loads and commits through (its settings, store and clock)."""
        return self._engine

    @property
    def clock(self) -> Clock:
        """The door's clock (a ``FakeClock`` in tests): what the features read the time from."""
        return self._engine.clock

    @property
    def cookie_name(self) -> str:
        """The name of the door's session cookie (SESSION_COOKIE_NAME)."""
        return self._engine.settings.cookie_name

    @property
    def headers(self) -> Iterable[tuple[bytes, bytes]]:
        """The request's headers as the door gave them (the ASGI doors: all of them)."""
        return self._headers

    # -- load --------------------------------------------------------------------------------

    async def load(self) -> D:
        """The session's data, loaded from the request's cookie on the first call only."""
        data = self.data
        if data is not None:
            return data
        return self.adopt(await self._engine.load(self._headers))

    def adopt(self, loaded: Loaded) -> D:
        """Take what the engine loaded for this request, and register; the data.

        Should a concurrent call in the same request have finished first, its data stays and this
        load is dropped. (The typed door awaits the engine itself and hands the result here: one
        coroutine less per request than awaiting ``load``, 0.1 to 0.3 us.)
        """
        if self.data is not None:
            return self.data
        adopted: D
        (
            adopted,
            self.baseline,
            self.session_id,
            self.key,
            self.record,
            self.had_cookie,
            self.stale_key,
            self.degraded,
        ) = loaded
        self.data = adopted
        if self._registry is not None:
            self._registry[id(adopted)] = self
        return adopted

    def release(self, *, completed: bool = True) -> None:
        """The request is over: unregister, and warn if it changed the session too late to save it.

        ``completed`` is False when the request ended with an exception, which says enough already.
        """
        data = self.data
        if data is None:
            return
        if self._registry is not None:
            self._registry.pop(id(data), None)
        # One comparison per request that used its session (a flat model's dict is compared as it
        # is; others are snapshotted, 0.5 us for a list and a dict): the price of never losing a
        # change without a word.
        if completed and self.committed and self._engine.codec.changed(data, self.baseline) is not None:
            log.warning(LATE_CHANGE)

    # -- what the request asks for -------------------------------------------------------------

    def _open(self, what: str) -> None:
        if self.committed:
            raise SessionUsageError(_TOO_LATE.format(what))
        if self.degraded:
            raise SessionStoreUnavailable(READ_ONLY)

    def regenerate(self) -> None:
        """Give the session a new ID at commit, keeping its data and creation time."""
        self._open("regenerate")
        self.regenerating = True

    def destroy(self) -> None:
        """End the session: delete its record at commit and expire the cookie; the data is reset now.

        Changes made after this start a new session under a new ID.
        """
        self._open("destroy")
        assert self.data is not None  # noqa: S101 - only a loaded session is reachable
        self.destroyed = True
        self.regenerating = False
        self.expiry_set = False
        self.persist_for = None
        self._state = {}
        self.state_changed = False
        self.changed_state = None
        codec = self._engine.codec
        codec.reset(self.data)
        self.baseline = codec.defaults

    def set_expiry(self, seconds: float | timedelta | None) -> None:
        """Make the session and its cookie last ``seconds`` from now (capped by SESSION_MAX_AGE);
        ``None`` makes it a browser-session cookie with the default lifetime again."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds is not None and not seconds > 0:
            raise SessionUsageError(
                f"set_expiry needs a positive number of seconds or None, not {seconds!r}; "
                "to end a session, call destroy()."
            )
        self._open("set_expiry")
        self.expiry_set = True
        self.persist_for = seconds

    # -- the library's own state (see fastapi_sessions.state) ----------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """The library's own state of this session (login, CSRF token, flashes), read-only: parsed
        from the stored record on first use; empty for a new session. Change it with ``set_state``."""
        state = self._state
        if state is None:
            record = self.record
            state = self._state = {} if record is None else stored_state(record.fields)
        return state

    def set_state(self, name: str, value: Any) -> None:
        """Set (or, with None, remove) one entry of the library's own state, saved at commit.

        ``value`` must be JSON data. Changing it counts as a change of the session: a new session is
        created for it, and the cookie is sent.
        """
        self._open(f"set_state({name!r})")
        state = self.state
        if value is None:
            if name not in state:
                return
            del state[name]
        else:
            state[name] = value
        if self.changed_state is None:
            self.changed_state = {name}
        else:
            self.changed_state.add(name)
        self.state_changed = True

    def memo(self) -> dict[str, Any]:
        """Scratch space of the library's features for this request only, never stored (the flash
        messages a read took, say). Made on first use: a request that never asks pays nothing, not
        even an attribute set in ``__init__``."""
        try:
            return self._memo
        except AttributeError:
            memo: dict[str, Any] = {}
            self._memo = memo
            return memo

    # -- commit ------------------------------------------------------------------------------

    def settled(self, current: Snapshot) -> bool:
        """True when a commit would surely write nothing and send no cookie, ``current`` being the
        data's snapshot now (False does not promise a write: the engine still decides)."""
        return current == self.baseline and not (
            self.destroyed or self.regenerating or self.stale_key or self.expiry_set or self.state_changed
        )

    def settle(self, data: D) -> Snapshot | None:
        """Close the session, and answer None, when a commit would surely write nothing and send no
        cookie: the common read, told apart without a snapshot where the codec can (a flat model).
        Otherwise the data's snapshot now, to commit (the engine still decides what to write).
        ``data`` is this session's loaded data."""
        current = self._engine.codec.changed(data, self.baseline)
        if current is None:
            if not (self.destroyed or self.regenerating or self.stale_key or self.expiry_set) and not (
                self.state_changed
            ):
                self.committed = True
                return None
            return self.baseline  # unchanged: the baseline is the snapshot now
        return current

    def close(self, current: Snapshot) -> None:
        """Close without saving: the response started and nothing is (or may be) written, as for an
        unchanged session or a 5xx answer. Later changes are reported by ``release``."""
        self.committed = True
        self.baseline = current

    async def commit(self, current: Snapshot) -> bytes | None:
        """Save what the request changed; the ``Set-Cookie`` value to send, if any.

        Raises ``SessionConflictError`` (409), ``SessionStoreError`` (503) or ``SessionTooLargeError``;
        in each case nothing is half-written. The session is closed either way.
        """
        self.committed = True
        try:
            return await self._engine.commit(self, current)
        except (SessionConflictError, SessionStoreError) as exc:  # each door answers 409 or 503
            metrics = self._engine.metrics
            if metrics is not None:
                metrics.refused(exc)
            raise
        finally:
            self.baseline = current

    def __repr__(self) -> str:
        state = "unloaded" if self.data is None else "committed" if self.committed else "open"
        return f"<Session {state}>"


def live_session(registry: Mapping[int, Session[D]], data: object, problem: str) -> Session[D]:
    """The live session whose data is ``data``, found in a door's registry; else a
    ``SessionUsageError`` saying ``problem`` (and what to pass instead)."""
    session = registry.get(id(data))
    if session is None or session.data is not data:
        raise SessionUsageError(problem)
    return session
