"""A ``Backend`` subclass passed straight to ``SessionManager(store=...)``, driven through a FastAPI app:
the whole lifecycle, the idle timeout on the manager's clock, corrupt data, and a backend that is down."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fastapi_sessions import SessionManager
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.testing import FakeClock, session_store_key

from .backend_support import DictBackend
from .conftest import UserSession, make_app, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(clock: FakeClock) -> DictBackend:
    return DictBackend(clock)


def manager(backend: DictBackend, clock: FakeClock, **settings: Any) -> SessionManager[UserSession]:
    return SessionManager(UserSession, settings=make_settings(**settings), store=backend, clock=clock)


@pytest.fixture
async def client(backend: DictBackend, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(manager(backend, clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        yield c


def key_of(cookie: str) -> str:
    return session_store_key(cookie.split(".", 1)[0])


async def test_the_manager_wraps_a_backend_and_never_closes_one_passed_in(
    backend: DictBackend, clock: FakeClock
) -> None:
    sessions = manager(backend, clock)
    assert isinstance(sessions.store, BackendStore)
    assert sessions.store.backend is backend
    await sessions.close_owned_store()
    assert not backend.closed


async def test_login_cart_logout_and_regenerate_through_a_backend(
    client: httpx.AsyncClient, backend: DictBackend
) -> None:
    assert (await client.post("/cart/apple")).json() == {"cart": ["apple"]}
    anonymous = client.cookies["session"]
    assert list(backend.records) == [key_of(anonymous)]
    assert backend.data(key_of(anonymous))["session"] == {"user_id": None, "cart": ["apple"], "prefs": {}}

    login = await client.post("/login/7", follow_redirects=False)
    assert login.status_code == 303
    logged_in = client.cookies["session"]
    assert logged_in != anonymous, "login regenerates the session ID"
    assert list(backend.records) == [key_of(logged_in)], "the old record is gone"
    stored = backend.data(key_of(logged_in))
    assert stored["session"] == {"user_id": 7, "cart": ["apple"], "prefs": {}}
    assert stored["meta"]["version"] == 1

    assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
    assert (await client.get("/me")).json() == {"user_id": 7, "cart": ["apple", "pear"], "prefs": {}}
    replayed = await client.get("/me", headers={"cookie": f"session={anonymous}"})
    assert replayed.json() == {"user_id": None, "cart": [], "prefs": {}}, "the pre-login ID is dead"

    client.cookies.set("session", logged_in)
    logout = await client.post("/logout", follow_redirects=False)
    assert logout.status_code == 303
    assert "max-age=0" in logout.headers["set-cookie"].lower()
    assert backend.records == {}
    replayed = await client.get("/me", headers={"cookie": f"session={logged_in}"})
    assert replayed.json() == {"user_id": None, "cart": [], "prefs": {}}


async def test_the_idle_timeout_slides_on_the_managers_clock(
    backend: DictBackend, clock: FakeClock
) -> None:
    app = make_app(manager(backend, clock, idle_timeout=600))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/cart/apple")
        key = key_of(c.cookies["session"])
        clock.advance(500)
        assert (await c.get("/me")).json()["cart"] == ["apple"]
        assert backend.data(key)["meta"]["deadline"] == clock.time() + 600, "rewritten, on this clock"
        clock.advance(500)  # 1000 s after the write: alive because the read slid the window
        assert (await c.get("/me")).json()["cart"] == ["apple"]
        clock.advance(601)
        assert (await c.get("/me")).json()["cart"] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data["meta"].pop("version"),
        lambda data: data.update(session="not an object"),
        lambda data: data["session"].update(cart={1, 2}),
    ],
    ids=["meta without version", "session not an object", "a value that is not JSON"],
)
async def test_a_malformed_record_gives_a_fresh_session_and_is_deleted(
    client: httpx.AsyncClient, backend: DictBackend, damage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/cart/apple")
    key = key_of(client.cookies["session"])
    data = backend.data(key)
    damage(data)
    backend.planted[key] = data
    response = await client.get("/me")
    assert response.status_code == 200
    assert response.json() == {"user_id": None, "cart": [], "prefs": {}}
    assert key not in backend.planted
    assert key not in backend.records
    warnings = [r.getMessage() for r in caplog.records if r.name == "fastapi_sessions.security"]
    assert any("corrupt" in message for message in warnings)


@pytest.mark.parametrize(
    ("failing", "request_args"),
    [
        ("read", ("GET", "/me")),
        ("write", ("POST", "/cart/pear")),
        ("destroy", ("POST", "/logout")),
    ],
)
async def test_a_backend_failure_answers_503_with_retry_after_and_loses_nothing(
    client: httpx.AsyncClient, backend: DictBackend, failing: str, request_args: tuple[str, str]
) -> None:
    await client.post("/cart/apple")
    backend.failing = {failing}
    response = await client.request(*request_args)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "set-cookie" not in response.headers
    backend.failing = set()
    assert (await client.get("/me")).json()["cart"] == ["apple"], "nothing was lost"
