"""``SessionManager``: the dependency that yields the typed session, and the lifecycle operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from .backends.adapter import as_store
from .backends.base import Backend
from .clock import Clock, SystemClock
from .codec import ModelCodec
from .encryption import encrypt_store
from .engine import SessionEngine
from .exceptions import SessionNotInstalledError
from .flashes import Flash, FlashCategory, add_flash, take_flashes
from .hook import Exchange, SessionHook, scope_key
from .session import Session, live_session
from .settings import SessionSettings
from .stores.base import SessionStore
from .stores.factory import check_store_settings, store_from_settings
from .users import SessionUsers

if TYPE_CHECKING:
    from .guards import SessionGuard

__all__ = ["SessionManager"]

M = TypeVar("M", bound=BaseModel)


class SessionManager(Generic[M]):
    """Typed server-side sessions for one model class.

    Build it once per app, call ``install`` on the app, and depend on ``get_session``:

        sessions = SessionManager(UserSession)
        sessions.install(app)
        Session = Annotated[UserSession, Depends(sessions.get_session)]

    The store is the one ``SESSION_STORE_URL`` names unless ``store=`` passes one: any
    ``SessionStore``, or a ``fastapi_sessions.backends.Backend``, which is wrapped for you
    (``as_store``). A store passed in is yours to close.
    """

    def __init__(
        self,
        model: type[M],
        *,
        settings: SessionSettings | None = None,
        store: SessionStore | Backend | None = None,
        clock: Clock | None = None,
    ) -> None:
        codec = ModelCodec(model)
        self.settings = settings if settings is not None else SessionSettings()
        clock = clock or SystemClock()
        self._owns_store = store is None
        if store is not None:
            check_store_settings(self.settings, store)
        self.store: SessionStore = (
            as_store(store, clock=clock)
            if store is not None
            else store_from_settings(self.settings, clock=clock)
        )
        self.store = encrypt_store(self.store, self.settings)  # SESSION_ENCRYPTION_KEYS, if set
        self.engine = SessionEngine(codec, self.settings, self.store, clock)
        self.model = model
        self.scope_key = scope_key(self.settings.cookie_name)
        # The sessions of requests in flight, by id() of their model: regenerate(session) & co. find
        # them here. Each session registers when it loads and leaves when its request ends.
        self.live: dict[int, Session[M]] = {}
        self.get_session: Callable[[HTTPConnection], Awaitable[M]] = self._dependency()
        """The dependency: this request's session, loaded once per request (HTTP and WebSocket)."""
        self.users = SessionUsers(self.engine, self.session_of)
        """Logins and a user's sessions: ``sessions.users.login(session, user_id, request)``,
        ``list_sessions``, ``revoke``, ``revoke_all`` (see 'Users and their sessions' in the docs)."""

    @cached_property
    def require_login(self) -> SessionGuard[M]:
        """The dependency of routes that need a logged-in session: the session, else a 401
        (``SessionLoginRequired``); ``/docs`` shows the session cookie as their security scheme."""
        return self.require_fresh()

    def require_fresh(
        self, *, login_within: float | timedelta | None = None, used_within: float | timedelta | None = None
    ) -> SessionGuard[M]:
        """A dependency like ``require_login`` that demands more: a login at most ``login_within`` old
        (re-authentication for admin and payment routes), a session used within ``used_within`` (an
        idle window shorter than SESSION_IDLE_TIMEOUT); see "Route guards" in the docs. Build it once,
        at import time, not per request."""
        from .guards import SessionGuard  # imports FastAPI: not before a guard is asked for

        return SessionGuard(
            self._guarded,
            cookie_name=self.settings.cookie_name,
            login_within=login_within,
            used_within=used_within,
        )

    async def _guarded(self, connection: HTTPConnection) -> tuple[M, Session[M]]:
        model = await self.get_session(connection)
        return model, self.session_of(model)

    def install(self, app: Starlette) -> None:
        """Add the response hook to ``app``, and close the store at shutdown if this manager made it.

        Call it once, before the app starts. Routers included in ``app`` and apps mounted under it are
        covered too.
        """
        app.add_middleware(
            SessionHook, engine=self.engine, scope_key=self.scope_key, on_shutdown=self.close_owned_store
        )

    def _dependency(self) -> Callable[[HTTPConnection], Awaitable[M]]:
        # A plain function rather than a bound method: FastAPI inspects a dependency on every
        # request, and a bound method costs it a failed attribute lookup each time (~1.5% of a route).
        scope_key, engine, live = self.scope_key, self.engine, self.live

        async def get_session(connection: HTTPConnection) -> M:
            exchange: Exchange | None = connection.scope.get(scope_key)
            if exchange is None:
                raise SessionNotInstalledError(
                    "get_session was used in an app where the SessionManager is not installed; call "
                    "sessions.install(app) on the FastAPI app (the outermost one, if apps are mounted)."
                )
            session: Session[M] | None = exchange.session
            if session is None:
                session = exchange.session = Session(engine, connection.scope["headers"], live)
            model = session.data
            if model is None:
                model = session.adopt(await engine.load(connection.scope["headers"]))
                if exchange.started and not session.committed:  # first asked for in a streaming body
                    session.close(engine.codec.snapshot(model))
            return model

        return get_session

    async def close_owned_store(self) -> None:
        """Close the store if this manager created it from ``SESSION_STORE_URL``."""
        if self._owns_store:
            await self.store.aclose()

    def session_of(self, model: M) -> Session[M]:
        """The live session whose data is ``model``: where regenerate, destroy and set_expiry go."""
        return live_session(
            self.live,
            model,
            "This object is not a live session of this manager: pass the model that get_session "
            "returned in the current request. In a test, a model from app.dependency_overrides["
            "sessions.get_session] is not live; seed the session instead: "
            "fastapi_sessions.testing.seed_session(client, sessions, YourModel(...)) before the "
            "request (see 'Testing your app' in the docs).",
        )

    def regenerate(self, session: M) -> None:
        """Give the session a new ID at commit, keeping its data and creation time.

        Call it on every privilege change (login, sudo): the old ID stops working at once.
        """
        self.session_of(session).regenerate()

    def destroy(self, session: M) -> None:
        """End the session: its record is deleted at commit and the cookie is expired.

        The model is back to its defaults at once; if the request changes it again, those changes
        start a new session under a new ID (a "you have been logged out" message works).
        """
        self.session_of(session).destroy()

    def set_expiry(self, session: M, seconds: float | timedelta | None) -> None:
        """Make the session (and its cookie) last ``seconds`` from now, capped by SESSION_MAX_AGE.

        This is "remember me": the cookie becomes persistent. ``None`` turns it back into a
        browser-session cookie with the default lifetime.
        """
        self.session_of(session).set_expiry(seconds)

    def flash(self, session: M, message: str, category: FlashCategory = "info") -> None:
        """Keep a flash message in the session until a request reads it with ``flashes``.

        At most ``MAX_FLASHES`` (32) wait; more drop the oldest. It works after ``destroy`` (the
        message starts the new session), and on a visitor without a session (it starts one).
        """
        add_flash(self.session_of(session), message, category)

    def flashes(self, session: M) -> list[Flash]:
        """The session's flash messages, oldest first, taken out of it: the next request sees none.

        A request that finds some writes the session; one that finds none writes nothing.
        """
        return take_flashes(self.session_of(session))

    def __repr__(self) -> str:
        return f"SessionManager({self.model.__name__}, store={type(self.store).__name__})"
