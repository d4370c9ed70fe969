"""Concurrent requests on one session really overlap here: both load before either commits.

Covers security.md D-T1..D-T5: no lost update across fields, last-writer-wins or 409 on one field, no
resurrection after destroy or regenerate, an exact counter under version checks.
"""

from collections.abc import Callable
from typing import Annotated

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionManager
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock

from .conftest import make_settings

pytestmark = pytest.mark.anyio


class Counter(BaseModel):
    a: int = 0
    b: int = 0
    count: int = 0


class Race:
    """Lets a test hold requests after they loaded their session, then release them in order."""

    def __init__(self) -> None:
        self.loaded: dict[str, anyio.Event] = {}
        self.go: dict[str, anyio.Event] = {}

    def add(self, name: str) -> None:
        self.loaded[name], self.go[name] = anyio.Event(), anyio.Event()

    async def hold(self, name: str) -> None:
        if name in self.loaded:
            self.loaded[name].set()
            await self.go[name].wait()


def build(concurrency: str, store: MemoryStore, clock: FakeClock) -> tuple[FastAPI, Race]:
    sessions = SessionManager(
        Counter, settings=make_settings(concurrency=concurrency), store=store, clock=clock
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
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    @app.post("/login")
    async def login(session: Session) -> None:
        sessions.regenerate(session)

    @app.post("/increment")
    async def increment(session: Session) -> None:
        value = session.count
        await anyio.lowlevel.checkpoint()  # let the other requests load the same value
        session.count = value + 1

    return app, race


Client = Callable[[], httpx.AsyncClient]


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t")


async def seed(client: httpx.AsyncClient) -> str:
    """Create the session (a=9) and return its cookie."""
    await client.post("/set/a/9")
    return client.cookies["session"]


async def overlap(
    client: httpx.AsyncClient, race: Race, first: str, second: str, other: Callable[[], object]
) -> dict[str, httpx.Response]:
    """Run ``first`` and ``second`` (paths with ?tag=) so both load, then commit first, then second."""
    results: dict[str, httpx.Response] = {}
    race.add("1")
    race.add("2")

    first_done = anyio.Event()

    async def run(tag: str, path: str) -> None:
        results[tag] = await client.post(path) if "set" in path else await client.get(path)
        if tag == "1":
            first_done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(run, "1", first)
        group.start_soon(run, "2", second)
        await race.loaded["1"].wait()
        await race.loaded["2"].wait()
        race.go["1"].set()
        await first_done.wait()
        race.go["2"].set()
    return results


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_dt1_concurrent_changes_to_different_fields_both_survive(
    concurrency: str, store: MemoryStore, clock: FakeClock
) -> None:
    app, race = build(concurrency, store, clock)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/b/2?tag=2", object)
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json() == {"a": 1, "b": 2, "count": 0}


async def test_dt1_same_field_last_writer_wins_by_default(store: MemoryStore, clock: FakeClock) -> None:
    app, race = build("last_write_wins", store, clock)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2", object)
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json()["a"] == 2


async def test_dt1_same_field_conflict_is_a_409_with_version_check(
    store: MemoryStore, clock: FakeClock
) -> None:
    app, race = build("version_check", store, clock)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2", object)
        assert results["1"].status_code == 200
        assert results["2"].status_code == 409
        assert "set-cookie" not in results["2"].headers
        assert (await client.get("/read")).json()["a"] == 1, "the loser's change is dropped"


async def _hold_then(
    client: httpx.AsyncClient, race: Race, held: str, then: str
) -> tuple[httpx.Response, httpx.Response]:
    race.add("1")
    results: dict[str, httpx.Response] = {}

    async def run() -> None:
        results["held"] = await client.post(held)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await race.loaded["1"].wait()
        results["then"] = await client.post(then)
        race.go["1"].set()
    return results["held"], results["then"]


@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_dt2_a_write_in_flight_never_resurrects_a_destroyed_session(
    concurrency: str, store: MemoryStore, clock: FakeClock
) -> None:
    app, race = build(concurrency, store, clock)
    async with client_for(app) as client:
        await seed(client)
        held, logout = await _hold_then(client, race, "/set/a/5?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        assert len(store) == 0, "the destroyed session must stay destroyed"


@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_dt3_a_write_in_flight_cannot_recreate_the_pre_regeneration_record(
    concurrency: str, store: MemoryStore, clock: FakeClock
) -> None:
    app, race = build(concurrency, store, clock)
    async with client_for(app) as client:
        old_cookie = await seed(client)
        held, login = await _hold_then(client, race, "/set/a/5?tag=1", "/login")
        assert login.status_code == 200
        assert held.status_code == 409
        assert len(store) == 1, "only the regenerated record exists"
        assert client.cookies["session"] != old_cookie


async def test_dt4_version_checked_counter_with_client_retries_is_exact(
    store: MemoryStore, clock: FakeClock
) -> None:
    app, _ = build("version_check", store, clock)
    conflicts = 0

    async def bump() -> None:
        nonlocal conflicts
        while True:
            response = await client.post("/increment", headers={"cookie": f"session={cookie}"})
            if response.status_code == 200:
                return
            assert response.status_code == 409
            conflicts += 1

    async with client_for(app) as client:
        cookie = await seed(client)
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(bump)
        assert (await client.get("/read")).json()["count"] == 100
    assert conflicts > 0, "the requests really overlapped"


async def test_dt5_a_rolling_touch_never_resurrects_a_destroyed_session(
    store: MemoryStore, clock: FakeClock
) -> None:
    sessions = SessionManager(Counter, settings=make_settings(idle_timeout=60), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Counter, Depends(sessions.get_session)]
    race = Race()

    @app.post("/set")
    async def set_a(session: Session) -> None:
        session.a = 1

    @app.get("/read")
    async def read(session: Session) -> Counter:
        await race.hold("1")
        return session

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        await client.post("/set")
        race.add("1")
        async with anyio.create_task_group() as group:
            group.start_soon(client.get, "/read")
            await race.loaded["1"].wait()
            assert (await client.post("/logout")).status_code == 200
            race.go["1"].set()
        assert len(store) == 0
