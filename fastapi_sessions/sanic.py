"""The Sanic door: ``request.ctx.session`` for Sanic apps, on the same session and engine as the others.

``install(app)`` adds a request middleware that loads the session before the handler runs (handlers
read ``request.ctx.session`` synchronously; a request without the session cookie costs no store call)
and a response middleware that commits it when the response starts, with the typed door's rules:
the same ``Session``, engine and header rules; only Sanic's request
and response API is spelled here.

Sanic has no hook that every request reaches at its end (a cancelled request skips the response
middleware and the ``http.lifecycle.response`` signal), so a finalizer on the request is the backstop
that lets go of its session; the signal lets go of it first on every ordinary path.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from datetime import timedelta
from inspect import isawaitable
from typing import Any, Generic, TypeVar, overload

try:
    from sanic import Request, Sanic
    from sanic.compat import Header
    from sanic.response import HTTPResponse
    from sanic.response.types import BaseHTTPResponse
except ImportError as exc:  # pragma: no cover - exercised in the no-extra nox session
    raise ImportError("The Sanic door needs Sanic: pip install 'pselfastapise-async[sanic]'") from exc

from pydantic import BaseModel

from .backends.adapter import as_store
from .backends.base import Backend
from .clock import Clock, SystemClock
from .codec import Codec, ModelCodec
from .dictsession import DictCodec, SessionDict
from .encryption import encrypt_store
from .engine import SessionEngine
from .exceptions import (
    CONFLICT_DETAIL,
    UNAVAILABLE_DETAIL,
    UNAVAILABLE_HEADERS,
    SessionConfigError,
    SessionConflictError,
    SessionLoginRequired,
    SessionStoreError,
    SessionStoreUnavailable,
    error_body,
)
from .flashes import Flash, FlashCategory, add_flash, take_flashes
from .freshness import check_login, seconds
from .headers import NO_STORE, VARY_COOKIE, cache_control_with_cookie, vary_with_cookie
from .logs import log
from .session import Session, live_session
from .settings import SessionSettings, settings_from
from .stores.base import SessionStore
from .stores.factory import check_store_settings, store_from_settings
from .stores.metered import unwrapped
from .users import SessionUsers

__all__ = ["SanicSessions", "install"]

D = TypeVar("D")
M = TypeVar("M", bound=BaseModel)

# Sanic runs request middleware from the highest priority down, response middleware from the lowest
# up: ours loads first (the app's middleware can read the session) and commits last (so the commit
# sees the response and the session as the app's middleware left them).
_OUTERMOST = 1_000_000
# Where a request keeps its Session, next to the data in request.ctx.session.
_SLOT = "_fastapi_sessions"
_SKIPPED = (
    "A session change was NOT saved: the response went out without the fastapi_sessions response "
    "middleware (a response middleware that runs before it returned a new response, or raised). "
    "Change that middleware to modify the response instead of returning another one."
)


class _Answer(HTTPResponse):
    """A JSON error given in place of the app's response, as every door gives it.

    A streaming handler holds the answer as its own response and goes on sending: what it sends is
    dropped (as the ASGI hook drops it), and the answer goes out whole at the first send.
    """

    __slots__ = ("_sent",)

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        body = error_body(detail)
        headers = {"Cache-Control": "no-store", **(headers or {})}
        super().__init__(body, status, headers, content_type="application/json")
        self._sent = False

    async def send(self, data: str | bytes | None = None, end_stream: bool | None = None) -> None:
        if not self._sent:
            self._sent = True
            await super().send(end_stream=True)


def _unavailable(request: Request[Any, Any], exc: Exception) -> HTTPResponse:
    """The exception handler for ``SessionStoreUnavailable`` raised in a handler (a degraded session)."""
    return _Answer(503, UNAVAILABLE_DETAIL, UNAVAILABLE_HEADERS)


def _login_required(request: Request[Any, Any], exc: Exception) -> HTTPResponse:
    """The exception handler for ``SessionLoginRequired``: the 401 the FastAPI doors answer."""
    assert isinstance(exc, SessionLoginRequired)  # noqa: S101 - registered for that class only
    body = json.dumps({"detail": exc.detail}, separators=(",", ":")).encode()
    return HTTPResponse(body, 401, dict(exc.headers or {}), content_type="application/json")


def _cookie_headers(headers: Header) -> list[tuple[bytes, bytes]]:
    """The request's ``Cookie`` headers as raw ASGI-style pairs, which is how the engine reads them.

    A character that does not fit latin-1 becomes '?': no cookie of ours holds one.
    """
    return [(b"cookie", str(value).encode("latin-1", "replace")) for value in headers.getall("cookie", [])]


def _merge(headers: Header, name: str, rule: Callable[[bytes], bytes | None], default: bytes) -> None:
    """Apply a header rule (see ``headers.py``) to the response's ``name`` lines, joined into one as
    HTTP allows; ``default`` when it has none. Values are encoded as Sanic sends them."""
    values = headers.getall(name, [])
    if not values:
        headers[name] = default.decode()
        return
    merged = rule(", ".join(map(str, values)).encode(errors="surrogateescape"))
    if merged is not None:
        headers[name] = merged.decode(errors="surrogateescape")


class SanicSessions(Generic[D]):
    """One Sanic app's sessions, as ``install`` set them up; ``D`` is the session's type.

    It holds the ``settings``, the ``store`` and the ``engine``, and offers ``regenerate``,
    ``destroy`` and ``set_expiry`` for typed sessions (a ``SessionDict`` has them as methods), and
    ``flash`` and ``flashes`` for both.
    """

    def __init__(self, engine: SessionEngine[D], live: dict[int, Session[D]], *, owns_store: bool) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.store = unwrapped(engine.store)
        self.live = live
        """The sessions of requests in flight, by ``id()`` of their data: where the operations go."""
        self._owns_store = owns_store
        self.users = SessionUsers(engine, self.session_of)
        """A user's sessions: ``list_sessions``, ``revoke``, ``revoke_all`` (log in with ``login``)."""

    # -- the operations -------------------------------------------------------------------------

    def session_of(self, data: D) -> Session[D]:
        """The live session whose data is ``data``."""
        return live_session(
            self.live,
            data,
            "This object is not the session of a request in flight: pass request.ctx.session of the "
            "current request.",
        )

    def regenerate(self, session: D) -> None:
        """Give the session a new ID at commit, keeping its data: call it at every login."""
        self.session_of(session).regenerate()

    def login(self, session: D, user: str, request: Request[Any, Any]) -> None:
        """Log ``user`` in to ``session`` at commit: a new ID, bound to the user (another user's data
        cleared), with the time, user agent and (``SESSION_RECORD_IP``) ``request.ip``; see
        ``SessionUsers.login``."""
        agent = request.headers.get("user-agent")
        self.users.login_with(session, user, user_agent=agent, ip=request.ip)

    def destroy(self, session: D) -> None:
        """End the session: its record is deleted at commit and the cookie expired; the data is reset
        now, and changes made after this start a new session under a new ID."""
        self.session_of(session).destroy()

    def set_expiry(self, session: D, seconds: float | timedelta | None) -> None:
        """Remember me: keep the session (and a persistent cookie) ``seconds`` from now, within
        SESSION_MAX_AGE; ``None`` makes it a browser-session cookie again."""
        self.session_of(session).set_expiry(seconds)

    def flash(self, session: D, message: str, category: FlashCategory = "info") -> None:
        """Keep a flash message in the session until a request reads it with ``flashes``."""
        add_flash(self.session_of(session), message, category)

    def flashes(self, session: D) -> list[Flash]:
        """The session's flash messages, oldest first, taken out of it (``fastapi_sessions.flashes``)."""
        return take_flashes(self.session_of(session))

    def require_login(
        self,
        session: D,
        *,
        login_within: float | timedelta | None = None,
        used_within: float | timedelta | None = None,
    ) -> None:
        """Raise ``SessionLoginRequired``, answered 401, unless the session is logged in (and its login
        at most ``login_within`` old, its last guarded use within ``used_within``): call it first in
        a handler that needs a login. See "Route guards" in the docs."""
        check_login(
            self.session_of(session),
            login_within=seconds(login_within, "login_within"),
            used_within=seconds(used_within, "used_within"),
        )

    async def close_owned_store(self, app: Sanic[Any, Any] | None = None) -> None:
        """Close the store if ``install`` made it from ``SESSION_STORE_URL`` (a Sanic listener)."""
        if self._owns_store:
            await self.store.aclose()

    # -- Sanic's middleware and signals --------------------------------------------------------------

    async def _load(self, request: Request[Any, Any]) -> HTTPResponse | None:
        """Request middleware: ``request.ctx.session``, or the 503 when the store is down."""
        ctx = request.ctx
        if hasattr(ctx, _SLOT):  # Sanic ran the request middleware again to answer an error
            return None
        session = Session(self.engine, _cookie_headers(request.headers), self.live)
        try:
            data = await session.load()  # no cookie: a new session, and no store call
        except SessionStoreUnavailable:  # logged by the engine
            return _Answer(503, UNAVAILABLE_DETAIL, UNAVAILABLE_HEADERS)
        setattr(ctx, _SLOT, session)
        ctx.session = data
        # The backstop for the paths that reach no signal; about 0.8 us per request (measured).
        weakref.finalize(request, session.release, completed=False)
        route = request.route
        if route is not None and route.extra.websocket:
            # Sanic answers the handshake without response middleware: nothing can be saved.
            session.close(self.engine.codec.snapshot(data))
        return None

    async def _commit(self, request: Request[Any, Any], response: BaseHTTPResponse) -> HTTPResponse | None:
        """Response middleware: save what the request changed, and add the cookie and headers.

        A 409 or 503 replaces the response; a 5xx saves nothing. Any other failure (a session over
        SESSION_MAX_SIZE, a value that is not JSON) is answered by the app's error handler: raised
        here, Sanic would log it and send the response as if the session were saved.
        """
        session: Session[D] | None = getattr(request.ctx, _SLOT, None)
        if session is None or session.committed:
            return None
        data = session.data
        assert data is not None  # noqa: S101 - set by _load
        try:
            current = self.engine.codec.snapshot(data)
            if response.status >= 500 or session.settled(current):
                session.close(current)
                cookie = None
            else:
                cookie = await session.commit(current)
        except SessionConflictError as exc:
            return _replaced(_Answer(409, CONFLICT_DETAIL), exc)
        except SessionStoreError as exc:
            return _replaced(_Answer(503, UNAVAILABLE_DETAIL, UNAVAILABLE_HEADERS), exc)
        except Exception as exc:
            self._let_go(request, completed=False)
            answer: HTTPResponse = request.app.error_handler.response(request, exc)  # and logs it
            if isawaitable(answer):  # an async exception handler of the app's
                answer = await answer
            return answer
        headers = response.headers
        _merge(headers, "vary", vary_with_cookie, VARY_COOKIE)
        if cookie is not None:
            headers.add("set-cookie", cookie.decode("latin-1"))  # added: the app's cookies stay
            _merge(headers, "cache-control", cache_control_with_cookie, NO_STORE)
        return None

    async def _release(self, request: Request[Any, Any], **context: Any) -> None:
        """Signal handler at the end of a request (``http.lifecycle.response``, after a streamed body
        too) or of a WebSocket handler: let go, and report a change too late to be saved."""
        self._let_go(request, completed=True)

    def _let_go(self, request: Request[Any, Any], *, completed: bool) -> None:
        ctx = request.ctx
        session: Session[D] | None = getattr(ctx, _SLOT, None)
        if session is None:
            return
        delattr(ctx, _SLOT)
        data = session.data
        if completed and not session.committed and data is not None:
            current = self.engine.codec.snapshot(data)
            if not session.settled(current):
                log.warning(_SKIPPED)
            session.close(current)
        session.release(completed=completed)


def _replaced(answer: HTTPResponse, exc: Exception) -> HTTPResponse:
    """``answer`` in place of the app's response, with the reason logged (once)."""
    log.error("Session commit failed; answered %s: %s", answer.status, exc)
    return answer


@overload
def install(
    app: Sanic[Any, Any],
    *,
    model: None = None,
    backend: SessionStore | Backend | None = None,
    settings: SessionSettings | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> SanicSessions[SessionDict]: ...


@overload
def install(
    app: Sanic[Any, Any],
    *,
    model: type[M],
    backend: SessionStore | Backend | None = None,
    settings: SessionSettings | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> SanicSessions[M]: ...


def install(
    app: Sanic[Any, Any],
    *,
    model: type[BaseModel] | None = None,
    backend: SessionStore | Backend | None = None,
    settings: SessionSettings | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> SanicSessions[Any]:
    """Server-side sessions for a Sanic app, as ``request.ctx.session``; call it once, before the app
    starts.

    ``request.ctx.session`` is a ``SessionDict`` (a dict of JSON values), or an
    instance of ``model`` (a Pydantic model whose fields all have defaults). Options are any
    ``SessionSettings`` field by its name (``cookie_secure``, ``max_age``...), also the article's
    ``cookie_https_only`` and Starlette's ``session_cookie``, ``https_only``, ``same_site``, ``path``
    and ``domain``; what is not given comes from the ``SESSION_*`` environment. Or pass
    ``settings=SessionSettings(...)``. ``backend`` is the store (any ``SessionStore``, or a
    ``Backend`` of your own); without it the store comes from ``SESSION_STORE_URL`` (memory by
    default) and is closed when the server stops. ``clock`` is for tests: a ``FakeClock``, the one
    the store was given.
    """
    if hasattr(app.ctx, _SLOT):
        raise SessionConfigError(
            f"fastapi_sessions is installed on the Sanic app {app.name!r} already: there is one "
            "request.ctx.session per request. Call install(app) once."
        )
    settings = settings_from(settings, options, "install")
    live: dict[int, Session[Any]] = {}
    codec: Codec[Any] = DictCodec(live) if model is None else ModelCodec(model)
    clock = clock or SystemClock()
    if backend is not None:
        check_store_settings(settings, backend)
    store = (
        store_from_settings(settings, clock=clock) if backend is None else as_store(backend, clock=clock)
    )
    store = encrypt_store(store, settings)  # SESSION_ENCRYPTION_KEYS, if set
    sessions = SanicSessions(SessionEngine(codec, settings, store, clock), live, owns_store=backend is None)
    app.register_middleware(sessions._load, "request", priority=_OUTERMOST)
    app.register_middleware(sessions._commit, "response", priority=_OUTERMOST)
    app.signal("http.lifecycle.response")(sessions._release)
    app.signal("websocket.handler.after")(sessions._release)
    app.exception(SessionStoreUnavailable)(_unavailable)
    app.exception(SessionLoginRequired)(_login_required)
    if backend is None:
        app.after_server_stop(sessions.close_owned_store)
    setattr(app.ctx, _SLOT, sessions)
    return sessions
