"""The response hook and the dependency: every response kind commits, failures answer cleanly."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import copy
import gc
import inspect
import logging
import warnings
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send

from fastapi_sessions import (
    SessionManager,
    SessionNotInstalledError,
    SessionTooLargeError,
    SessionUsageError,
)
from fastapi_sessions.stores import MemoryStore, SessionChange, WriteResult
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import UserSession, go_down, make_app, make_settings

# Starlette 1.x warns at import that its TestClient wants `httpx2`; the httpx it falls back to works.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

Factory = Callable[..., SessionManager[UserSession]]


class ProxyStore(RecordingStore):
    """The shipped RecordingStore, plus a way to fake what ``update`` answers (a lost race)."""

    update_result: WriteResult | None = None

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if self.update_result is not None:
            self._enter("update", key)
            return self.update_result
        return await super().update(key, change, ttl=ttl, expected=expected)


@pytest.fixture
def store(clock: FakeClock) -> ProxyStore:
    return ProxyStore(MemoryStore(clock=clock))


def build_app(sessions: SessionManager[UserSession]) -> FastAPI:
    """The quickstart app plus one route per response kind under test."""
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/model/{user_id}")
    async def as_model(user_id: int, session: Session) -> UserSession:
        session.user_id = user_id
        return session

    @app.post("/stream")
    async def stream(session: Session) -> StreamingResponse:
        session.cart.append("streamed")

        async def chunks() -> AsyncIterator[bytes]:
            yield b"one,"
            yield b"two"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/own-headers")
    async def own_headers(session: Session) -> JSONResponse:
        session.prefs["theme"] = "dark"
        response = JSONResponse(
            {"ok": True}, headers={"Vary": "Accept", "Cache-Control": "private, max-age=60"}
        )
        response.set_cookie("theme", "dark")
        return response

    @app.post("/forbidden")
    async def forbidden(session: Session) -> None:
        session.user_id = 99
        raise HTTPException(status_code=403, detail="no")

    @app.post("/boom")
    async def boom(session: Session) -> None:
        session.user_id = 5
        raise RuntimeError("boom")

    @app.post("/status/{code}")
    async def status(code: int, session: Session) -> JSONResponse:
        session.user_id = 5
        return JSONResponse({"secret": "app-body"}, status_code=code)

    @app.post("/sync-cart/{item}")
    def sync_add(item: str, session: Session) -> dict[str, list[str]]:
        session.cart.append(item)
        return {"cart": session.cart}

    @app.post("/sync-login/{user_id}")
    def sync_login(user_id: int, session: Session) -> RedirectResponse:
        sessions.regenerate(session)
        session.user_id = user_id
        return RedirectResponse("/me", status_code=303)

    @app.post("/sync-logout")
    def sync_logout(session: Session) -> RedirectResponse:
        sessions.destroy(session)
        return RedirectResponse("/me", status_code=303)

    @app.post("/regenerate-a-copy")
    async def regenerate_copy(session: Session) -> None:
        sessions.regenerate(session.model_copy())

    router = APIRouter()

    @router.post("/items/{item}")
    async def router_add(item: str, session: Session) -> dict[str, list[str]]:
        session.cart.append(item)
        return {"cart": session.cart}

    @router.get("/me")
    async def router_me(session: Session) -> UserSession:
        return session

    app.include_router(router, prefix="/api")

    sub = FastAPI()

    @sub.post("/cart/{item}")
    async def sub_add(item: str, session: Session) -> dict[str, list[str]]:
        session.cart.append(item)
        return {"cart": session.cart}

    app.mount("/sub", sub)

    @app.websocket("/ws-read")
    async def ws_read(websocket: WebSocket, session: Session) -> None:
        await websocket.accept()
        await websocket.send_json(session.model_dump())
        await websocket.close()

    @app.websocket("/ws-write")
    async def ws_write(websocket: WebSocket, session: Session) -> None:
        session.user_id = 42
        await websocket.accept()
        await websocket.send_json({"user_id": session.user_id})
        await websocket.close()

    @app.websocket("/ws-reject")
    async def ws_reject(websocket: WebSocket, session: Session) -> None:
        session.user_id = 7
        await websocket.close(code=1008)

    return app


@pytest.fixture
def app(sessions: SessionManager[UserSession]) -> FastAPI:
    return build_app(sessions)


def cookie_of(response: httpx.Response) -> str | None:
    """The value of our cookie in the response's Set-Cookie headers, or None."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "session":
            return rest.split(";", 1)[0]
    return None


def vary_tokens(response: httpx.Response) -> list[str]:
    return [t.strip().lower() for v in response.headers.get_list("vary") for t in v.split(",")]


def lenient_client(app: Any) -> httpx.AsyncClient:
    """A client that gets the 500 page instead of the app's exception."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


def plain_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver")


async def get_mounted(sessions: SessionManager[UserSession], raw: Any) -> httpx.Response:
    """GET a raw ASGI app mounted in an app where ``sessions`` is installed."""
    app = FastAPI()
    sessions.install(app)
    app.mount("/raw", raw)
    async with plain_client(app) as c:
        return await c.get("/raw/")


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fastapi_sessions" and r.levelno == logging.ERROR]


# -- every response kind commits -----------------------------------------------------------------


@pytest.mark.anyio
async def test_returned_dict_commits_and_sets_cookie_with_no_store(
    client: httpx.AsyncClient, store: ProxyStore
) -> None:
    response = await client.post("/cart/apple")
    assert response.status_code == 200
    assert cookie_of(response) is not None
    assert response.headers["cache-control"] == "no-store"
    assert store.calls["create"] == 1
    assert (await client.get("/me")).json()["cart"] == ["apple"]


@pytest.mark.anyio
async def test_returned_model_commits(client: httpx.AsyncClient) -> None:
    response = await client.post("/model/3")
    assert response.json()["user_id"] == 3
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["user_id"] == 3


@pytest.mark.anyio
async def test_returned_redirect_response_carries_the_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/login/7", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/me"
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["user_id"] == 7


@pytest.mark.anyio
async def test_streaming_response_commits_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/stream")
    assert response.status_code == 200
    assert response.text == "one,two"
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["cart"] == ["streamed"]


@pytest.mark.anyio
async def test_response_own_cookies_and_headers_are_kept_and_vary_merged(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/own-headers")
    assert response.status_code == 200
    set_cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("theme=dark") for c in set_cookies)
    assert cookie_of(response) is not None
    assert response.headers.get_list("vary") == ["Accept, Cookie"]
    cache_control = response.headers.get_list("cache-control")
    assert len(cache_control) == 1
    assert "private" in cache_control[0]
    assert "max-age=60" in cache_control[0]
    assert (await client.get("/me")).json()["prefs"] == {"theme": "dark"}


@pytest.mark.anyio
async def test_http_exception_4xx_after_a_change_still_persists(client: httpx.AsyncClient) -> None:
    response = await client.post("/forbidden")
    assert response.status_code == 403
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["user_id"] == 99


@pytest.mark.anyio
async def test_unhandled_exception_persists_nothing(app: FastAPI, store: ProxyStore) -> None:
    async with lenient_client(app) as c:
        await c.post("/cart/apple")
        writes = store.writes()
        response = await c.post("/boom")
        assert response.status_code == 500
        assert cookie_of(response) is None
        assert store.writes() == writes
        assert (await c.get("/me")).json() == {"user_id": None, "cart": ["apple"], "prefs": {}}


@pytest.mark.anyio
async def test_unhandled_exception_on_a_new_session_creates_nothing(
    app: FastAPI, store: ProxyStore
) -> None:
    async with lenient_client(app) as c:
        response = await c.post("/boom")
    assert response.status_code == 500
    assert cookie_of(response) is None
    assert store.writes() == 0
    assert len(store.inner) == 0


@pytest.mark.anyio
@pytest.mark.parametrize("code", [500, 502, 503])
async def test_returned_5xx_persists_nothing(
    client: httpx.AsyncClient, store: ProxyStore, code: int
) -> None:
    await client.post("/cart/apple")
    writes = store.writes()
    response = await client.post(f"/status/{code}")
    assert response.status_code == code
    assert response.json() == {"secret": "app-body"}
    assert cookie_of(response) is None
    assert store.writes() == writes
    assert (await client.get("/me")).json()["user_id"] is None


@pytest.mark.anyio
async def test_returned_4xx_response_persists(client: httpx.AsyncClient) -> None:
    response = await client.post("/status/404")
    assert response.status_code == 404
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["user_id"] == 5


# -- sync endpoints, routers, mounted apps ----------------------------------------------------------


@pytest.mark.anyio
async def test_sync_endpoint_changes_are_committed(client: httpx.AsyncClient) -> None:
    assert (await client.post("/sync-cart/a")).json() == {"cart": ["a"]}
    assert (await client.post("/sync-cart/b")).json() == {"cart": ["a", "b"]}
    assert (await client.get("/me")).json()["cart"] == ["a", "b"]


@pytest.mark.anyio
async def test_sync_endpoint_regenerate_and_destroy(client: httpx.AsyncClient, store: ProxyStore) -> None:
    first = cookie_of(await client.post("/sync-cart/a"))
    response = await client.post("/sync-login/8", follow_redirects=False)
    assert response.status_code == 303
    second = cookie_of(response)
    assert second is not None
    assert second != first
    assert store.calls["rename"] == 1
    assert (await client.get("/me")).json() == {"user_id": 8, "cart": ["a"], "prefs": {}}
    response = await client.post("/sync-logout", follow_redirects=False)
    assert response.status_code == 303
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert len(store.inner) == 0


@pytest.mark.anyio
async def test_router_included_with_a_prefix_is_covered(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/items/x")
    assert response.json() == {"cart": ["x"]}
    assert cookie_of(response) is not None
    me = await client.get("/api/me")
    assert me.json()["cart"] == ["x"]
    assert "cookie" in vary_tokens(me)


@pytest.mark.anyio
async def test_mounted_sub_app_shares_the_outer_install(client: httpx.AsyncClient) -> None:
    response = await client.post("/sub/cart/x")
    assert response.status_code == 200
    assert response.json() == {"cart": ["x"]}
    assert cookie_of(response) is not None
    assert (await client.get("/me")).json()["cart"] == ["x"]
    response = await client.post("/sub/cart/y")
    assert response.json() == {"cart": ["x", "y"]}


# -- WebSockets -------------------------------------------------------------------------------------


def test_websocket_reads_the_session_from_the_cookie_header(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as tc:
        cookie = cookie_of(tc.post("/cart/ws-item"))
        assert cookie is not None
        tc.cookies.clear()
        with tc.websocket_connect("/ws-read", headers={"cookie": f"session={cookie}"}) as ws:
            assert ws.receive_json() == {"user_id": None, "cart": ["ws-item"], "prefs": {}}


def test_websocket_on_a_degraded_store_is_accepted_with_the_empty_session_and_no_cookie(
    manager_factory: Factory, store: ProxyStore
) -> None:
    app = build_app(manager_factory(on_store_error="degrade"))
    with TestClient(app, base_url="https://testserver") as tc:
        cookie = cookie_of(tc.post("/cart/ws-item"))
        assert cookie is not None
        tc.cookies.clear()
        go_down(store)
        with tc.websocket_connect("/ws-read", headers={"cookie": f"session={cookie}"}) as ws:
            assert ws.receive_json() == {"user_id": None, "cart": [], "prefs": {}}
            accept_headers = ws.extra_headers or []
        assert not [value for name, value in accept_headers if name.lower() == b"set-cookie"]
        store.failing = set()
        again = tc.get("/me", headers={"cookie": f"session={cookie}"})
        assert again.json()["cart"] == ["ws-item"], "nothing was lost"


def test_websocket_change_before_accept_sends_set_cookie_on_accept(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as tc:
        with tc.websocket_connect("/ws-write") as ws:
            assert ws.receive_json() == {"user_id": 42}
            accept_headers = ws.extra_headers or []
        set_cookies = [value for name, value in accept_headers if name.lower() == b"set-cookie"]
        assert len(set_cookies) == 1
        assert set_cookies[0].startswith(b"session=")
        value = set_cookies[0].split(b";", 1)[0].split(b"=", 1)[1].decode()
        tc.cookies.clear()
        me = tc.get("/me", headers={"cookie": f"session={value}"})
        assert me.json()["user_id"] == 42


def test_websocket_closed_before_accept_passes_the_close_on_and_saves_nothing(
    app: FastAPI, store: ProxyStore
) -> None:
    with (
        TestClient(app, base_url="https://testserver") as tc,
        pytest.raises(WebSocketDisconnect) as closed,
        tc.websocket_connect("/ws-reject"),
    ):
        pass  # pragma: no cover - the server refuses the connection
    assert closed.value.code == 1008
    assert store.calls["create"] == 0


def test_websocket_commit_failure_at_accept_closes_with_1011_and_logs(
    app: FastAPI, store: ProxyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.failing = {"create"}
    caplog.set_level(logging.ERROR, logger="fastapi_sessions")
    with (
        TestClient(app, base_url="https://testserver") as tc,
        pytest.raises(WebSocketDisconnect) as closed,
        tc.websocket_connect("/ws-write") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1011
    assert "WebSocket accept" in caplog.text


# -- the dependency ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_session_without_install_says_to_call_install(
    sessions: SessionManager[UserSession],
) -> None:
    app = FastAPI()
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/me")
    async def me(session: Session) -> UserSession:
        return session

    async with plain_client(app) as c:
        with pytest.raises(SessionNotInstalledError, match=r"install\(app\)") as info:
            await c.get("/me")
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("operation", ["regenerate", "destroy", "set_expiry"])
def test_operations_on_an_object_that_is_not_the_live_session_raise(
    sessions: SessionManager[UserSession], operation: str
) -> None:
    method = getattr(sessions, operation)
    args = (60,) if operation == "set_expiry" else ()
    with pytest.raises(SessionUsageError, match="not a live session"):
        method(UserSession(), *args)


@pytest.mark.anyio
async def test_regenerate_on_a_copy_of_the_live_session_raises(client: httpx.AsyncClient) -> None:
    with pytest.raises(SessionUsageError):
        await client.post("/regenerate-a-copy")


@pytest.mark.anyio
@pytest.mark.parametrize("outcome", ["ok", "http-error", "server-error", "unhandled"])
async def test_session_kept_from_a_finished_request_is_no_longer_live(
    sessions: SessionManager[UserSession], outcome: str
) -> None:
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    kept: list[UserSession] = []

    @app.post("/keep")
    async def keep(session: Session) -> JSONResponse:
        kept.append(session)
        session.user_id = 1
        if outcome == "http-error":
            raise HTTPException(status_code=400)
        if outcome == "unhandled":
            raise RuntimeError("boom")
        return JSONResponse({}, status_code=500 if outcome == "server-error" else 200)

    async with lenient_client(app) as c:
        await c.post("/keep")
    assert len(kept) == 1
    for operation in (sessions.regenerate, sessions.destroy):
        with pytest.raises(SessionUsageError):
            operation(kept[0])


# -- headers and store traffic ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_vary_cookie_on_session_routes_only(client: httpx.AsyncClient) -> None:
    assert "cookie" in vary_tokens(await client.get("/me"))
    assert "cookie" in vary_tokens(await client.post("/cart/a"))
    bare = await client.get("/bare")
    assert "vary" not in bare.headers
    assert "cache-control" not in bare.headers


@pytest.mark.anyio
async def test_route_without_the_session_never_touches_the_store(
    client: httpx.AsyncClient, store: ProxyStore
) -> None:
    await client.post("/cart/a")
    assert "session" in client.cookies
    store.calls.clear()
    for _ in range(3):
        response = await client.get("/bare")
        assert response.status_code == 200
        assert cookie_of(response) is None
    assert store.calls == Counter()


@pytest.mark.anyio
async def test_unchanged_session_is_neither_written_nor_resent(
    client: httpx.AsyncClient, store: ProxyStore
) -> None:
    await client.post("/cart/a")
    store.calls.clear()
    for _ in range(3):
        response = await client.get("/me")
        assert response.json()["cart"] == ["a"]
        assert "set-cookie" not in response.headers
    assert store.calls == Counter({"load": 3})


class _ServerCycle:
    """What a server keeps per request: uvicorn's ``RequestResponseCycle`` holds the scope, and its
    ``send`` is the one the app gets."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.messages: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        self.messages.append(message)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "cookie"),
    [("GET", "/bare", False), ("GET", "/me", True), ("POST", "/cart/a", True), ("POST", "/cart/b", False)],
)
async def test_a_request_leaves_no_reference_cycle_through_the_scope(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str, cookie: bool
) -> None:
    # A cycle would keep each request's objects alive until the garbage collector runs, which under
    # uvicorn cost as much time as all of our own session work.
    login = await client.post("/cart/x")
    headers = [(b"cookie", f"session={cookie_of(login)}".encode())] if cookie else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 443),
    }
    server = _ServerCycle(scope)
    gc.collect()
    gc.disable()
    try:
        await app(scope, server.receive, server.send)
        assert server.messages[0]["status"] == 200
        freed = weakref.ref(server)
        del server, scope
        assert freed() is None, "the request's objects outlived it: a reference cycle through the scope"
    finally:
        gc.enable()


@pytest.mark.anyio
@pytest.mark.parametrize("change", [True, False], ids=["changed", "read-only"])
async def test_app_headers_list_and_start_message_are_never_mutated(
    sessions: SessionManager[UserSession], change: bool
) -> None:
    kept: dict[str, Any] = {}

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        session = await sessions.get_session(HTTPConnection(scope))
        if change:
            session.user_id = 1
        headers = [(b"content-type", b"text/plain"), (b"vary", b"Accept")]
        start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
        kept.update(headers=headers, before=list(headers), start=start, start_before=copy.deepcopy(start))
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    response = await get_mounted(sessions, raw)
    assert response.text == "ok"
    assert (cookie_of(response) is not None) is change
    assert response.headers["vary"] == "Accept, Cookie"
    assert kept["headers"] == kept["before"]
    assert kept["start"] == kept["start_before"]


@pytest.mark.anyio
async def test_app_sending_capitalised_header_names_still_gets_vary_and_no_store(
    sessions: SessionManager[UserSession],
) -> None:
    # ASGI requires lower-case names; an app that breaks the rule gets a second line of each header,
    # which HTTP reads as one list: the Cookie variant is declared and no cache stores the cookie.
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        session = await sessions.get_session(HTTPConnection(scope))
        session.user_id = 1
        headers = [(b"Vary", b"Accept"), (b"Cache-Control", b"public, max-age=600")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    response = await get_mounted(sessions, raw)
    assert cookie_of(response) is not None
    assert "cookie" in vary_tokens(response)
    assert "accept" in vary_tokens(response)
    cache_control = ", ".join(response.headers.get_list("cache-control"))
    assert "no-store" in cache_control


# -- store failures ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_store_load_failure_answers_503_with_retry_after_and_logs(
    client: httpx.AsyncClient, store: ProxyStore, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/cart/a")
    store.failing = {"load"}
    caplog.set_level(logging.ERROR, logger="fastapi_sessions")
    response = await client.get("/me")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "set-cookie" not in response.headers
    assert errors_logged(caplog)
    assert "ConnectionError" in caplog.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "setup", "path", "expected_cart"),
    [
        pytest.param("create", None, "/cart/pear", [], id="create"),
        pytest.param("update", "/cart/apple", "/cart/pear", ["apple"], id="update"),
        pytest.param("rename", "/cart/apple", "/login/7", ["apple"], id="rename"),
        pytest.param("delete", "/cart/apple", "/logout", ["apple"], id="delete"),
    ],
)
async def test_store_write_failure_at_commit_answers_503_without_app_response(
    client: httpx.AsyncClient,
    store: ProxyStore,
    caplog: pytest.LogCaptureFixture,
    method: str,
    setup: str | None,
    path: str,
    expected_cart: list[str],
) -> None:
    if setup is not None:
        await client.post(setup)
    store.failing = {method}
    caplog.set_level(logging.ERROR, logger="fastapi_sessions")
    response = await client.post(path, follow_redirects=False)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert "pear" not in response.text, "the app's body must not follow the 503"
    assert response.json()["detail"]
    assert errors_logged(caplog)
    assert store.calls[method] >= 1
    store.failing = set()
    me = (await client.get("/me")).json()
    assert me["cart"] == expected_cart
    assert me["user_id"] is None


@pytest.mark.anyio
async def test_route_without_the_session_answers_while_the_store_is_down(
    client: httpx.AsyncClient, store: ProxyStore
) -> None:
    await client.post("/cart/a")
    store.failing = {"load", "create", "update", "rename", "delete", "aclose"}
    response = await client.get("/bare")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


@pytest.mark.anyio
async def test_update_of_a_concurrently_destroyed_session_answers_409(
    client: httpx.AsyncClient, store: ProxyStore
) -> None:
    await client.post("/cart/a")
    store.update_result = WriteResult.MISSING
    response = await client.post("/cart/b")
    assert response.status_code == 409
    assert "set-cookie" not in response.headers
    assert "cart" not in response.text


# -- size limit -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_too_large_new_session_fails_the_request_and_writes_nothing(
    manager_factory: Factory, store: ProxyStore
) -> None:
    app = build_app(manager_factory(max_size=64))
    item = "x" * 200
    async with lenient_client(app) as c:
        response = await c.post(f"/cart/{item}")
    assert response.status_code == 500
    assert cookie_of(response) is None
    assert store.writes() == 0
    async with plain_client(app) as c:
        with pytest.raises(SessionTooLargeError) as info:
            await c.post(f"/cart/{item}")
    error = info.value
    assert error.limit == 64
    assert error.size > 64
    assert f"{error.size} bytes" in str(error)
    assert "64-byte" in str(error)
    assert store.writes() == 0


@pytest.mark.anyio
async def test_too_large_existing_session_fails_and_keeps_the_stored_data(
    manager_factory: Factory, store: ProxyStore
) -> None:
    roomy, tight = build_app(manager_factory()), build_app(manager_factory(max_size=100))
    async with plain_client(roomy) as c:
        await c.post("/cart/small")
        cookie = c.cookies["session"]
    writes = store.writes()
    sent = {"cookie": f"session={cookie}"}
    async with lenient_client(tight) as c:
        response = await c.post(f"/cart/{'y' * 200}", headers=sent)
        assert response.status_code == 500
        assert cookie_of(response) is None
    assert store.writes() == writes
    assert store.calls["load"] == 1, "the stored session was loaded: this is the update path"
    async with plain_client(tight) as c:
        with pytest.raises(SessionTooLargeError, match="100-byte"):
            await c.post(f"/cart/{'y' * 200}", headers=sent)
        assert (await c.get("/me", headers=sent)).json()["cart"] == ["small"]


# -- lifespan ---------------------------------------------------------------------------------------


def test_store_made_from_store_url_is_closed_at_shutdown(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(store_url="memory://"), clock=clock)
    owned = sessions.store
    assert isinstance(owned, MemoryStore)
    closed: list[bool] = []
    original = owned.aclose

    async def aclose() -> None:
        closed.append(True)
        await original()

    monkeypatch.setattr(owned, "aclose", aclose)
    with TestClient(make_app(sessions), base_url="https://testserver") as tc:
        assert tc.post("/cart/a").status_code == 200
        assert len(owned) == 1
        assert closed == []
    assert closed == [True]
    assert len(owned) == 1, "a memory store keeps its sessions when closed (the process may go on)"


def test_store_passed_in_is_not_closed_at_shutdown(
    sessions: SessionManager[UserSession], store: ProxyStore
) -> None:
    with TestClient(make_app(sessions), base_url="https://testserver") as tc:
        assert tc.post("/cart/a").status_code == 200
    assert store.calls["aclose"] == 0
    assert len(store.inner) == 1


def test_get_session_is_one_plain_function_per_manager(sessions: SessionManager[UserSession]) -> None:
    # FastAPI inspects a dependency on every request; a bound method would cost it a failed
    # attribute lookup each time. The same object on every access also keys dependency_overrides.
    assert inspect.isfunction(sessions.get_session)
    assert inspect.iscoroutinefunction(sessions.get_session)
    assert sessions.get_session is sessions.get_session


@pytest.mark.anyio
async def test_dependency_overrides_replace_the_session_in_tests(
    sessions: SessionManager[UserSession], store: ProxyStore
) -> None:
    app = make_app(sessions)
    app.dependency_overrides[sessions.get_session] = lambda: UserSession(user_id=7, cart=["x"])
    async with plain_client(app) as c:
        response = await c.get("/me")
    assert response.json()["user_id"] == 7
    assert response.json()["cart"] == ["x"]
    assert store.calls == Counter()
