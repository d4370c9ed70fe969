"""Concurrent requests that really overlap: each racing request is held right after it loaded its
session (``?tag=``), so both load before either commits; the test then releases them in order.

Store-agnostic: used by the race tests on MemoryStore and Redis and by the Cluster tests.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from typing import Annotated, Any

import anyio
import anyio.lowlevel
import httpx
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionStore
from fastapi_sessions.testing import session_store_key

from .conftest import make_settings


class Counter(BaseModel):
    a: int = 0
    b: int = 0
    count: int = 0


HANG_GUARD = 120
"""Seconds after which a race fails as hung. Only a guard: no race waits for time to pass, and one
that works takes milliseconds, or seconds on a loaded machine."""


class Race:
    """Lets a test hold requests after they loaded their session, then release them in order, or
    all at once when a given number of them have loaded (a wave)."""

    def __init__(self) -> None:
        self.loaded: dict[str, anyio.Event] = {}
        self.go: dict[str, anyio.Event] = {}
        self.waves: dict[str, int] = {}
        """Requests still to load before a wave's ``go`` is set, by tag."""

    def add(self, name: str) -> None:
        self.loaded[name], self.go[name] = anyio.Event(), anyio.Event()

    def wave(self, name: str, size: int) -> None:
        """Hold the requests tagged ``name`` until ``size`` of them loaded, then let all of them go."""
        self.add(name)
        self.waves[name] = size

    async def hold(self, name: str) -> None:
        if name in self.waves:
            self.waves[name] -= 1
            if self.waves[name] == 0:
                self.go[name].set()
            await self.go[name].wait()
        elif name in self.loaded:
            self.loaded[name].set()
            await self.go[name].wait()


def build(
    store: SessionStore, concurrency: str = "last_write_wins", idle_timeout: int | None = None
) -> tuple[FastAPI, Race]:
    """An app on ``store`` whose handlers can be held after their session loaded (``?tag=``)."""
    sessions = SessionManager(
        Counter,
        settings=make_settings(concurrency=concurrency, idle_timeout=idle_timeout),
        store=store,
    )
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Counter, Depends(sessions.get_session)]
    race = Race()

    @app.post("/set/{field}/{value}")
    async def set_field(field: str, value: int, session: Session, tag: str = "") -> None:
        await race.hold(tag)
        setattr(session, field, value)

    @app.get("/read")
    async def read(session: Session, tag: str = "") -> Counter:
        await race.hold(tag)
        return session

    @app.post("/logout")
    async def logout(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.destroy(session)

    @app.post("/login")
    async def login(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.regenerate(session)

    @app.post("/increment")
    async def increment(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        value = session.count
        await anyio.lowlevel.checkpoint()
        session.count = value + 1

    return app, race


def client_for(app: FastAPI) -> httpx.AsyncClient:
    # https: the session cookie is Secure by default, and httpx only sends it back over https.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t")


async def call(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await (client.get(path) if path.startswith("/read") else client.post(path))


def session_id(cookie: str) -> str:
    return cookie.split(".", 1)[0]


def key_of(prefix: str, cookie: str) -> bytes:
    """The Redis key that holds the session of this cookie value."""
    return (prefix + session_store_key(session_id(cookie))).encode()


async def keys(client: Any, prefix: str) -> list[bytes]:
    """Every key under ``prefix`` (a ``Redis`` or a ``RedisCluster``: SCAN covers all masters)."""
    return sorted([key async for key in client.scan_iter(match=prefix + "*", count=1000)])


async def seed(client: httpx.AsyncClient) -> str:
    """Create the session (a=9) and return its cookie."""
    response = await client.post("/set/a/9")
    assert response.status_code == 200
    return client.cookies["session"]


async def overlap(
    client: httpx.AsyncClient, race: Race, first: str, second: str
) -> dict[str, httpx.Response]:
    """Run ``first`` (tag 1) and ``second`` (tag 2) until both loaded, then commit 1, then 2."""
    results: dict[str, httpx.Response] = {}
    race.add("1")
    race.add("2")
    first_done = anyio.Event()

    async def run(tag: str, path: str) -> None:
        results[tag] = await call(client, path)
        if tag == "1":
            first_done.set()

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(run, "1", first)
            group.start_soon(run, "2", second)
            await race.loaded["1"].wait()
            await race.loaded["2"].wait()
            race.go["1"].set()
            await first_done.wait()
            race.go["2"].set()
    return results


async def hold_then(
    client: httpx.AsyncClient, race: Race, held: str, then: str
) -> tuple[httpx.Response, httpx.Response]:
    """Start ``held`` (tagged 1) and hold it after its load; run ``then`` to the end; release ``held``."""
    race.add("1")
    results: dict[str, httpx.Response] = {}

    async def run() -> None:
        results["held"] = await call(client, held)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await race.loaded["1"].wait()
            results["then"] = await call(client, then)
            race.go["1"].set()
    return results["held"], results["then"]
