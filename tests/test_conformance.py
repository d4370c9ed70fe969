"""The conformance checks themselves: a correct store passes them all, and each broken store fails
exactly the checks of the rules it breaks, every time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from anyio import sleep as anyio_sleep

from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.stores import SessionStore
from fastapi_sessions.testing import CHECKS, CONCURRENCY_CHECKS, FakeClock, StoreHarness, fake_wait
from fastapi_sessions.testing import concurrency as races

from .backend_support import DictBackend
from .broken_stores import DuplicateKeyStore, HangingStore, OverwritingStore, ResurrectingStore, RowStore

pytestmark = pytest.mark.anyio

RACES = {check.__name__ for check in CONCURRENCY_CHECKS}
Harness = Callable[[], Awaitable[StoreHarness]]


async def failing(harness: Harness) -> set[str]:
    """The names of the checks that fail, each against a fresh harness."""
    failed = set()
    for check in CHECKS:
        h = await harness()
        try:
            await check(h)
        except AssertionError:
            failed.add(check.__name__)
        finally:
            await h.store.aclose()
    return failed


def on(make: Callable[[FakeClock], SessionStore]) -> Harness:
    """Fresh harnesses on a fake clock, each with the store ``make`` builds on it."""

    async def harness() -> StoreHarness:
        clock = FakeClock()
        return StoreHarness(make(clock), clock.time, fake_wait(clock))

    return harness


async def test_a_store_that_reads_and_writes_without_awaiting_passes_every_check() -> None:
    assert await failing(on(RowStore)) == set()


async def test_the_same_store_awaiting_between_its_read_and_its_write_fails_every_race() -> None:
    """The docs' example ported to a network database without transactions: correct one operation
    at a time, it loses updates, resurrects and duplicates sessions under concurrency."""
    assert await failing(on(lambda clock: RowStore(clock, round_trips=True))) == RACES


async def test_a_store_that_resurrects_on_update_fails_the_checks_of_resurrection() -> None:
    assert await failing(on(ResurrectingStore)) == {
        "check_update_of_missing_key_is_missing_and_creates_nothing",
        "check_delete_removes_and_never_resurrects",
        "check_records_expire_after_their_ttl",
        # Updates that lose these races must answer MISSING and write nothing; here they recreate
        # the key that was deleted, or renamed away.
        "check_writes_racing_a_delete_never_resurrect",
        "check_updates_racing_a_rename_are_carried_over_or_refused",
    }


async def test_a_store_that_overwrites_on_create_fails_the_checks_of_creation() -> None:
    assert await failing(on(OverwritingStore)) == {
        "check_create_never_overwrites",
        "check_concurrent_creates_of_one_key_have_one_winner",
    }


async def test_a_store_that_raises_on_a_concurrent_create_fails_with_an_assertion_naming_the_error() -> (
    None
):
    assert await failing(on(DuplicateKeyStore)) == {"check_concurrent_creates_of_one_key_have_one_winner"}
    clock = FakeClock()
    harness = StoreHarness(DuplicateKeyStore(clock), clock.time, fake_wait(clock))
    with pytest.raises(AssertionError, match=r"raised RuntimeError.*duplicate key"):
        await races.check_concurrent_creates_of_one_key_have_one_winner(harness)


async def test_a_store_that_deadlocks_when_updates_overlap_fails_the_race_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store never answers, so however fast the machine, the guard is what ends the race.
    monkeypatch.setattr(races, "_HANG_GUARD", 0.1)
    clock = FakeClock()
    harness = StoreHarness(HangingStore(clock), clock.time, fake_wait(clock))
    with pytest.raises(AssertionError, match=r"did not finish within .* deadlocks"):
        await races.check_concurrent_updates_of_different_fields_all_survive(harness)


async def test_a_store_atomic_within_one_client_only_fails_every_race_between_two_clients() -> None:
    """What the docs say a ``Backend`` gives up across worker processes, shown through ``connect``:
    the adapter over one shared backend, once per "process", each with its own locks."""

    async def two_processes() -> StoreHarness:
        clock = FakeClock()
        backend = DictBackend(clock)

        async def connect() -> SessionStore:
            return BackendStore(backend, clock=clock)

        return StoreHarness(await connect(), clock.time, fake_wait(clock), connect=connect)

    assert await failing(two_processes) == RACES
    one_process = on(lambda clock: BackendStore(DictBackend(clock), clock=clock))
    assert await failing(one_process) == set()


async def test_a_read_then_write_store_fails_every_race_with_its_writers_on_two_clients() -> None:
    async def harness() -> StoreHarness:
        clock = FakeClock()
        store = RowStore(clock, round_trips=True)

        async def connect() -> SessionStore:
            return store.sharing()

        return StoreHarness(store, clock.time, fake_wait(clock), connect=connect)

    assert await failing(harness) == RACES


@pytest.mark.parametrize(("writers", "rounds"), [(1, 10), (8, 0)])
def test_a_harness_refuses_a_race_without_two_writers_or_a_round(writers: int, rounds: int) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="at least 2 writers and 1 round"):
        StoreHarness(RowStore(clock), clock.time, fake_wait(clock), writers=writers, rounds=rounds)


# -- PostgreSQL, on the local server --------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("pool_size", [1, 4], ids=["pool-of-1", "fresh-pool-of-4"])
async def test_a_postgres_store_that_reads_then_writes_fails_every_race(pool_size: int) -> None:
    """The store of the report: the single race of two writers it once faced ran on a fresh pool,
    whose lazily opened connections served the two one after the other."""
    from .postgres_support import CONNECT, PostgresStore, asyncpg, postgres_table

    async with postgres_table() as table:

        async def harness() -> StoreHarness:
            clock = FakeClock()
            pool = await asyncpg.create_pool(**CONNECT, min_size=1, max_size=pool_size)
            return StoreHarness(PostgresStore(pool, table, clock), clock.time, fake_wait(clock))

        assert await failing(harness) == RACES


@pytest.mark.postgres
async def test_a_postgres_store_that_locks_its_rows_passes_every_check_with_two_clients() -> None:
    from .postgres_support import CONNECT, PostgresStore, asyncpg, postgres_table

    async with postgres_table() as table:

        async def harness() -> StoreHarness:
            clock = FakeClock()

            async def connect() -> SessionStore:
                pool = await asyncpg.create_pool(**CONNECT, min_size=1, max_size=4)
                return PostgresStore(pool, table, clock, locked=True)

            return StoreHarness(await connect(), clock.time, fake_wait(clock), connect=connect)

        assert await failing(harness) == set()


# -- the shipped Redis store, two clients as two worker processes ----------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("check", CONCURRENCY_CHECKS, ids=lambda check: check.__name__)
async def test_the_redis_store_passes_every_race_between_two_clients(
    check: Callable[[StoreHarness], Awaitable[None]], redis_server_url: str, redis_prefix: str
) -> None:
    pytest.importorskip("redis")
    import time

    from fastapi_sessions.stores.redis import RedisStore

    async def connect() -> SessionStore:
        # A generous deadline: this test is about atomicity, not about a slow server.
        return RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=60)

    store = await connect()
    try:
        await check(StoreHarness(store, time.time, anyio_sleep, unit=0.25, connect=connect))
    finally:
        await store.aclose()
