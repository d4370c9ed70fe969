"""MemoryStore: the shipped store contract, plus its own promises (bounded size, reclaimed expiry)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from fastapi_sessions import SessionConfigError
from fastapi_sessions.stores import (
    MemoryStore,
    SessionChange,
    SessionMeta,
    SessionRecord,
    WriteResult,
    json_document,
)
from fastapi_sessions.testing import (
    CHECKS,
    FakeClock,
    RecordingStore,
    StoreConformance,
    StoreHarness,
    fake_wait,
)


class TestMemoryStoreContract(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = MemoryStore(clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


class TestRecordingStoreContract(StoreConformance):
    """The test helper forwards every argument: a store it wraps keeps its contract."""

    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = RecordingStore(MemoryStore(clock=clock))
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


def _record(clock: FakeClock, life: float = 1000.0) -> SessionRecord:
    return SessionRecord({"a": b"1"}, SessionMeta(clock.time(), clock.time() + life))


@pytest.mark.anyio
async def test_expired_sessions_are_reclaimed_without_a_full_scan() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    keys = [f"k{i}" for i in range(100_000)]
    for key in keys:
        await store.create(key, _record(clock), ttl=10)
    clock.advance(11)
    # Each write reclaims a few expired entries; enough writes reclaim all of them.
    for i in range(100_000 // 8 + 1):
        await store.create(f"fresh{i}", _record(clock), ttl=1)
        clock.advance(2)
    assert all(not key.startswith("k") for key in store._data)


@pytest.mark.anyio
async def test_a_full_store_evicts_the_session_closest_to_expiry() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=3, clock=clock)
    for key, ttl in (("long", 300), ("short", 10), ("mid", 100)):
        await store.create(key, _record(clock), ttl=ttl)
    assert await store.create("new", _record(clock), ttl=50) is WriteResult.OK
    assert len(store) == 3
    assert await store.load("short") is None
    for key in ("long", "mid", "new"):
        assert await store.load(key) is not None


@pytest.mark.anyio
async def test_a_full_store_reclaims_expired_entries_before_evicting_live_ones() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=2, clock=clock)
    await store.create("old", _record(clock), ttl=1)
    await store.create("live", _record(clock), ttl=500)
    clock.advance(2)
    await store.create("new", _record(clock), ttl=500)
    assert await store.load("live") is not None
    assert await store.load("new") is not None


@pytest.mark.anyio
async def test_ttl_runs_on_the_monotonic_clock_not_wall_time() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.create("k", _record(clock, life=10_000), ttl=100)
    clock._wall += 10_000  # a wall-clock step (NTP) must not expire or extend anything
    assert await store.load("k") is not None
    clock._mono += 101
    assert await store.load("k") is None


def test_from_url_reads_max_entries_and_rejects_nonsense() -> None:
    assert MemoryStore.from_url("memory://").max_entries == 100_000
    assert MemoryStore.from_url("memory://?max_entries=5").max_entries == 5
    for bad in ("memory://host", "memory://?size=3", "memory://?max_entries=x", "mem://"):
        with pytest.raises(SessionConfigError):
            MemoryStore.from_url(bad)
    with pytest.raises(SessionConfigError, match="positive"):
        MemoryStore(max_entries=0)


class _ResurrectingStore(MemoryStore):
    """Broken on purpose: update() writes even when the record is gone."""

    async def update(self, key, change, *, ttl, expected=None):  # type: ignore[no-untyped-def]
        if key not in self._data:
            await self.create(key, SessionRecord(dict(change.fields), SessionMeta(0, 1e12)), ttl=ttl)
            return WriteResult.OK
        return await super().update(key, change, ttl=ttl, expected=expected)


class _OverwritingStore(MemoryStore):
    """Broken on purpose: create() overwrites an existing record."""

    async def create(self, key, record, *, ttl):  # type: ignore[no-untyped-def]
        self._data.pop(key, None)
        return await super().create(key, record, ttl=ttl)


@pytest.mark.anyio
@pytest.mark.parametrize("broken", [_ResurrectingStore, _OverwritingStore])
async def test_the_conformance_checks_catch_a_broken_store(broken: type[MemoryStore]) -> None:
    failures = 0
    for check in CHECKS:
        clock = FakeClock()
        try:
            await check(StoreHarness(broken(clock=clock), clock.time, fake_wait(clock)))
        except AssertionError:
            failures += 1
    assert failures >= 1


async def _round_trip(store: MemoryStore, key: str) -> dict[str, bytes]:
    loaded = await store.load(key)
    assert loaded is not None
    assert loaded.document in (None, json_document(loaded.fields)), "a document must be the joined fields"
    return dict(loaded.fields)


@pytest.mark.anyio
async def test_packing_keeps_names_that_need_escaping_and_percent_signs() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    fields = {"a%s": b"1", 'q"uote': b'"x"', "caf\u00e9": b"[1,2]", "%%": b"{}", "": b"null"}
    await store.create("k", SessionRecord(fields, SessionMeta(clock.time(), clock.time() + 60)), ttl=60)
    assert await _round_trip(store, "k") == fields
    loaded = await store.load("k")
    assert loaded is not None
    assert loaded.document is not None
    assert json.loads(loaded.document) == {"a%s": 1, 'q"uote': "x", "caf\u00e9": [1, 2], "%%": {}, "": None}
    assert await store.update("k", SessionChange({"%%": b"[]"}), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {**fields, "%%": b"[]"}


@pytest.mark.anyio
async def test_values_too_long_to_pack_are_kept_whole_and_can_shrink_back() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    big = b'"' + b"x" * 70_000 + b'"'
    meta = SessionMeta(clock.time(), clock.time() + 60)
    await store.create("k", SessionRecord({"a": b"1", "b": big}, meta), ttl=60)
    assert await _round_trip(store, "k") == {"a": b"1", "b": big}
    assert await store.update("k", SessionChange({"a": b"2"}), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {"a": b"2", "b": big}
    assert await store.update("k", SessionChange({"b": b'"small"'}), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {"a": b"2", "b": b'"small"'}
    # A value that grows past the packed length field in place.
    assert await store.update("k", SessionChange({"a": big}), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {"a": big, "b": b'"small"'}
    loaded = await store.load("k")
    assert loaded is not None
    assert loaded.meta.version == 3


@pytest.mark.anyio
async def test_in_place_writes_of_several_fields_of_changing_lengths() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    fields = {"a": b"1", "b": b'"bb"', "c": b"[3]", "d": b"4"}
    await store.create("k", SessionRecord(fields, SessionMeta(clock.time(), clock.time() + 60)), ttl=60)
    change = {"d": b"", "b": b'"a much longer value"', "a": b"[1,2,3,4]"}
    assert await store.update("k", SessionChange(change), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {**fields, **change}
    change2 = {"c": b"0", "e": b"5"}  # a new field: packed anew in a new layout
    assert await store.update("k", SessionChange(change2, frozenset({"a"})), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {"b": b'"a much longer value"', "c": b"0", "d": b"", "e": b"5"}


@pytest.mark.anyio
async def test_clear_removes_every_session_of_this_store_and_only_of_it() -> None:
    clock = FakeClock()
    store, other = MemoryStore(clock=clock), MemoryStore(clock=clock)
    for key in ("a", "b", "c"):
        await store.create(key, _record(clock), ttl=60)
    await other.create("a", _record(clock), ttl=60)
    await store.clear()
    assert len(store) == 0
    assert await store.load("a") is None
    assert await other.load("a") is not None
    assert await store.create("a", _record(clock), ttl=60) is WriteResult.OK, "still usable afterwards"


@pytest.mark.anyio
async def test_aclose_keeps_the_sessions_for_an_app_started_again_in_the_same_process() -> None:
    store = MemoryStore()
    await store.create("k", SessionRecord({"a": b"1"}, SessionMeta(0.0, 4e9)), ttl=60)
    await store.aclose()
    assert len(store) == 1
    await store.clear()
    assert len(store) == 0
