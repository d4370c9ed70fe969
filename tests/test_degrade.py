"""SESSION_ON_STORE_ERROR: fail closed (503) by default; 'degrade' serves a read-only empty session."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fastapi_sessions import SessionManager
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import UserSession, go_down, make_app, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


Build = Callable[..., httpx.AsyncClient]


@pytest.fixture
def client_for(store: RecordingStore, clock: FakeClock) -> Build:
    def build(**settings: Any) -> httpx.AsyncClient:
        sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store, clock=clock)
        return httpx.AsyncClient(transport=httpx.ASGITransport(make_app(sessions)), base_url="https://t")

    return build


async def test_default_fails_closed_with_503_and_keeps_the_cookie(
    client_for: Build, store: RecordingStore
) -> None:
    async with client_for() as c:
        await c.post("/cart/a")
        go_down(store)
        response = await c.get("/me")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "set-cookie" not in response.headers
        assert (await c.get("/bare")).status_code == 200
        store.failing = set()
        assert (await c.get("/me")).json()["cart"] == ["a"], "nothing was lost"


async def test_degrade_serves_an_empty_session_and_sends_no_cookie(
    client_for: Build, store: RecordingStore
) -> None:
    async with client_for(on_store_error="degrade") as c:
        await c.post("/cart/a")
        go_down(store)
        response = await c.get("/me")
        assert response.status_code == 200
        assert response.json() == {"user_id": None, "cart": [], "prefs": {}}
        assert "set-cookie" not in response.headers
        store.failing = set()
        assert (await c.get("/me")).json()["cart"] == ["a"]


async def test_degraded_sessions_refuse_writes_with_a_503(client_for: Build, store: RecordingStore) -> None:
    async with client_for(on_store_error="degrade") as c:
        await c.post("/cart/a")
        go_down(store)
        login = await c.post("/login/1", follow_redirects=False)  # regenerate() refuses
        assert login.status_code == 503
        assert "set-cookie" not in login.headers
        nested = await c.post("/cart/b")  # nested mutation cannot raise at once: refused at commit
        assert nested.status_code == 503
        assert "set-cookie" not in nested.headers
        store.failing = set()
        assert (await c.get("/me")).json() == {"user_id": None, "cart": ["a"], "prefs": {}}


async def test_a_write_that_cannot_be_saved_is_a_503_in_both_modes(
    client_for: Build, store: RecordingStore
) -> None:
    go_down(store)
    for settings in ({"on_store_error": "degrade"}, {}):
        async with client_for(**settings) as c:
            response = await c.post("/cart/a")
            assert response.status_code == 503
            assert "set-cookie" not in response.headers
