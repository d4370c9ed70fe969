"""Session namespaces: set-ups that share a store and a key never open each other's sessions.

The namespace is the cookie name, bound into the signature and into the store key.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionConfigError, SessionManager
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, session_store_key

from .conftest import make_settings

pytestmark = pytest.mark.anyio


class Public(BaseModel):
    user_id: int | None = None
    theme: str = "light"


class Admin(BaseModel):
    user_id: int | None = None
    theme: str = "light"
    sudo: bool = False


def two_managers(store: MemoryStore, clock: FakeClock) -> tuple[FastAPI, SessionManager[Public]]:
    """One app, a public and an admin set-up, sharing the store and the key; same field names."""
    public = SessionManager(Public, settings=make_settings(cookie_name="public"), store=store, clock=clock)
    admin = SessionManager(Admin, settings=make_settings(cookie_name="admin"), store=store, clock=clock)
    app = FastAPI()
    public.install(app)
    admin.install(app)

    @app.post("/login/{user_id}")
    async def login(user_id: int, session: Annotated[Public, Depends(public.get_session)]) -> None:
        session.user_id = user_id

    @app.get("/admin")
    async def admin_page(session: Annotated[Admin, Depends(admin.get_session)]) -> Admin:
        return session

    return app, public


async def test_a_public_cookie_sent_under_the_admin_name_opens_no_admin_session(
    store: MemoryStore, clock: FakeClock
) -> None:
    app, _ = two_managers(store, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        await client.post("/login/7")
        public_cookie = client.cookies["public"]
        client.cookies.clear()
        response = await client.get("/admin", headers={"cookie": f"admin={public_cookie}"})
    assert response.json() == {"user_id": None, "theme": "light", "sudo": False}
    assert len(store) == 1, "the public session is untouched and nothing else was made"


async def test_the_same_id_has_a_different_store_key_in_each_namespace() -> None:
    assert session_store_key("an-id", "public") != session_store_key("an-id", "admin")
    assert session_store_key("an-id") == session_store_key("an-id", "session")


async def test_each_manager_reads_its_own_cookie(store: MemoryStore, clock: FakeClock) -> None:
    app, _ = two_managers(store, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        await client.post("/login/7")
        assert (await client.get("/admin")).json()["user_id"] is None


async def test_two_managers_with_one_cookie_name_in_one_app_are_refused(
    store: MemoryStore, clock: FakeClock
) -> None:
    first = SessionManager(Public, settings=make_settings(), store=store, clock=clock)
    second = SessionManager(Admin, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    first.install(app)
    second.install(app)

    @app.get("/")
    async def home() -> None:
        return None

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        with pytest.raises(SessionConfigError, match=r"cookie name 'session'.*Give each its own"):
            await client.get("/")


async def test_a_manager_installed_twice_is_refused(store: MemoryStore, clock: FakeClock) -> None:
    sessions = SessionManager(Public, settings=make_settings(), store=store, clock=clock)
    app, sub = FastAPI(), FastAPI()
    sessions.install(app)
    sessions.install(sub)
    app.mount("/sub", sub)

    @sub.get("/")
    async def home() -> None:
        return None

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        with pytest.raises(SessionConfigError, match="install it once"):
            await client.get("/sub/")
