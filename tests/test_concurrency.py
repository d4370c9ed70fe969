"""Concurrent requests on one session, really overlapping, on every store.

No lost update across fields, last-writer-wins or 409 on one field, no resurrection after destroy or
regenerate, an exact counter under version checks, no resurrection by a rolling touch.
"""

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import pytest

from fastapi_sessions import SessionStore
from fastapi_sessions.stores import MemoryStore

from .races import HANG_GUARD, build, client_for, hold_then, overlap, seed, session_id

pytestmark = pytest.mark.anyio

MODES = ["last_write_wins", "version_check"]
STORE_DEADLINE = 60.0
"""The Redis store's deadline here: never reached. These tests are about who wins a race, not about a
slow store (test_redis_faults.py is); with the default second, a loaded machine turned some of their
409s into 503s."""
IDLE = 3600
"""The rolling idle window of the touch races: one that no test outlives on real time, however slow
the machine (these tests are about the touch, not about when the session times out)."""


@dataclass
class Backend:
    """A store under race, and how to see which session keys it holds."""

    store: SessionStore
    keys: Callable[[], Awaitable[list[str]]]
    key_of: Callable[[str], str]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    from fastapi_sessions.testing import session_store_key

    if request.param == "memory":
        memory = MemoryStore()

        async def memory_keys() -> list[str]:
            return sorted(memory._data)

        yield Backend(memory, memory_keys, lambda cookie: session_store_key(session_id(cookie)))
        return
    pytest.importorskip("redis")
    from redis.asyncio import Redis

    from fastapi_sessions.stores.redis import RedisStore

    url: str = request.getfixturevalue("redis_server_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    store = RedisStore.from_url(url, prefix=prefix, timeout=STORE_DEADLINE)
    raw = Redis.from_url(url)

    async def redis_keys() -> list[str]:
        found = [key.decode() async for key in raw.scan_iter(match=prefix + "*", count=1000)]
        return sorted(found)

    yield Backend(store, redis_keys, lambda cookie: prefix + session_store_key(session_id(cookie)))
    await raw.aclose()
    await store.aclose()


# -- lost update ----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_overlapping_changes_to_different_fields_both_survive(
    concurrency: str, backend: Backend
) -> None:
    """Two requests that both load before either saves, changing different fields, keep both changes."""
    app, race = build(backend.store, concurrency)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/b/2?tag=2")
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json() == {"a": 1, "b": 2, "count": 0}


async def test_overlapping_changes_to_one_field_last_writer_wins_by_default(backend: Backend) -> None:
    """By default the later commit of two overlapping changes to one field wins."""
    app, race = build(backend.store)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2")
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json()["a"] == 2, "the later commit wins"


async def test_overlapping_changes_to_one_field_give_a_409_with_version_check(backend: Backend) -> None:
    """With version_check the later of two overlapping changes to one field is a 409 and is dropped."""
    app, race = build(backend.store, "version_check")
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/a/2?tag=2")
        assert results["1"].status_code == 200
        assert results["2"].status_code == 409
        assert "set-cookie" not in results["2"].headers
        assert (await client.get("/read")).json()["a"] == 1, "the loser's change is dropped"


# -- logout against a write -----------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_a_write_in_flight_never_resurrects_a_destroyed_session(
    concurrency: str, backend: Backend
) -> None:
    """A write that loaded before a logout gets a 409 and recreates no record."""
    app, race = build(backend.store, concurrency)
    async with client_for(app) as client:
        cookie = await seed(client)
        assert await backend.keys() == [backend.key_of(cookie)]
        held, logout = await hold_then(client, race, "/set/a/5?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        assert await backend.keys() == [], "the destroyed session must stay destroyed"
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}


# -- regenerate against an in-flight write --------------------------------------------------------


@pytest.mark.parametrize("concurrency", MODES)
async def test_a_write_in_flight_cannot_recreate_the_pre_regeneration_key(
    concurrency: str, backend: Backend
) -> None:
    """A write that loaded before a login's regenerate gets a 409; only the new key exists."""
    app, race = build(backend.store, concurrency)
    async with client_for(app) as client:
        old_cookie = await seed(client)
        held, login = await hold_then(client, race, "/set/a/5?tag=1", "/login")
        assert login.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        new_cookie = client.cookies["session"]
        assert session_id(new_cookie) != session_id(old_cookie)
        assert await backend.keys() == [backend.key_of(new_cookie)], "only the new key"
        assert (await client.get("/read")).json()["a"] == 9, "the held write was dropped"


# -- counter --------------------------------------------------------------------------------------


async def test_a_version_checked_counter_with_client_retries_is_exact(backend: Backend) -> None:
    """100 concurrent increments, retried by the client on 409, end at exactly 100."""
    app, race = build(backend.store, "version_check")
    race.wave("first", 100)  # every first attempt loads before any commits: one wins, 99 conflict
    conflicts = 0

    async def bump() -> None:
        nonlocal conflicts
        path, tries = "/increment?tag=first", 0
        while True:
            response = await client.post(path, headers={"cookie": f"session={cookie}"})
            if response.status_code == 200:
                return
            assert response.status_code == 409
            conflicts += 1
            tries += 1
            path = "/increment"
            # A client backing off before its retry: exponentially, with full jitter (so the retries
            # thin out however slowly the machine serves them).
            await anyio.sleep(random.uniform(0, 0.005 * 2 ** min(tries, 7)))

    async with client_for(app) as client:
        cookie = await seed(client)
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for _ in range(100):
                    group.start_soon(bump)
        assert (await client.get("/read")).json()["count"] == 100
    assert conflicts >= 99, "the first attempts all overlapped"


# -- rolling touch against destroy ----------------------------------------------------------------


async def test_a_rolling_touch_held_across_a_logout_never_resurrects(backend: Backend) -> None:
    """A read that touches the session, held while a logout completes, recreates nothing."""
    app, race = build(backend.store, idle_timeout=IDLE)
    async with client_for(app) as client:
        cookie = await seed(client)
        read, logout = await hold_then(client, race, "/read?tag=1", "/logout")
        assert logout.status_code == 200
        assert read.status_code == 200
        assert await backend.keys() == []
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}
        assert await backend.keys() == [], "a touch of a deleted key creates nothing"


async def test_a_rolling_touch_during_a_held_logout_never_resurrects(backend: Backend) -> None:
    """A read that touches the session while a logout is under way does not bring it back."""
    app, race = build(backend.store, idle_timeout=IDLE)
    async with client_for(app) as client:
        cookie = await seed(client)
        logout, read = await hold_then(client, race, "/logout?tag=1", "/read")
        assert read.status_code == 200
        assert read.json()["a"] == 9, "the touch ran while the session still existed"
        assert logout.status_code == 200
        assert await backend.keys() == []
        replay = await client.get("/read", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"a": 0, "b": 0, "count": 0}
        assert await backend.keys() == []
