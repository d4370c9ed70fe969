"""BackendStore: the store contract on top of a four-method Backend, the documented data shape, expiry
decided by the stored deadline, corrupt data, per-key locks, and ``as_store``."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from fastapi_sessions.backends import Backend, MemoryBackend, as_store
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.backends.locks import KeyLocks
from fastapi_sessions.exceptions import CorruptRecordError
from fastapi_sessions.stores import MemoryStore, SessionChange, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.testing import FakeClock, RecordingStore, StoreConformance, StoreHarness, fake_wait

from .backend_support import DictBackend, RedisJSONBackend

pytestmark = pytest.mark.anyio


class TestBackendStoreOverADictContract(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = BackendStore(DictBackend(clock), clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


class TestBackendStoreOverABackendThatNeverExpiresContract(StoreConformance):
    """Expiry is the adapter's: a backend that ignores ``ttl`` still passes."""

    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = BackendStore(DictBackend(clock, honour_ttl=False), clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


@pytest.mark.redis
class TestBackendStoreOverRedisContract(StoreConformance):
    """A backend on a real Redis, on a fake clock: the stored deadline decides, whatever the machine's
    speed (Redis' own TTL, whole seconds of real time, is only the clean-up bound and outlives a test)."""

    @pytest.fixture
    async def store_harness(self, redis_server_url: str, redis_prefix: str) -> AsyncIterator[StoreHarness]:
        pytest.importorskip("redis")
        clock = FakeClock()
        store = BackendStore(RedisJSONBackend(redis_server_url, redis_prefix), clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock), unit=60.0)
        await store.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> DictBackend:
    return DictBackend(clock)


@pytest.fixture
def store(backend: DictBackend, clock: FakeClock) -> BackendStore:
    return BackendStore(backend, clock=clock)


def new_record(clock: FakeClock, life: float = 3600.0) -> SessionRecord:
    now = clock.time()
    return SessionRecord({"user_id": b"42", "cart": b'["apple"]'}, SessionMeta(now, now + life))


# -- the data a backend keeps --------------------------------------------------------------------


async def test_the_backend_stores_the_documented_json_shape(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    now = clock.time()
    record = SessionRecord(
        {"user_id": b"42", "cart": b'["apple"]', "name": b'"Zo\\u00eb"'}, SessionMeta(now, now + 3600)
    )
    await store.create("k", record, ttl=600)
    assert backend.data("k") == {
        "session": {"user_id": 42, "cart": ["apple"], "name": "Zo\u00eb"},
        "meta": {
            "created_at": now,
            "expires_at": now + 3600,
            "persistent": False,
            "version": 0,
            "deadline": now + 600,
        },
    }


async def test_the_backend_gets_whole_seconds_of_ttl_at_least_one_and_never_past_expiry(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    await store.create("a", new_record(clock), ttl=0.3)
    await store.create("b", new_record(clock), ttl=2.5)
    await store.create("c", new_record(clock, life=10.0), ttl=600)
    assert backend.ttls == [1, 3, 10]
    assert backend.data("c")["meta"]["deadline"] == clock.time() + 10


async def test_a_touch_rewrites_the_deadline_but_keeps_data_and_version(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    record = new_record(clock)
    await store.create("k", record, ttl=100)
    clock.advance(50)
    assert await store.load("k") == record
    assert backend.ttls == [100], "a load without touch writes nothing"
    assert await store.load("k", touch=100) == record
    assert backend.ttls == [100, 100]
    stored = backend.data("k")
    assert stored["meta"]["deadline"] == clock.time() + 100
    assert stored["meta"]["version"] == 0
    assert stored["session"] == {"user_id": 42, "cart": ["apple"]}


async def test_a_record_past_its_deadline_is_absent_though_the_backend_still_returns_it(
    clock: FakeClock,
) -> None:
    backend = DictBackend(clock, honour_ttl=False)
    store = BackendStore(backend, clock=clock)
    await store.create("k", new_record(clock), ttl=10)
    clock.advance(10)
    assert await backend.read("k") is not None
    assert await store.load("k") is None
    assert await store.load("k", touch=100) is None
    assert await store.update("k", SessionChange({"a": b"1"}), ttl=10) is WriteResult.MISSING
    assert await store.create("k", new_record(clock), ttl=10) is WriteResult.OK


MALFORMED: list[Any] = [
    ["not", "a", "dict"],
    {},
    {"session": {"user_id": 1}},
    {"session": [], "meta": {}},
    {"session": {1: "non-string name"}, "meta": {}},
    {"session": {"when": {1, 2}}, "meta": {}},
    {"session": {"x": math.nan}, "meta": {}},
]
GOOD_META = {"created_at": 1.8e9, "expires_at": 1.9e9, "persistent": False, "version": 0, "deadline": 1.9e9}
BAD_META = [
    {"persistent": 0},
    {"persistent": None},
    {"version": "3"},
    {"version": True},
    {"version": -1},
    {"version": 1.5},
    {"created_at": "yesterday"},
    {"expires_at": math.inf},
    {"deadline": None},
    {"deadline": False},
]
MALFORMED += [{"session": {}, "meta": {**GOOD_META, **bad}} for bad in BAD_META]
MALFORMED += [
    {"session": {}, "meta": {k: v for k, v in GOOD_META.items() if k != name}} for name in GOOD_META
]


@pytest.mark.parametrize("data", MALFORMED, ids=repr)
async def test_a_read_without_the_documented_shape_is_a_corrupt_record(
    store: BackendStore, backend: DictBackend, data: Any
) -> None:
    backend.planted["k"] = data
    with pytest.raises(CorruptRecordError):
        await store.load("k")


async def test_whole_number_times_are_accepted_as_a_json_store_may_return_them(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    now = int(clock.time())
    meta = {
        "created_at": now,
        "expires_at": now + 60,
        "persistent": True,
        "version": 2,
        "deadline": now + 60,
    }
    backend.planted["k"] = {"session": {"a": 1}, "meta": meta}
    assert await store.load("k") == SessionRecord({"a": b"1"}, SessionMeta(now, now + 60, True, 2))


# -- atomic within the process -------------------------------------------------------------------


async def paused_between_read_and_write(backend: DictBackend, first: Any, second: Any) -> None:
    """Run ``first`` until it waits in the backend's ``write``, start ``second``, then let both finish."""
    backend.gate = gate = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    backend.gate = None


async def test_a_delete_waits_for_an_update_in_flight_so_the_session_stays_deleted(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    await store.create("k", new_record(clock), ttl=100)
    update = lambda: store.update("k", SessionChange({"cart": b"[]"}), ttl=100)  # noqa: E731
    await paused_between_read_and_write(backend, update, lambda: store.delete("k"))
    assert await store.load("k") is None


async def test_a_touch_does_not_undo_a_concurrent_update(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    await store.create("k", new_record(clock), ttl=100)
    touch = lambda: store.load("k", touch=100)  # noqa: E731
    update = lambda: store.update("k", SessionChange({"cart": b"[]"}), ttl=100)  # noqa: E731
    await paused_between_read_and_write(backend, update, touch)
    loaded = await store.load("k")
    assert loaded is not None
    assert loaded.fields["cart"] == b"[]"
    assert loaded.meta.version == 1


async def test_no_lock_outlives_the_operations_that_used_it(store: BackendStore, clock: FakeClock) -> None:
    async with anyio.create_task_group() as group:
        for index in range(50):
            key = f"k{index % 5}"
            group.start_soon(lambda key=key: store.create(key, new_record(clock), ttl=100))
            group.start_soon(lambda key=key: store.load(key, touch=100))
            group.start_soon(lambda key=key: store.rename(key, key + "x", SessionChange(), ttl=100))
    assert len(store._locks) == 0


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks = KeyLocks()
    held, release = anyio.Event(), anyio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("k"):
            pytest.fail("the waiter was cancelled before it got the lock")

    async with anyio.create_task_group() as group:
        group.start_soon(holder)
        await held.wait()
        async with anyio.create_task_group() as waiting:
            waiting.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            waiting.cancel_scope.cancel()
        release.set()
    assert len(locks) == 0


async def test_two_holders_of_the_same_keys_in_opposite_order_take_turns() -> None:
    locks = KeyLocks()
    events: list[tuple[str, ...]] = []

    async def hold(*keys: str) -> None:
        async with locks.hold(*keys):
            events.append(keys)
            await checkpoint()
            events.append(keys)

    with anyio.fail_after(30):  # a deadlock fails the test instead of hanging it
        async with anyio.create_task_group() as group:
            group.start_soon(hold, "a", "b")
            group.start_soon(hold, "b", "a")
    assert events in ([("a", "b")] * 2 + [("b", "a")] * 2, [("b", "a")] * 2 + [("a", "b")] * 2)
    assert len(locks) == 0


# -- failures and the rest of the protocol -------------------------------------------------------


@pytest.mark.parametrize("method", ["read", "write", "destroy"])
async def test_every_failure_of_the_backend_propagates(
    store: BackendStore, backend: DictBackend, clock: FakeClock, method: str
) -> None:
    await store.create("k", new_record(clock), ttl=100)
    backend.failing = {method}
    with pytest.raises(ConnectionError):
        await store.rename("k", "new", SessionChange(), ttl=100)
    backend.failing = set()
    assert await store.load("k") == new_record(clock), "the old session is still there"


async def test_clear_and_aclose_reach_the_backend(
    store: BackendStore, backend: DictBackend, clock: FakeClock
) -> None:
    await store.create("k", new_record(clock), ttl=100)
    await store.clear()
    assert backend.records == {}
    await store.aclose()
    assert backend.closed


@pytest.mark.redis
async def test_clear_of_a_redis_backed_backend_leaves_other_prefixes_alone(
    redis_server_url: str, redis_prefix: str
) -> None:
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    from .redis_support import keys_under

    mine = as_store(RedisJSONBackend(redis_server_url, redis_prefix + "mine:"))
    theirs = as_store(RedisJSONBackend(redis_server_url, redis_prefix + "theirs:"))
    shipped = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "shipped:")
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 60))
    for store in (mine, theirs, shipped):
        await store.create("k1", record, ttl=60)
    await mine.create("k2", record, ttl=60)
    assert isinstance(mine, BackendStore)
    await mine.clear()
    assert keys_under(redis_server_url, redis_prefix + "mine:") == []
    assert await theirs.load("k1") == record
    assert await shipped.load("k1") == record
    for store in (mine, theirs, shipped):
        await store.aclose()


async def test_the_base_aclose_does_nothing() -> None:
    class Minimal(Backend):
        async def read(self, key: str) -> dict[str, Any] | None:
            return None

        async def write(self, key: str, data: dict[str, Any], ttl: int) -> None: ...

        async def destroy(self, key: str) -> None: ...

        async def clear(self) -> None: ...

    await as_store(Minimal()).aclose()


@pytest.mark.parametrize("missing", ["read", "write", "destroy", "clear"])
def test_a_backend_missing_a_method_cannot_be_instantiated(missing: str) -> None:
    async def method(self: Any, *args: Any) -> None: ...

    methods = {name: method for name in ("read", "write", "destroy", "clear") if name != missing}
    incomplete = type("Incomplete", (Backend,), methods)
    with pytest.raises(TypeError, match=missing):
        incomplete()


def test_as_store_wraps_a_backend_and_passes_stores_through(clock: FakeClock) -> None:
    backend = DictBackend(clock)
    wrapped = as_store(backend, clock=clock)
    assert isinstance(wrapped, BackendStore)
    assert wrapped.backend is backend
    assert repr(wrapped) == f"BackendStore({backend!r})"
    memory = MemoryStore()
    for store in (memory, MemoryBackend(), RecordingStore(memory), wrapped):
        assert as_store(store) is store
