"""The conformance checks themselves: a correct store passes them all, and each broken store fails
exactly the checks of the rules it breaks, every time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from anyio import sleep as anyio_sleep

from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.stores import SessionStore
from fastapi_sessions.testing import CHECKS, CONCURRENCY_CHECKS, FakeClock, StoreHarness, expiry, fake_wait
from fastapi_sessions.testing import concurrency as races

from .backend_support import DictBackend
from .broken_stores import (
    DuplicateKeyStore,
    HangingStore,
    HastyStore,
    ImmortalStore,
    OverwritingStore,
    ResurrectingStore,
    RowStore,
    SlowMachineStore,
    TouchPastExpiryStore,
)

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


async def test_a_store_that_never_expires_records_fails_every_check_of_expiry() -> None:
    assert await failing(on(ImmortalStore)) == {check.__name__ for check in expiry.EXPIRY_CHECKS}


async def test_a_store_that_expires_records_early_fails_the_checks_that_need_them_alive() -> None:
    assert await failing(on(HastyStore)) == {
        "check_records_expire_after_their_ttl",
        "check_touch_extends_the_ttl_without_rewriting",
        "check_update_resets_the_ttl",
    }


async def test_a_store_whose_touch_goes_past_expires_at_fails_that_check_only() -> None:
    assert await failing(on(TouchPastExpiryStore)) == {"check_touch_never_goes_past_expires_at"}


@pytest.mark.parametrize("delay", [0.3, 1.5, 5.0])
async def test_a_correct_store_on_a_busy_machine_passes_every_check_of_expiry(delay: float) -> None:
    """Each store call taking ``delay`` units of the store's own time (up to 2.5 times a whole TTL
    of the checks) makes the checks try again with longer spans; it never makes them fail."""
    for check in expiry.EXPIRY_CHECKS:
        clock = FakeClock()
        await check(StoreHarness(SlowMachineStore(clock, delay=delay), clock.time, fake_wait(clock)))


async def test_a_store_too_slow_for_every_span_fails_with_an_assertion_that_says_so() -> None:
    clock = FakeClock()
    harness = StoreHarness(SlowMachineStore(clock, delay=1_000.0), clock.time, fake_wait(clock))
    with pytest.raises(AssertionError, match="too slow to tell, even with 32 s a unit"):
        await expiry.check_records_expire_after_their_ttl(harness)


async def test_the_checks_keep_records_that_must_live_for_longer_than_any_check_runs() -> None:
    clock = FakeClock()
    harness = StoreHarness(RowStore(clock), clock.time, fake_wait(clock), unit=0.25)
    assert harness.lasting >= 600
    record = harness.record()
    assert record.meta.expires_at == record.meta.created_at + harness.lasting


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
