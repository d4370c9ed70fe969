"""security.md D-T1..D-T5 on a real Redis: concurrent requests on one session that really overlap.

Each racing request is held (an event) right after it loaded its session, so both load before either
commits; then the test releases them in a chosen order. The helpers here are reused by the Cluster
tests (``tests/test_redis_cluster.py``), which run the same races against a ``RedisCluster`` client.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import random
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import httpx
import pytest

pytest.importorskip("redis")

from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from fastapi_sessions import SessionManager
from fastapi_sessions.stores.redis import RedisStore
from fastapi_sessions.testing import session_store_key

from .conftest import make_settings
from .test_concurrency import Counter, Race

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

MODES = ["last_write_wins", "version_check"]


# -- helpers (also imported by test_redis_cluster.py) ---------------------------------------------


def build(
    store: RedisStore, concurrency: str = "last_write_wins", idle_timeout: int | None = None
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
    async def increment(session: Session) -> None:
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

    with anyio.fail_after(10):
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

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await race.loaded["1"].wait()
            results["then"] = await call(client, then)
            race.go["1"].set()
    return results["held"], results["then"]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def store(redis_server_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_url, prefix=redis_prefix)
    yield store
    await store.aclose()


@pytest.fixture
async def raw(redis_server_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server_url)
    yield client
    await client.aclose()


# -- D-T1: lost update ---------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_dt1_overlapping_changes_to_different_fields_both_survive(
    concurrency: str, store: RedisStore
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/b/2?tag=2")
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json() == {"a": 1, "b": 2, "count": 0}


async def test_dt1_same_field_last_writer_wins_by_default(store: RedisStore) -> None:
    app, race = build(store)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2")
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json()["a"] == 2, "the later commit wins"


async def test_dt1_same_field_conflict_is_a_409_with_version_check(store: RedisStore) -> None:
    app, race = build(store, "version_check")
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2")
        assert results["1"].status_code == 200
        assert results["2"].status_code == 409
        assert "set-cookie" not in results["2"].headers
        assert (await client.get("/read")).json()["a"] == 1, "the loser's change is dropped"


# -- D-T2: logout against a write ----------------------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_dt2_a_write_in_flight_never_resurrects_a_destroyed_session(
    concurrency: str, store: RedisStore, raw: Redis, redis_prefix: str
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        cookie = await seed(client)
        assert await keys(raw, redis_prefix) == [key_of(redis_prefix, cookie)]
        held, logout = await hold_then(client, race, "/set/a/5?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        assert await keys(raw, redis_prefix) == [], "the destroyed session must stay destroyed"
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}


# -- D-T3: regenerate against an in-flight write -------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_dt3_a_write_in_flight_cannot_recreate_the_pre_regeneration_key(
    concurrency: str, store: RedisStore, raw: Redis, redis_prefix: str
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        old_cookie = await seed(client)
        held, login = await hold_then(client, race, "/set/a/5?tag=1", "/login")
        assert login.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        new_cookie = client.cookies["session"]
        assert session_id(new_cookie) != session_id(old_cookie)
        assert await keys(raw, redis_prefix) == [key_of(redis_prefix, new_cookie)], "only the new key"
        assert (await client.get("/read")).json()["a"] == 9, "the held write was dropped"


# -- D-T4: counter -------------------------------------------------------------------------------


async def test_dt4_version_checked_counter_with_client_retries_is_exact(store: RedisStore) -> None:
    app, _ = build(store, "version_check")
    conflicts = 0

    async def bump() -> None:
        nonlocal conflicts
        while True:
            response = await client.post("/increment", headers={"cookie": f"session={cookie}"})
            if response.status_code == 200:
                return
            assert response.status_code == 409
            conflicts += 1
            await anyio.sleep(random.uniform(0, 0.01))  # a client backing off before its retry

    async with client_for(app) as client:
        cookie = await seed(client)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(100):
                    group.start_soon(bump)
        assert (await client.get("/read")).json()["count"] == 100
    assert conflicts > 0, "the requests really overlapped"


# -- D-T5: rolling touch against destroy ---------------------------------------------------------


async def test_dt5_a_rolling_touch_held_across_a_logout_never_resurrects(
    store: RedisStore, raw: Redis, redis_prefix: str
) -> None:
    app, race = build(store, idle_timeout=60)
    async with client_for(app) as client:
        cookie = await seed(client)
        key = key_of(redis_prefix, cookie)
        assert 0 < await raw.ttl(key) <= 60
        read, logout = await hold_then(client, race, "/read?tag=1", "/logout")
        assert logout.status_code == 200
        assert read.status_code == 200
        assert await keys(raw, redis_prefix) == []
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}
        assert await keys(raw, redis_prefix) == [], "a touch of a deleted key creates nothing"


async def test_dt5_a_rolling_touch_during_a_held_logout_never_resurrects(
    store: RedisStore, raw: Redis, redis_prefix: str
) -> None:
    app, race = build(store, idle_timeout=60)
    async with client_for(app) as client:
        cookie = await seed(client)
        logout, read = await hold_then(client, race, "/logout?tag=1", "/read")
        assert read.status_code == 200
        assert read.json()["a"] == 9, "the touch ran while the session still existed"
        assert logout.status_code == 200
        assert await keys(raw, redis_prefix) == []
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}
        assert await keys(raw, redis_prefix) == []
