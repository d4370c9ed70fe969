"""The store contract under concurrency: checks that race many writers on one record.

Each check runs ``harness.rounds`` races, each on a fresh key. In a race, ``harness.writers`` tasks
first load the key, as a request does before it writes (this also opens the connections a pool opens
lazily, which would otherwise space the writers out); they wait at a gate until every one of them has
loaded, and then all write at once. Every write thus starts in the same turn of the event loop: an
in-process store that reads, awaits (a checkpoint, as a network round trip does) and then writes has
every writer read before the first one writes, and fails in the first round, every time. A network
store gets every writer's first request on the wire before any reply is read; the rounds make up for
what the server may still reorder.

With a ``harness.connect``, the writers are spread over two clients of the same storage, as over two
worker processes: that catches a store whose atomicity is a lock (or a pool of one connection) inside
one client. Before it races, each client serves one request (see ``StoreHarness.clients``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from ..stores.base import SessionChange, SessionRecord, SessionStore, WriteResult
from .harness import StoreHarness

__all__ = ["CONCURRENCY_CHECKS"]

T = TypeVar("T")
Writer = Callable[[SessionStore, SessionRecord | None], Awaitable[T]]
"""One racer's write: it gets its client and what that client loaded before the gate."""

_HANG_GUARD = 60.0
"""Seconds a race may take before the check fails as a deadlock; never reached by a working store."""


class _Gate:
    """Holds tasks until ``parties`` of them wait at it, then lets them all go in the same turn."""

    def __init__(self, parties: int) -> None:
        self._waiting = parties
        self._open = anyio.Event()

    async def wait(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._open.set()
        await self._open.wait()


async def _race(
    clients: Sequence[SessionStore], key: str, writers: Sequence[Writer[T]], *, alone: int | None = None
) -> list[T]:
    """Run each writer on its own task: load ``key``, wait until all have loaded, then write. The
    writers take turns over ``clients``; or, with two clients, writer ``alone`` has the first to
    itself and the others share the second, so that it never queues behind them inside one client
    (a delete behind the updates it should race). The results come in the order of ``writers``."""
    gate = _Gate(len(writers))
    results: dict[int, T] = {}

    async def run(index: int, write: Writer[T]) -> None:
        if alone is None:
            client = clients[index % len(clients)]
        else:
            client = clients[0] if index == alone else clients[-1]
        loaded = await client.load(key)
        await gate.wait()
        results[index] = await write(client, loaded)

    try:
        with anyio.fail_after(_HANG_GUARD):
            async with anyio.create_task_group() as group:
                for index, write in enumerate(writers):
                    group.start_soon(run, index, write)
    except TimeoutError:
        raise AssertionError(
            f"{len(writers)} writers racing on one key did not finish within {_HANG_GUARD:.0f} s: "
            "the store deadlocks when writes overlap."
        ) from None
    except Exception as group:  # the task group's ExceptionGroup
        failure = _first(group)
        raise AssertionError(
            f"a store call racing on one key raised {failure!r}. Concurrent writes must each get an "
            "answer (OK, EXISTS, MISSING, CONFLICT), never an error: a duplicate key, a deadlock or "
            "a serialization failure is the store's to resolve."
        ) from failure
    return [results[index] for index in range(len(writers))]


def _first(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups; ``error`` itself if it is none."""
    while isinstance(inner := getattr(error, "exceptions", None), tuple) and inner:
        error = inner[0]
    return error


async def _created(h: StoreHarness, fields: dict[str, bytes]) -> str:
    key = h.key()
    assert await h.store.create(key, h.record(fields), ttl=h.lasting) is WriteResult.OK
    return key


def _fields(record: SessionRecord | None, what: str) -> dict[str, bytes]:
    assert record is not None, f"the record is missing {what}"
    return dict(record.fields)


async def check_concurrent_updates_of_different_fields_all_survive(h: StoreHarness) -> None:
    names = [f"f{index}" for index in range(h.writers)]

    def setting(key: str, name: str) -> Writer[WriteResult]:
        return lambda client, _: client.update(key, SessionChange({name: b"1"}), ttl=h.lasting)

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key = await _created(h, dict.fromkeys(names, b"0"))
            results = await _race(clients, key, [setting(key, name) for name in names])
            assert set(results) == {WriteResult.OK}, f"round {round_}: updates of a live record: {results}"
            loaded = await h.store.load(key)
            lost = [name for name, value in _fields(loaded, "after the updates").items() if value != b"1"]
            assert not lost, (
                f"round {round_}: {len(lost)} of {h.writers} concurrent updates of different fields were "
                f"lost ({', '.join(lost)}). Each update must read and write the record in one atomic "
                "step (a transaction with a row lock, a script, a conditional write), writing only the "
                "fields it changes."
            )
            assert loaded is not None
            assert loaded.meta.version == h.writers, (
                f"round {round_}: {h.writers} updates left version {loaded.meta.version}, not "
                f"{h.writers}: every update adds one to the version, also when updates overlap"
            )


async def check_concurrent_version_checked_counter_is_exact(h: StoreHarness) -> None:
    def bump(key: str) -> Writer[WriteResult]:
        async def write(client: SessionStore, loaded: SessionRecord | None) -> WriteResult:
            if loaded is None:  # the record is gone: no increment can succeed
                return WriteResult.MISSING
            change = SessionChange({"n": str(int(loaded.fields["n"]) + 1).encode()})
            return await client.update(key, change, ttl=h.lasting, expected={"n": loaded.fields["n"]})

        return write

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key = await _created(h, {"n": b"0"})
            # Each writer increments the value it loaded, expecting it unchanged, and retries on
            # CONFLICT. A wave's writers all loaded the same value, so exactly one of each may succeed.
            for pending in range(h.writers, 0, -1):
                results = await _race(clients, key, [bump(key)] * pending)
                won = results.count(WriteResult.OK)
                assert won == 1, (
                    f"round {round_}: {won} of {pending} writers holding the same value succeeded. "
                    "With expected= exactly one may: the check of the expected values and the write "
                    "must be one atomic step (a transaction with a row lock, a script, WATCH/MULTI)."
                )
                assert results.count(WriteResult.CONFLICT) == pending - 1, (
                    f"round {round_}: the refused version-checked writes answered {results}, not CONFLICT"
                )
            count = _fields(await h.store.load(key), "after the increments")["n"]
            assert count == str(h.writers).encode(), (
                f"round {round_}: {h.writers} increments, each retried until it succeeded, left the "
                f"counter at {count.decode()}"
            )


async def check_concurrent_creates_of_one_key_have_one_winner(h: StoreHarness) -> None:
    def creating(key: str, index: int) -> Writer[WriteResult]:
        record = h.record({"who": str(index).encode()})
        return lambda client, _: client.create(key, record, ttl=h.lasting)

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key = h.key()
            results = await _race(clients, key, [creating(key, index) for index in range(h.writers)])
            winners = [index for index, result in enumerate(results) if result is WriteResult.OK]
            assert len(winners) == 1, (
                f"round {round_}: {len(winners)} of {h.writers} concurrent creates of one key answered "
                "OK. Exactly one may; the others answer EXISTS and write nothing (INSERT ... ON "
                "CONFLICT DO NOTHING, SET NX): never look for the key and then write it."
            )
            assert results.count(WriteResult.EXISTS) == h.writers - 1, f"round {round_}: {results}"
            stored = _fields(await h.store.load(key), "after the creates")
            assert stored == {"who": str(winners[0]).encode()}, (
                f"round {round_}: the record holds {stored}, not what the one successful create wrote"
            )


async def check_writes_racing_a_delete_never_resurrect(h: StoreHarness) -> None:
    deleter = h.writers // 2  # in the middle: some writers start before it, some after
    updaters = [index for index in range(h.writers) if index % 2 == 0 and index != deleter]

    def writing(key: str, index: int) -> Writer[object]:
        if index == deleter:
            return lambda client, _: client.delete(key)
        if index in updaters:
            change = SessionChange({f"f{index}": b"1"})
            return lambda client, _: client.update(key, change, ttl=h.lasting)
        return lambda client, _: client.load(key, touch=h.lasting)

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key = await _created(h, {"a": b"0"})
            writers = [writing(key, index) for index in range(h.writers)]
            results = await _race(clients, key, writers, alone=deleter)
            updated = {results[index] for index in updaters}
            assert updated <= {WriteResult.OK, WriteResult.MISSING}, f"round {round_}: updates {updated}"
            assert await h.store.load(key) is None, (
                f"round {round_}: a record deleted while updates and touches were in flight is back. "
                "An update or touch that read the record before the delete must not write it after: "
                "write only if the record still exists, in the same atomic step as that check."
            )
            late = await h.store.update(key, SessionChange({"a": b"1"}), ttl=h.lasting)
            assert late is WriteResult.MISSING, f"round {round_}: an update after the race answered {late}"


async def check_updates_racing_a_rename_are_carried_over_or_refused(h: StoreHarness) -> None:
    renamer = h.writers // 2
    updaters = [index for index in range(h.writers) if index != renamer]

    def writing(key: str, new_key: str, index: int) -> Writer[WriteResult]:
        if index == renamer:
            return lambda client, _: client.rename(key, new_key, SessionChange(), ttl=h.lasting)
        change = SessionChange({f"f{index}": b"1"})
        return lambda client, _: client.update(key, change, ttl=h.lasting)

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key, new_key = await _created(h, {f"f{index}": b"0" for index in updaters}), h.key()
            writers = [writing(key, new_key, index) for index in range(h.writers)]
            results = await _race(clients, key, writers, alone=renamer)
            renamed = results[renamer]
            # CONFLICT: a store that cannot rename atomically may refuse a rename that met a
            # concurrent write, if it then changed nothing (RedisStore on a Cluster does).
            assert renamed in (WriteResult.OK, WriteResult.CONFLICT), f"round {round_}: rename {renamed}"
            assert {results[index] for index in updaters} <= {WriteResult.OK, WriteResult.MISSING}, (
                f"round {round_}: updates racing a rename answered {results}"
            )
            kept, gone = (new_key, key) if renamed is WriteResult.OK else (key, new_key)
            assert await h.store.load(gone) is None, (
                f"round {round_}: after a rename that answered {renamed.name} with updates in flight, "
                f"the {'old' if gone == key else 'new'} key holds a record. An update that read the "
                "old key before the rename must find it gone (MISSING) when it writes, and a rename "
                "must move the record and remove the old key in one atomic step."
            )
            loaded = await h.store.load(kept)
            stored = _fields(loaded, f"after a rename that answered {renamed.name}")
            applied = {f"f{index}" for index in updaters if results[index] is WriteResult.OK}
            lost = sorted(name for name in applied if stored.get(name) != b"1")
            assert not lost, (
                f"round {round_}: updates answered OK but are missing after the rename: {lost}. A rename "
                "must carry over every update that finished before it, and an update after it must "
                "answer MISSING."
            )
            assert loaded is not None
            expected = len(applied) + (renamed is WriteResult.OK)
            assert loaded.meta.version == expected, (
                f"round {round_}: version {loaded.meta.version} after {len(applied)} updates and a "
                f"rename that answered {renamed.name}, not {expected}"
            )


async def check_concurrent_renames_of_one_record_leave_one_copy(h: StoreHarness) -> None:
    def renaming(key: str, target: str) -> Writer[WriteResult]:
        return lambda client, _: client.rename(key, target, SessionChange(), ttl=h.lasting)

    async with h.clients() as clients:
        for round_ in range(1, h.rounds + 1):
            key, targets = await _created(h, {"a": b"1"}), [h.key() for _ in range(h.writers)]
            results = await _race(clients, key, [renaming(key, target) for target in targets])
            assert results.count(WriteResult.OK) == 1, (
                f"round {round_}: {results.count(WriteResult.OK)} of {h.writers} concurrent renames of "
                "one record answered OK. Exactly one may (the others find the old key gone: MISSING): "
                "a rename reads and removes the old key in one atomic step."
            )
            assert set(results) <= {WriteResult.OK, WriteResult.MISSING, WriteResult.CONFLICT}, results
            live = [target for target in targets if await h.store.load(target) is not None]
            assert live == [targets[results.index(WriteResult.OK)]], (
                f"round {round_}: {len(live)} copies of one session after {h.writers} concurrent "
                "renames; only the one rename that answered OK may have written its new key"
            )
            assert await h.store.load(key) is None, f"round {round_}: the old key survived the renames"


CONCURRENCY_CHECKS = (
    check_concurrent_updates_of_different_fields_all_survive,
    check_concurrent_version_checked_counter_is_exact,
    check_concurrent_creates_of_one_key_have_one_winner,
    check_writes_racing_a_delete_never_resurrect,
    check_updates_racing_a_rename_are_carried_over_or_refused,
    check_concurrent_renames_of_one_record_leave_one_copy,
)
"""The checks that race writers on one record, in a stable order (all are in ``CHECKS`` too)."""
