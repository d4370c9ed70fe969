"""The stores' optional operations (``stores.operations``): purging expired sessions and statistics."""

import time
from collections.abc import AsyncIterator

import pytest

from fastapi_sessions.stores import (
    MemoryStore,
    PurgingStore,
    SessionMeta,
    SessionRecord,
    StatsStore,
    TableStore,
)
from fastapi_sessions.testing import FakeClock

HANG_GUARD = 30.0


def record(now: float, life: float = 3600.0) -> SessionRecord:
    return SessionRecord({"user": b'"alice"'}, SessionMeta(now, now + life))


def test_the_shipped_stores_have_purge_and_stats_but_no_table() -> None:
    store = MemoryStore()
    assert isinstance(store, PurgingStore)
    assert isinstance(store, StatsStore)
    assert not isinstance(store, TableStore)


@pytest.mark.anyio
async def test_memory_purge_reclaims_every_expired_session_at_once_and_counts_them() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for index in range(50):
        await store.create(f"short{index}", record(clock.time()), ttl=10)
    await store.create("long", record(clock.time()), ttl=1000)
    clock.advance(11)
    assert len(store) > 1  # expired, not yet reclaimed: writes reclaim a few at a time
    assert await store.purge_expired() == 50
    assert len(store) == 1
    assert await store.load("long") is not None
    assert await store.purge_expired() == 0


@pytest.mark.anyio
async def test_memory_purge_drops_sessions_touched_since_they_were_queued_only_once_expired() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.create("touched", record(clock.time()), ttl=10)
    await store.create("left", record(clock.time()), ttl=10)
    clock.advance(5)
    await store.load("touched", touch=100)
    clock.advance(6)
    assert await store.purge_expired() == 1
    assert await store.load("touched") is not None


@pytest.mark.anyio
async def test_memory_purge_drops_user_index_entries_past_their_end() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.index_add("alice", "k1", until=clock.time() + 10, now=clock.time())
    await store.index_add("bob", "k2", until=clock.time() + 1000, now=clock.time())
    clock.advance(11)
    await store.purge_expired()
    assert (await store.stats())["indexed_users"] == 1


@pytest.mark.anyio
async def test_memory_stats_count_live_in_use_and_unreclaimed_sessions() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=100, clock=clock)
    await store.create("a", record(clock.time()), ttl=10)
    await store.create("b", record(clock.time()), ttl=1000)
    await store.create("c", record(clock.time()), ttl=1000)
    await store.load("b")  # came back: in use
    clock.advance(11)
    stats = await store.stats()
    assert stats["sessions"] == 2
    assert stats["in_use"] == 1
    assert stats["expired_unreclaimed"] == 1
    assert stats["max_entries"] == 100


# -- Redis ------------------------------------------------------------------------------------


@pytest.fixture
async def redis_store(redis_server_url: str, redis_prefix: str) -> AsyncIterator[object]:
    redis = pytest.importorskip("fastapi_sessions.stores.redis")
    store = redis.RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
    yield store
    await store.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_purge_has_nothing_to_do(redis_store: PurgingStore) -> None:
    """Redis expires keys by itself: purge returns 0."""
    assert isinstance(redis_store, PurgingStore)
    assert await redis_store.purge_expired() == 0


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_stats_count_this_prefixs_sessions_forwards_and_users_only(
    redis_store: StatsStore, redis_server_url: str, redis_prefix: str
) -> None:
    from fastapi_sessions.stores.redis import RedisStore

    assert isinstance(redis_store, RedisStore)
    now = time.time()
    for index in range(7):
        await redis_store.create(f"key{index}", record(now), ttl=600)
    await redis_store.create("key0.forward", record(now), ttl=600)  # a rotation's forward
    await redis_store.index_add("alice", "key1", until=now + 600, now=now)
    await redis_store.index_add("bob", "key2", until=now + 600, now=now)
    nested = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "admin:", timeout=HANG_GUARD)
    try:
        await nested.create("other", record(now), ttl=600)  # a longer prefix: not counted
    finally:
        await nested.aclose()
    stats = await redis_store.stats()
    assert stats["sessions"] == 7
    assert stats["rotation_forwards"] == 1
    assert stats["indexed_users"] == 2
    assert stats["prefix"] == redis_prefix
    assert isinstance(stats["server_used_memory"], int)
    assert "server_evicted_keys" in stats


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_stats_scan_past_one_batch(redis_store: StatsStore) -> None:
    from fastapi_sessions.stores.redis import RedisStore

    assert isinstance(redis_store, RedisStore)
    now = time.time()
    pipe = redis_store.client.pipeline(transaction=False)
    for index in range(1200):
        pipe.hset(f"{redis_store.prefix}bulk{index}", mapping={"c": now, "e": now + 600, "p": 0, "v": 0})
        pipe.expire(f"{redis_store.prefix}bulk{index}", 600)
    await pipe.execute()
    assert (await redis_store.stats())["sessions"] == 1200
