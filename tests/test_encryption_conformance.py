"""EncryptedStore keeps the whole store contract, races included, on every store it wraps: memory, the
Backend adapter, a real Redis and a real PostgreSQL (the shipped PostgresStore, and the tests' own
row-locking one), with two wrappers on two clients, as two workers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

pytest.importorskip("cryptography")

from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.stores import MemoryStore, SessionStore
from fastapi_sessions.stores.encrypted import EncryptedStore
from fastapi_sessions.testing import (
    FakeClock,
    StoreConformance,
    StoreHarness,
    UserIndexConformance,
    fake_wait,
)

from .backend_support import DictBackend

KEYS = [bytes(range(32)), bytes(range(32, 64))]
"""Two keys, newest first: the newest seals, as after a rotation."""
HANG_GUARD = 30.0  # seconds: the Redis store's deadline; only a hang reaches it


class TestEncryptedMemoryStoreContract(StoreConformance, UserIndexConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = EncryptedStore(MemoryStore(clock=clock), KEYS)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


class TestEncryptedBackendStoreContract(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = EncryptedStore(BackendStore(DictBackend(clock), clock=clock), KEYS)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


async def real_wait(seconds: float) -> None:
    await anyio.sleep(seconds)


@pytest.mark.redis
class TestEncryptedRedisStoreContract(StoreConformance, UserIndexConformance):
    """On a real Redis; the races spread over two wrappers, each on its own client."""

    @pytest.fixture
    async def store_harness(self, redis_server_url: str, redis_prefix: str) -> AsyncIterator[StoreHarness]:
        pytest.importorskip("redis")
        from fastapi_sessions.stores.redis import RedisStore

        async def connect() -> SessionStore:
            inner = RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
            return EncryptedStore(inner, KEYS)

        store = await connect()
        yield StoreHarness(store, time.time, real_wait, unit=0.25, connect=connect)
        await store.aclose()


@pytest.mark.postgres
class TestEncryptedShippedPostgresStoreContract(StoreConformance, UserIndexConformance):
    """On a real PostgreSQL, through the shipped PostgresStore (a schema of its own); the races
    spread over two wrappers, each on its own pool."""

    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        pytest.importorskip("asyncpg")
        from fastapi_sessions.stores.postgres import PostgresStore

        from .postgres_support import asyncpg, postgres_schema, store_url

        clock = FakeClock()
        async with postgres_schema() as (dsn, name):
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
            inner = PostgresStore(pool, table=f"{name}.sessions", clock=clock, timeout=HANG_GUARD)
            await inner.create_table()

            async def connect() -> SessionStore:
                url = store_url(dsn, f"{name}.sessions")
                return EncryptedStore(PostgresStore.from_url(url, clock=clock, timeout=HANG_GUARD), KEYS)

            yield StoreHarness(EncryptedStore(inner, KEYS), clock.time, fake_wait(clock), connect=connect)
            await pool.close()


@pytest.mark.postgres
class TestEncryptedPostgresStoreContract(StoreConformance):
    """On the local PostgreSQL (tests/postgres_support.py's row-locking store, in a schema of its
    own); the races spread over two wrappers, each on its own pool."""

    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        from .postgres_support import CONNECT, PostgresStore, asyncpg, postgres_table

        clock = FakeClock()
        async with postgres_table() as table:

            async def connect() -> SessionStore:
                pool = await asyncpg.create_pool(**CONNECT, min_size=1, max_size=4)
                return EncryptedStore(PostgresStore(pool, table, clock, locked=True), KEYS)

            store = await connect()
            yield StoreHarness(store, clock.time, fake_wait(clock), connect=connect)
            await store.aclose()
