"""The classic door: ``SessionMiddleware`` and ``request.session`` for FastAPI and Starlette apps.

``request.session`` is read synchronously, so this door loads the session before the route runs, and
only when the request carries the session cookie: a request without one costs no store call (the
typed door goes further and loads only in routes that ask for the session). ``paths`` limits loading
to some path prefixes. Commit, failures, size limits and security are the typed door's: the same
``Session`` and engine, through the same ASGI exchange.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .backends.adapter import as_store
from .backends.base import Backend
from .clock import Clock, SystemClock
from .dictsession import DictCodec, SessionDict
from .encryption import encrypt_store
from .engine import SessionEngine
from .exceptions import (
    SessionConfigError,
    SessionNotInstalledError,
    SessionStoreUnavailable,
    SessionUsageError,
)
from .hook import Exchange, scope_key, second_door, shutdown_send, unavailable_messages
from .session import Session
from .settings import SessionSettings, settings_from
from .stores.base import SessionStore
from .stores.factory import check_store_settings, store_from_settings

__all__ = ["SessionMiddleware", "request_session"]


class _NotLoadedHere(dict[str, Any]):
    """``request.session`` on a path outside ``paths``: any use says why there is no session."""

    __slots__ = ("_paths",)

    def __init__(self, paths: tuple[str, ...]) -> None:
        super().__init__()
        self._paths = paths

    def mark_accessed(self) -> None:
        raise SessionUsageError(
            f"request.session is not loaded on this path: SessionMiddleware(paths={list(self._paths)!r}) "
            "loads sessions under those path prefixes only. Add this path's prefix to paths."
        )


class SessionMiddleware:
    """Server-side sessions as ``request.session``, a dict of JSON values saved when it changes.

        app.add_middleware(SessionMiddleware, secret_key=..., max_age=3600)

    Options are any ``SessionSettings`` field by its name (``cookie_secure``, ``idle_timeout``...),
    also ``cookie_https_only`` (the article's) and Starlette's ``session_cookie``, ``https_only``,
    ``same_site``, ``path`` and ``domain``; what is not given comes from the ``SESSION_*``
    environment. Or pass ``settings=SessionSettings(...)``. ``backend`` is the store: any
    ``SessionStore`` (``MemoryBackend()``, ``RedisBackend(...)``...) or a ``Backend`` of your own;
    without it the store comes from ``SESSION_STORE_URL`` (memory by default) and is closed at
    shutdown. A store passed in is yours to close.
    """

    def __init__(
        self,
        app: ASGIApp,
        /,  # positional-only: Starlette's Middleware() and add_middleware() type-check it so
        *,
        backend: SessionStore | Backend | None = None,
        settings: SessionSettings | None = None,
        paths: Sequence[str] | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.settings = settings_from(settings, options, "SessionMiddleware")
        clock = clock or SystemClock()
        self._owns_store = backend is None
        if backend is not None:
            check_store_settings(self.settings, backend)
        self.store: SessionStore = (
            store_from_settings(self.settings, clock=clock)
            if backend is None
            else as_store(backend, clock=clock)
        )
        self.store = encrypt_store(self.store, self.settings)  # SESSION_ENCRYPTION_KEYS, if set
        # The sessions of requests in flight, by id() of their dict: request.session.regenerate() & co.
        self.live: dict[int, Session[SessionDict]] = {}
        self.engine = SessionEngine(DictCodec(self.live), self.settings, self.store, clock)
        self.key = scope_key(self.settings.cookie_name)
        if paths is not None and (
            isinstance(paths, str) or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise SessionConfigError(
                f"SessionMiddleware paths must be a list of path prefixes starting with '/', not {paths!r}."
            )
        self.paths = None if paths is None else tuple(paths)
        self._outside = None if self.paths is None else _NotLoadedHere(self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and self._owns_store:
                send = shutdown_send(send, self.store.aclose)
            await self.app(scope, receive, send)
            return
        if self.key in scope:
            raise second_door(self.key)
        if self.paths is not None and not scope["path"].startswith(self.paths):
            scope["session"] = self._outside
            await self.app(scope, receive, send)
            return
        session = Session(self.engine, scope["headers"], self.live)
        try:
            data = await session.load()  # no cookie: a new session, and no store call
        except SessionStoreUnavailable:  # logged by the engine
            if kind == "http":
                for message in unavailable_messages():
                    await send(message)
            else:
                await send({"type": "websocket.close", "code": 1011})
            return
        exchange = Exchange(self.engine, send, scope.get("scheme", "http"), session, vary_on_access=True)
        scope[self.key] = exchange
        scope["session"] = data
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException:
            exchange.release(completed=False)
            raise
        exchange.release(completed=True)


def request_session(connection: HTTPConnection) -> SessionDict:
    """``request.session`` typed as the ``SessionDict`` it is (for ``regenerate()`` & co.)."""
    session = connection.scope.get("session")
    if isinstance(session, _NotLoadedHere):
        session.mark_accessed()  # raises, saying why
    if not isinstance(session, SessionDict):
        raise SessionNotInstalledError(
            "request.session is not a fastapi_sessions session: add the middleware with "
            "app.add_middleware(SessionMiddleware, ...) (from fastapi_sessions)."
        )
    session.mark_accessed()
    return session
