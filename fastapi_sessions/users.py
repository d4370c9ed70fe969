"""Users and their sessions: a login that does the right thing in one call, and for a user, the list of
their live sessions and the means to revoke them ("log out everywhere").

A login is kept in the library's own state of the session (the ``login`` entry: who, when, from what
user agent, and the IP address with ``SESSION_RECORD_IP``), and the session's key in an index of the
user's sessions that the store keeps (``UserIndexStore``). The index costs store calls only on login,
logout, revoke and when a logged-in session's key changes; a plain read never touches it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from starlette.requests import HTTPConnection

from .csrftokens import STATE_KEY as CSRF
from .exceptions import SessionConfigError, SessionStoreUnavailable, SessionUsageError
from .indexing import LOGIN, UserIndexing, login_user
from .state import stored_entry, stored_time
from .stores.base import SessionRecord
from .stores.index import IndexedSession
from .stores.metered import unwrapped

if TYPE_CHECKING:
    from .dictsession import SessionDict
    from .engine import SessionEngine
    from .session import Session

__all__ = ["ActiveSession", "SessionUsers", "session_users"]

D = TypeVar("D")
T = TypeVar("T")

MAX_USER_AGENT = 256
"""Characters of the User-Agent header kept with a login: enough to tell devices apart."""


@dataclass(frozen=True)
class ActiveSession:
    """One live session of a user, as ``SessionUsers.list_sessions`` reports it."""

    id: str
    """A handle for ``revoke``: random, made at login and kept while the session's ID rotates or is
    regenerated; never the session's ID (it opens nothing)."""
    created_at: float
    """When the session was created (kept across logins and regenerations)."""
    login_at: float
    """When the user logged in to it (the door's clock)."""
    last_seen: float | None
    """When a request last used it, derived from its idle window (``SESSION_IDLE_TIMEOUT``) without
    any write on reads: never later than the real time, and within a second of it unless the session
    is near its end of ``SESSION_MAX_AGE``. None without an idle timeout (the store keeps no trace)."""
    expires_at: float
    """When it ends unless used again (its idle window), or at the latest (its maximum age)."""
    user_agent: str | None
    """The User-Agent header of the login request, cut to ``MAX_USER_AGENT`` characters."""
    ip: str | None
    """The client address of the login request, with ``SESSION_RECORD_IP``; None otherwise."""
    current: bool
    """Whether this is the session of the request that asked (``current=``)."""


def public_id(key: str, record: SessionRecord | None = None) -> str:
    """The handle an app shows for a logged-in session: the login's own random handle, which stays
    the same when the session's ID rotates or is regenerated; for a login recorded without one, a
    hash of the store key."""
    login = None if record is None else stored_entry(record.fields, LOGIN)
    handle = login.get("id") if type(login) is dict else None
    if type(handle) is str:
        return handle
    return hashlib.blake2b(key.encode(), digest_size=12, person=b"fastapi-revoke").hexdigest()


class SessionUsers(Generic[D]):
    """Logins and a user's sessions, for one door: ``sessions.users`` on the typed door,
    ``session_users(request)`` on the classic one.

    Needs a store with the ``UserIndexStore`` capability (``MemoryStore`` and ``RedisStore`` have it).
    """

    def __init__(self, engine: SessionEngine[D], live: Callable[[D], Session[D]]) -> None:
        self._engine = engine
        self._live = live
        """The door's way from a request's session data (a model, a ``SessionDict``) to its Session."""

    def _indexing(self) -> UserIndexing:
        users = self._engine.users
        if users is None:
            store = unwrapped(self._engine.store)
            raise SessionConfigError(
                f"Logins and lists of a user's sessions need a store with the UserIndexStore "
                f"capability (fastapi_sessions.stores.index); {type(store).__name__} does "
                "not have it. Use MemoryStore or RedisStore (SESSION_STORE_URL=redis://...), or add "
                "index_add, index_remove and index_sessions to your store (see 'Users and their "
                "sessions' in the docs)."
            )
        return users

    def login(self, session: D, user: str, connection: HTTPConnection) -> None:
        """Log ``user`` in to this request's ``session``, at commit: the right steps in one call.

        The session gets a new ID (session fixation), is bound to ``user`` and joins their index; the
        login's time (the door's clock), user agent and, with ``SESSION_RECORD_IP``, the client's IP
        address are kept with it. If the session was bound to *another* user, their data does not
        carry over: it is ended and the login starts a new, empty one. The same user logging in again
        keeps the data (an anonymous cart survives a login). ``connection`` is the request.
        """
        client = getattr(connection, "client", None)  # Starlette's; a Sanic request has .ip instead
        ip = client.host if client is not None else getattr(connection, "ip", None)
        self.login_with(
            session,
            user,
            user_agent=connection.headers.get("user-agent"),
            ip=ip if isinstance(ip, str) else None,
        )

    def login_with(self, session: D, user: str, *, user_agent: str | None, ip: str | None) -> None:
        """``login``, given the request's user agent and client address rather than the request (for
        doors other than Starlette's); ``ip`` is kept only with ``SESSION_RECORD_IP``."""
        if type(user) is not str or not user:
            raise SessionUsageError(
                f"login() takes the user's identifier as a non-empty str, not {user!r}; pass str(user.id)."
            )
        self._indexing()
        live = self._live(session)
        previous = login_user(live.state)
        if previous is not None and previous != user:
            live.destroy()  # a switch of identity: nothing of the previous user's carries over
        else:
            live.regenerate()
            # A CSRF token issued before the login (to whoever planted or saw the session) must not
            # work after it: the next token request issues one from a new secret, as Django does.
            live.set_state(CSRF, None)
        live.set_state(
            LOGIN,
            {
                "user": user,
                "id": secrets.token_hex(12),  # the revoke handle: kept while the ID changes
                "at": self._engine.clock.time(),
                "ua": None if user_agent is None else user_agent[:MAX_USER_AGENT],
                "ip": ip if self._engine.settings.record_ip else None,
            },
        )

    async def list_sessions(self, user: str, *, current: D | None = None) -> list[ActiveSession]:
        """``user``'s live sessions, the most recently used first; ``current`` (this request's session)
        is flagged. One store call for the index, and one per session in it."""
        now = self._engine.clock.time()
        current_key = None if current is None else self._live(current).key
        found = await self._sessions(user, now)
        listed = [self._describe(item, now, current_key) for item in found]
        return sorted(listed, key=lambda s: (s.last_seen or s.login_at, s.login_at), reverse=True)

    async def revoke(self, user: str, session_id: str) -> bool:
        """End ``user``'s session whose ``ActiveSession.id`` is ``session_id``; False if they have none
        such (already ended, or not theirs). A request on it that is running loses its changes (409)."""
        now = self._engine.clock.time()
        for item in await self._sessions(user, now):
            if public_id(item.key, item.record) == session_id:
                await self._revoke(user, item.key)
                return True
        return False

    async def revoke_all(self, user: str, *, keep: D | None = None) -> int:
        """End every session of ``user`` except ``keep`` (this request's: "log out everywhere else",
        after a password change); how many ended. To end the current one too, also ``destroy`` it."""
        now = self._engine.clock.time()
        keep_key = None if keep is None else self._live(keep).key
        ended = 0
        for item in await self._sessions(user, now):
            if item.key != keep_key:
                await self._revoke(user, item.key)
                ended += 1
        return ended

    # -- helpers -------------------------------------------------------------------------------

    async def _sessions(self, user: str, now: float) -> list[IndexedSession]:
        """The live sessions in ``user``'s index that are logged in to ``user``."""
        indexing = self._indexing()
        found = await _store("list a user's sessions", indexing.index.index_sessions(user, now=now))
        max_age = self._engine.max_age
        return [
            item
            for item in found
            if item.record.meta.expires_at > now
            and item.record.meta.created_at + max_age > now
            and indexing.stored_user(item.record) == user
        ]

    async def _revoke(self, user: str, key: str) -> None:
        """Delete the session, then its index entry (never the other way: a session outside its
        user's index could no longer be revoked)."""
        # delete_session follows a rotation's forward: a session moved to a new key since the index
        # was read (an automatic rotation in another request) ends too.
        await _store("revoke a session", self._engine.delete_session(key))
        await self._indexing().removed(user, key)

    def _describe(self, item: IndexedSession, now: float, current_key: str | None) -> ActiveSession:
        key, record, ttl_ends = item
        login = stored_entry(record.fields, LOGIN)
        if type(login) is not dict:  # a corrupt entry: listed, with nothing known of the login
            login = {}
        meta = record.meta
        idle = self._engine.settings.idle_timeout
        last_seen = None if idle is None else max(meta.created_at, min(now, ttl_ends - idle))
        return ActiveSession(
            id=public_id(key, record),
            created_at=meta.created_at,
            login_at=stored_time(login.get("at")) or 0.0,
            last_seen=last_seen,
            expires_at=min(ttl_ends, meta.expires_at, meta.created_at + self._engine.max_age),
            user_agent=_text(login.get("ua")),
            ip=_text(login.get("ip")),
            current=key == current_key,
        )


def session_users(connection: HTTPConnection) -> SessionUsers[SessionDict]:
    """The classic door's ``SessionUsers``, for a request of an app with ``SessionMiddleware``:
    ``session_users(request).login(request.session, "alice", request)``."""
    from .dictsession import SessionDict
    from .middleware import request_session

    live = request_session(connection).live()
    return SessionUsers(live.engine, SessionDict.live)


async def _store(what: str, operation: Awaitable[T]) -> T:
    """Await a store call; any failure becomes one ``SessionStoreUnavailable`` (a 503)."""
    try:
        return await operation
    except SessionStoreUnavailable:
        raise
    except Exception as exc:
        raise SessionStoreUnavailable(
            f"The session store failed to {what} ({type(exc).__name__}: {exc}). Check that the store "
            "is reachable."
        ) from exc


def _text(value: Any) -> str | None:
    return value if type(value) is str else None
