"""The whole session lifecycle over a real uvicorn server and real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from fastapi_sessions import SessionManager
from fastapi_sessions.stores import MemoryStore

from .conftest import UserSession, make_app, make_settings

START_TIMEOUT = 60.0  # a hang guard: only a server that never starts reaches it


@pytest.fixture
def sessions() -> SessionManager[UserSession]:
    """Default (production) settings: Secure cookie, real clock, a store the manager owns."""
    return SessionManager(UserSession, settings=make_settings(store_url="memory://"))


@pytest.fixture
def live_url(sessions: SessionManager[UserSession]) -> Iterator[str]:
    """Serve make_app(sessions) with uvicorn in a background thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(sessions),
        http="h11",
        ws="none",
        lifespan="on",
        log_config=None,  # leave the test process's logging alone
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


def set_cookie_of(response: httpx.Response) -> str | None:
    """The full Set-Cookie header for our cookie, or None."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(found) <= 1
    return found[0] if found else None


def value_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].removeprefix("session=")


def test_full_lifecycle_over_real_http(live_url: str, sessions: SessionManager[UserSession]) -> None:
    """The Secure cookie is carried by hand: httpx (rightly) never sends it over plain http."""
    with httpx.Client(base_url=live_url, timeout=30.0, follow_redirects=False) as http:

        def call(method: str, path: str, cookie: str | None = None) -> httpx.Response:
            http.cookies.clear()
            headers = {"cookie": f"session={cookie}"} if cookie else {}
            return http.request(method, path, headers=headers)

        anonymous = call("GET", "/me")
        assert anonymous.status_code == 200
        assert anonymous.json() == {"user_id": None, "cart": [], "prefs": {}}
        assert set_cookie_of(anonymous) is None
        assert "cookie" in anonymous.headers["vary"].lower()

        login = call("POST", "/login/7")
        assert login.status_code == 303
        assert login.headers["location"] == "/me"
        header = set_cookie_of(login)
        assert header is not None, "the Set-Cookie must arrive on the 303 itself"
        attributes = {part.strip().lower() for part in header.split(";")[1:]}
        assert {"path=/", "secure", "httponly", "samesite=lax"} <= attributes
        assert not any(a.startswith("max-age") for a in attributes), "a browser-session cookie"
        assert login.headers["cache-control"] == "no-store"
        cookie = value_of(header)

        first = call("POST", "/cart/apple", cookie)
        assert first.json() == {"cart": ["apple"]}
        assert set_cookie_of(first) is None, "an existing session's cookie is not re-sent"
        second = call("POST", "/cart/pear", cookie)
        assert second.json() == {"cart": ["apple", "pear"]}

        me = call("GET", "/me", cookie)
        assert me.json() == {"user_id": 7, "cart": ["apple", "pear"], "prefs": {}}
        assert set_cookie_of(me) is None

        logout = call("POST", "/logout", cookie)
        assert logout.status_code == 303
        expired = set_cookie_of(logout)
        assert expired is not None
        assert "max-age=0" in expired.lower()
        assert value_of(expired) in ("", '""')

        replay = call("GET", "/me", cookie)
        assert replay.status_code == 200
        assert replay.json() == {"user_id": None, "cart": [], "prefs": {}}
        assert isinstance(sessions.store, MemoryStore)
        assert len(sessions.store) == 0
