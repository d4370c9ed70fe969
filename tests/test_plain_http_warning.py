"""A Secure cookie sent over plain http to a host that never returns it is lost without a word; the
doors say so, once, in the log (a warning, not ``warnings.warn``: test suites turn warnings into errors).
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

import logging
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.requests import Request

from fastapi_sessions import SessionManager, SessionMiddleware, request_session
from fastapi_sessions.cookies import PLAIN_HTTP
from fastapi_sessions.stores import MemoryStore

from .conftest import SECRET, TestClient, UserSession, make_settings

LOST = PLAIN_HTTP.split("(")[0]  # the message's start, before the scheme and host it names


def typed_app(**settings: Any) -> FastAPI:
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=MemoryStore())
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/cart/{item}")
    async def add(item: str, session: Session) -> list[str]:
        session.cart.append(item)
        return session.cart

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: Session) -> None:
        session.cart.append("ws")
        await websocket.accept()
        await websocket.send_json(session.cart)
        await websocket.close()

    return app


def classic_app(**settings: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=MemoryStore(), secret_key=SECRET, **settings)

    @app.post("/cart/{item}")
    async def add(item: str, request: Request) -> list[str]:
        session = request_session(request)
        session["cart"] = [*session.get("cart", []), item]
        return list(session["cart"])

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        websocket.session["cart"] = ["ws"]
        await websocket.accept()
        await websocket.send_json(websocket.session["cart"])
        await websocket.close()

    return app


DOORS = pytest.mark.parametrize("build", [typed_app, classic_app], ids=["typed", "classic"])
Build = Callable[..., FastAPI]


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and LOST in r.getMessage()
    ]


@DOORS
def test_a_secure_cookie_over_http_to_testserver_is_explained_once(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build()) as client:
        assert client.post("/cart/apple").json() == ["apple"]
        assert client.post("/cart/pear").json() == ["pear"], "the cookie was not sent back"
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
    (message,) = warnings_logged(caplog)
    assert "(http://testserver)" in message
    assert 'base_url="https://testserver"' in message
    assert "wss://testserver/ws" in message
    assert "--forwarded-allow-ips" in message
    assert "SESSION_COOKIE_SECURE=false" in message


@DOORS
def test_a_secure_cookie_over_plain_websocket_is_explained(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build()) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
    (message,) = warnings_logged(caplog)
    assert "(ws://testserver)" in message


@DOORS
def test_https_and_wss_clients_get_the_cookie_back_and_no_warning(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build(), base_url="https://testserver") as client:
        client.post("/cart/apple")
        assert client.post("/cart/pear").json() == ["apple", "pear"]
        with client.websocket_connect("wss://testserver/ws") as ws:
            assert ws.receive_json()[-1] == "ws"
    assert warnings_logged(caplog) == []


@DOORS
@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"]
)
def test_plain_http_to_localhost_is_not_warned_about(
    build: Build, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build(), base_url=f"http://{host}") as client:
        client.post("/cart/apple")
    assert warnings_logged(caplog) == []


@DOORS
def test_plain_http_behind_a_tls_proxy_is_not_warned_about(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build(), headers={"x-forwarded-proto": "https"}) as client:
        client.post("/cart/apple")
    assert warnings_logged(caplog) == []


@DOORS
def test_a_cookie_that_is_not_secure_is_not_warned_about(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build(cookie_secure=False)) as client:
        client.post("/cart/apple")
        assert client.post("/cart/pear").json()[-1] == "pear"
    assert warnings_logged(caplog) == []


@DOORS
def test_requests_that_set_no_cookie_are_not_checked(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(build()) as client:
        client.get("/docs")
    assert warnings_logged(caplog) == []


def test_each_door_warns_for_itself(caplog: pytest.LogCaptureFixture) -> None:
    """Once per door instance: a second app (or a second test) is told again."""
    for _ in range(2):
        with TestClient(typed_app()) as client:
            client.post("/cart/apple")
            client.post("/cart/pear")
    assert len(warnings_logged(caplog)) == 2
