"""The response hook: a thin pure-ASGI wrapper that commits sessions just before the response starts.

It sits on ``send``, so it sees every response kind the same way: a returned model, a ``Response`` the
endpoint built (a redirect after login), a ``StreamingResponse`` or an ``HTTPException`` page. A request
that never asked for its session pays for one small object and nothing else.

Header names are compared as sent: ASGI requires them in lower case. Should an app break that rule, the
worst case is a second ``Vary`` or ``Cache-Control`` line next to its own, which HTTP merges into one
list (and ``no-store`` still wins).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exceptions import (
    CONFLICT_DETAIL,
    UNAVAILABLE_DETAIL,
    UNAVAILABLE_HEADERS,
    SessionConfigError,
    SessionConflictError,
    SessionStoreError,
    error_body,
)
from .headers import (
    CACHE_CONTROL,
    NO_STORE,
    SET_COOKIE,
    VARY,
    VARY_COOKIE,
    cache_control_with_cookie,
    vary_with_cookie,
)
from .logs import log

if TYPE_CHECKING:
    from .codec import Snapshot
    from .engine import SessionEngine
    from .session import Session

__all__ = ["SessionHook"]


async def _drop(message: Message) -> None:
    """Where the app's messages go once we answered in its place."""


def scope_key(cookie_name: str) -> str:
    """Where a door keeps its request's exchange in the ASGI scope: one key per cookie name."""
    return f"fastapi_sessions.{cookie_name}"


def second_door(key: str) -> SessionConfigError:
    """Why a request met two session doors with the same cookie name: they would share one cookie,
    and each would read the other's sessions as its own."""
    name = key.partition(".")[2]
    return SessionConfigError(
        f"Two session set-ups in this app use the cookie name {name!r}: a SessionManager installed "
        "twice (install it once, on the outermost app), or two managers or middlewares sharing "
        f"SESSION_COOKIE_NAME={name}. Give each its own cookie name."
    )


def error_messages(status: int, detail: str, headers: dict[str, str] | None = None) -> list[Message]:
    """The messages of a JSON error answer given in place of the app's response."""
    headers = {"Cache-Control": "no-store", **(headers or {})}
    response = Response(error_body(detail), status, headers, media_type="application/json")
    return [
        {"type": "http.response.start", "status": status, "headers": response.raw_headers},
        {"type": "http.response.body", "body": response.body},
    ]


def unavailable_messages() -> list[Message]:
    """The 503 answered when the session store fails."""
    return error_messages(503, UNAVAILABLE_DETAIL, UNAVAILABLE_HEADERS)


class Exchange:
    """One request or WebSocket under a session door; ``session`` is set once the request uses it.

    It owns the ``send`` the app gets: the session commits when the response starts, and a message
    that needs nothing from us costs no coroutine of ours.
    """

    __slots__ = ("_send", "engine", "scheme", "session", "started", "vary_on_access")

    def __init__(
        self,
        engine: SessionEngine[Any],
        send: Send,
        scheme: str,
        session: Session[Any] | None = None,
        *,
        vary_on_access: bool = False,
    ) -> None:
        self.engine = engine
        self.scheme = scheme
        """The scope's scheme (``http``, ``https``, ``ws``, ``wss``): where our cookie goes."""
        self.session = session
        self.vary_on_access = vary_on_access
        """Add ``Vary: Cookie`` to an unchanged session's response only if the app read the session
        (the classic doors, which load every session with a cookie); the typed door loads on use."""
        self.started = False
        """A message went out while no session was open: a session loaded now cannot be saved."""
        self._send = send

    def release(self, *, completed: bool) -> None:
        """Let go of the request once the app returned (``completed``) or raised.

        The scope holds this exchange, and a server's ``send`` may hold the scope (uvicorn's does): a
        reference cycle that only the garbage collector would break, keeping every request alive until
        it runs.
        """
        session = self.session
        if session is not None:
            self.session = None
            session.release(completed=completed)
        self._send = _drop

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``: commits when the response starts, else hands the server's own awaitable
        back."""
        session = self.session
        if session is None or session.committed:
            self.started = True
            return self._send(message)
        kind = message["type"]
        if kind == "http.response.start":
            data = session.data
            if data is None:  # still loading in another task: too late for it
                self.started = True
                return self._send(message)
            current = session.settle(data)
            if current is None:  # the common read: no coroutine of ours
                if self.vary_on_access and not data.accessed:
                    return self._send(message)
                return self._send({**message, "headers": _with_vary(message)})
            return self._start_http(session, current, message)
        if kind == "websocket.accept" and session.data is not None:
            return self._accept_websocket(session, message)
        return self._send(message)

    async def _start_http(self, session: Session[Any], current: Snapshot, message: Message) -> None:
        status: int = message["status"]
        headers = _with_vary(message)
        if status >= 500:  # the request failed: save nothing of it
            session.close(current)
        else:
            try:
                cookie = await session.commit(current)
            except SessionConflictError as exc:
                await self.replace(error_messages(409, CONFLICT_DETAIL), exc)
                return
            except SessionStoreError as exc:
                await self.replace(unavailable_messages(), exc)
                return
            if cookie is not None:
                headers.append((SET_COOKIE, cookie))
                _forbid_caching_the_cookie(headers)
                self._check_transport(session)
        await self._send({**message, "headers": headers})

    async def _accept_websocket(self, session: Session[Any], message: Message) -> None:
        try:
            cookie = await session.commit(self.engine.codec.snapshot(session.data))
        except (SessionConflictError, SessionStoreError) as exc:
            log.error("Session commit failed at WebSocket accept; closing: %s", exc)
            send, self._send = self._send, _drop
            await send({"type": "websocket.close", "code": 1011})
            return
        if cookie is not None:
            headers = [*message.get("headers", ()), (SET_COOKIE, cookie)]
            message = {**message, "headers": headers}
            self._check_transport(session)
        await self._send(message)

    def _check_transport(self, session: Session[Any]) -> None:
        """Warn (once per door) if the cookie just set goes over plain http where it is lost."""
        plain_http = self.engine.plain_http
        if plain_http.pending:
            plain_http.check(self.scheme, session.headers)

    async def replace(self, messages: list[Message], exc: Exception) -> None:
        """Answer with ``messages`` in place of the app's response, and log why (once)."""
        log.error("Session commit failed; answered %s: %s", messages[0]["status"], exc)
        send, self._send = self._send, _drop  # the rest of the app's response goes nowhere
        for message in messages:
            await send(message)


def _forbid_caching_the_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    """No cache may store our Set-Cookie: the app's Cache-Control made safe, or ``no-store``."""
    for index, (name, value) in enumerate(headers):
        if name == CACHE_CONTROL:
            safe = cache_control_with_cookie(value)
            if safe is not None:
                headers[index] = (name, safe)
            return
    headers.append((CACHE_CONTROL, NO_STORE))


def _with_vary(message: Message) -> list[tuple[bytes, bytes]]:
    """The response's headers, copied (the list belongs to the app), with ``Cookie`` in ``Vary``."""
    headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    for index, (name, value) in enumerate(headers):
        if name == VARY:
            merged = vary_with_cookie(value)
            if merged is not None:
                headers[index] = (name, merged)
            return headers
    headers.append((VARY, VARY_COOKIE))
    return headers


class SessionHook:
    """ASGI middleware of the typed door, installed by ``SessionManager.install``.

    It hands each request an ``Exchange`` (under ``scope_key``) for the dependency to open the
    session in, and at shutdown runs ``on_shutdown`` (closing a store the manager made).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        engine: SessionEngine[Any],
        scope_key: str,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.key = scope_key
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            if self.key in scope:
                raise second_door(self.key)
            exchange = Exchange(self.engine, send, scope.get("scheme", "http"))
            scope[self.key] = exchange
            try:
                await self.app(scope, receive, exchange.send)
            except BaseException:
                exchange.release(completed=False)
                raise
            exchange.release(completed=True)
        elif kind == "lifespan" and self.on_shutdown is not None:
            await self.app(scope, receive, shutdown_send(send, self.on_shutdown))
        else:
            await self.app(scope, receive, send)


def shutdown_send(send: Send, on_shutdown: Callable[[], Awaitable[None]]) -> Send:
    """A lifespan ``send`` that runs ``on_shutdown`` before reporting the shutdown complete."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            await on_shutdown()
        await send(message)

    return wrapped
