"""The response hook: a thin pure-ASGI wrapper that commits sessions just before the response starts.

It sits on ``send``, so it sees every response kind the same way: a returned model, a ``Response`` the
endpoint built (a redirect after login), a ``StreamingResponse`` or an ``HTTPException`` page. A request
that never asked for its session pays for one small object and nothing else.

Header names are compared as sent: ASGI requires them in lower case. Should an app break that rule, the
worst case is a second ``Vary`` or ``Cache-Control`` line next to its own, which HTTP merges into one
list (and ``no-store`` still wins).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exceptions import RETRY_AFTER_SECONDS, SessionConflictError, SessionStoreError
from .logs import log

if TYPE_CHECKING:
    from .codec import Snapshot
    from .engine import SessionEngine
    from .session import SessionState

__all__ = ["SessionHook"]

_VARY = b"vary"
_CACHE_CONTROL = b"cache-control"
_SET_COOKIE = b"set-cookie"


async def _drop(message: Message) -> None:
    """Where the app's messages go once we answered in its place."""


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> list[Message]:
    """The messages of a JSON error answer given in place of the app's response."""
    response = JSONResponse({"detail": detail}, status, {"Cache-Control": "no-store", **(headers or {})})
    return [
        {"type": "http.response.start", "status": status, "headers": response.raw_headers},
        {"type": "http.response.body", "body": response.body},
    ]


class _Exchange:
    """One request or WebSocket under the hook; ``state`` is set once the endpoint asks for it."""

    __slots__ = ("_send", "engine", "live", "state")

    def __init__(self, engine: SessionEngine[Any], send: Send) -> None:
        self.engine = engine
        self.state: SessionState[Any] | None = None
        self.live: int | None = None
        self._send = send

    def release(self) -> None:
        """Let go of the request once the app returned.

        The scope holds this exchange, and a server's ``send`` may hold the scope (uvicorn's does): a
        reference cycle that only the garbage collector would break, keeping every request alive until
        it runs.
        """
        self.state = None
        self._send = _drop

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``: commits when the response starts, and otherwise hands the server's own
        awaitable back, so a message that needs nothing from us costs no coroutine of ours."""
        state = self.state
        if state is None:
            return self._send(message)
        kind = message["type"]
        if kind == "http.response.start":
            self.state = None
            current = self.engine.codec.snapshot(state.model)
            if self.engine.settled(state, current):  # the common read: no coroutine of ours
                return self._send({**message, "headers": _with_vary(message)})
            return self._start_http(state, current, message)
        if kind == "websocket.accept":
            self.state = None
            return self._accept_websocket(state, message)
        return self._send(message)

    async def _start_http(self, state: SessionState[Any], current: Snapshot, message: Message) -> None:
        status: int = message["status"]
        headers = _with_vary(message)
        if status < 500:
            try:
                cookie = await self.engine.commit(state, current)
            except SessionConflictError as exc:
                await self._replace(_error(409, "Session conflict; retry the request."), exc)
                return
            except SessionStoreError as exc:
                retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
                await self._replace(_error(503, "Session store unavailable.", retry), exc)
                return
            if cookie is not None:
                headers.append((_SET_COOKIE, cookie))
                _forbid_caching_the_cookie(headers)
        await self._send({**message, "headers": headers})

    async def _accept_websocket(self, state: SessionState[Any], message: Message) -> None:
        try:
            cookie = await self.engine.commit(state, self.engine.codec.snapshot(state.model))
        except (SessionConflictError, SessionStoreError) as exc:
            log.error("Session commit failed at WebSocket accept; closing: %s", exc)
            send, self._send = self._send, _drop
            await send({"type": "websocket.close", "code": 1011})
            return
        if cookie is not None:
            headers = [*message.get("headers", ()), (_SET_COOKIE, cookie)]
            message = {**message, "headers": headers}
        await self._send(message)

    async def _replace(self, messages: list[Message], exc: Exception) -> None:
        log.error("Session commit failed; answered %s: %s", messages[0]["status"], exc)
        send, self._send = self._send, _drop  # the rest of the app's response goes nowhere
        for message in messages:
            await send(message)


def _forbid_caching_the_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    """No cache may store our Set-Cookie: add ``no-store``, or to the app's own Cache-Control
    (``public, max-age=600``) add ``no-cache="Set-Cookie"``, which keeps its caching otherwise."""
    for index, (name, value) in enumerate(headers):
        if name == _CACHE_CONTROL:
            lowered = value.lower()
            if lowered.find(b"no-store") < 0 and lowered.find(b"private") < 0:  # see cookie_values
                headers[index] = (name, value + b', no-cache="Set-Cookie"')
            return
    headers.append((_CACHE_CONTROL, b"no-store"))


def _with_vary(message: Message) -> list[tuple[bytes, bytes]]:
    """The response's headers, copied (the list belongs to the app), with ``Cookie`` in ``Vary``."""
    headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    for index, (name, value) in enumerate(headers):
        if name == _VARY:
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"cookie" not in tokens and b"*" not in tokens:
                headers[index] = (name, value + b", Cookie")
            return headers
    headers.append((_VARY, b"Cookie"))
    return headers


class SessionHook:
    """ASGI middleware installed by ``SessionManager.install``; also closes an owned store."""

    def __init__(self, app: ASGIApp, *, manager: Any) -> None:
        self.app = app
        self.manager = manager
        self.engine = manager.engine
        self.key: str = manager.scope_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            exchange = _Exchange(self.engine, send)
            scope[self.key] = exchange
            try:
                await self.app(scope, receive, exchange.send)
            finally:
                if exchange.live is not None:
                    del self.manager.live[exchange.live]
                exchange.release()
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
        else:  # pragma: no cover - no other scope types exist today
            await self.app(scope, receive, send)

    def _lifespan_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.manager.close_owned_store()
            await send(message)

        return wrapped
