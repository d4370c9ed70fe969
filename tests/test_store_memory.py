"""MemoryStore: the shipped store contract, plus its own promises (bounded size, reclaimed expiry)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

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
from fastapi_sessions.stores.packed import Entry
from fastapi_sessions.testing import (
    FakeClock,
    RecordingStore,
    StoreConformance,
    StoreHarness,
    UserIndexConformance,
    fake_wait,
)


class TestMemoryStoreContract(StoreConformance, UserIndexConformance):
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


class CountedReads:
    """Stands in for a slot of ``Entry`` and counts its reads: how many stored sessions code looked at.

    A reaper must read a session's deadline (or its blob) to know that it expired, whatever structure
    it keeps them in, so this counts the sessions it examined without trusting its own bookkeeping.
    """

    def __init__(self, slot: Any) -> None:
        self.slot = slot
        self.reads = 0

    def __get__(self, entry: Entry | None, owner: type[Entry] | None = None) -> Any:
        if entry is None:
            return self
        self.reads += 1
        return self.slot.__get__(entry, owner)

    def __set__(self, entry: Entry, value: Any) -> None:
        self.slot.__set__(entry, value)


@contextlib.contextmanager
def counting_session_reads() -> Iterator[list[CountedReads]]:
    """Count every read of a stored session's deadline and blob while the block runs."""
    counters = [CountedReads(Entry.__dict__[name]) for name in ("deadline", "blob")]
    try:
        for name, counter in zip(("deadline", "blob"), counters, strict=True):
            setattr(Entry, name, counter)
        yield counters
    finally:
        for name, counter in zip(("deadline", "blob"), counters, strict=True):
            setattr(Entry, name, counter.slot)


LIVE, EXPIRED = 8_000, 800
EXAMINED_PER_RECLAIMED, EXAMINED_PER_WRITE = 2, 4


async def assert_writes_reclaim_expired_sessions_without_a_full_scan(
    store: MemoryStore, clock: FakeClock
) -> None:
    """Expire 800 sessions stored after 8,000 live ones (half of them in use), then write until all are
    reclaimed, checking that no write examines more than a few sessions per session it reclaims."""
    live = [f"live{i}" for i in range(LIVE)]
    for key in live:
        await store.create(key, _record(clock, life=10**6), ttl=10**6)
    for key in live[::2]:  # in use: the protected segment holds live sessions too
        assert await store.load(key) is not None
    for i in range(EXPIRED):
        await store.create(f"expired{i}", _record(clock), ttl=10)
    clock.advance(11)
    writes = 0
    with counting_session_reads() as counters:
        while len(store) > LIVE + writes:
            assert writes < EXPIRED, "a write reclaimed no expired session"
            before, read_before = len(store), sum(c.reads for c in counters)
            await store.create(f"fresh{writes}", _record(clock, life=10**6), ttl=10**6)
            writes += 1
            reclaimed = before + 1 - len(store)
            examined = sum(c.reads for c in counters) - read_before
            limit = EXAMINED_PER_RECLAIMED * reclaimed + EXAMINED_PER_WRITE
            assert examined <= limit, (
                f"write {writes} examined {examined} sessions to reclaim {reclaimed} "
                f"(at most {limit}): a scan of the live ones"
            )
    assert not [key for key in store._data if key.startswith("expired")]
    assert [key for key in live if await store.load(key) is None] == []


class FullScanStore(MemoryStore):
    """A MemoryStore whose reaper sweeps every session, at most once per second: correct, but a scan."""

    swept_at = -1.0

    def _reap(self, budget: int, looks: int) -> None:
        now = self._clock.monotonic()
        if now - self.swept_at < 1.0:
            return
        self.swept_at = now
        for segment in (self._probation, self._protected):
            for key, entry in list(segment.entries.items()):
                if entry.deadline <= now:
                    del segment.entries[key]


@pytest.mark.anyio
async def test_expired_sessions_are_reclaimed_without_a_full_scan() -> None:
    """Each write reclaims a few expired sessions, looking at those and not at the live ones."""
    clock = FakeClock()
    await assert_writes_reclaim_expired_sessions_without_a_full_scan(MemoryStore(clock=clock), clock)


@pytest.mark.anyio
async def test_the_reclaim_check_catches_a_full_scan_reaper() -> None:
    """The check above fails on a reaper that scans every session, though that one reclaims them all."""
    clock = FakeClock()
    store = FullScanStore(clock=clock)
    with pytest.raises(AssertionError, match="a scan of the live ones"):
        await assert_writes_reclaim_expired_sessions_without_a_full_scan(store, clock)
    # What the check used to assert holds for the full scan too: every expired session goes.
    await store.create("one-more", _record(clock, life=10**6), ttl=10**6)
    assert not [key for key in store._data if key.startswith("expired")]
    assert len(store) == LIVE + 2


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
    change = {"d": b"{}", "b": b'"a much longer value"', "a": b"[1,2,3,4]"}
    assert await store.update("k", SessionChange(change), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {**fields, **change}
    change2 = {"c": b"0", "e": b"5"}  # a new field: packed anew in a new layout
    assert await store.update("k", SessionChange(change2, frozenset({"a"})), ttl=60) is WriteResult.OK
    assert await _round_trip(store, "k") == {
        "b": b'"a much longer value"',
        "c": b"0",
        "d": b"{}",
        "e": b"5",
    }


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


# -- eviction: sessions in use outlive a flood of new ones ----------------------------------------


async def _flood(store: MemoryStore, clock: FakeClock, count: int, ttl: float, tag: str) -> None:
    """``count`` one-shot sessions: created, never loaded (a crawler, or anonymous requests that write)."""
    for i in range(count):
        await store.create(f"{tag}{i}", _record(clock, life=10_000), ttl=ttl)
        clock.advance(0.01)


@pytest.mark.anyio
@pytest.mark.parametrize("idle", [None, 1800.0], ids=["no-idle-timeout", "idle-timeout"])
async def test_a_flood_of_one_shot_sessions_leaves_every_returning_user_logged_in(
    idle: float | None,
) -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=100, clock=clock)
    ttl = idle or 5000.0
    await _flood(store, clock, 100, ttl, "earlier")  # a full store of ordinary traffic
    users = [f"user{i}" for i in range(60)]
    for user in users:
        await store.create(user, _record(clock, life=10_000), ttl=ttl)
        clock.advance(0.01)
    for wave in range(6):  # 3 x max_entries one-shot sessions, the users coming back between waves
        for user in users:
            assert await store.load(user, touch=idle) is not None, f"{user} logged out before wave {wave}"
        await _flood(store, clock, 50, ttl, f"flood{wave}-")
    for user in users:
        assert await store.load(user, touch=idle) is not None, f"{user} logged out by the flood"
    assert len(store) == 100


@pytest.mark.anyio
async def test_a_new_session_that_never_came_back_is_evicted_before_one_loaded_since_created() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=3, clock=clock)
    await store.create("returning", _record(clock), ttl=100)  # the closest to expiry, but used again
    clock.advance(1)
    await store.create("one-shot", _record(clock), ttl=200)
    clock.advance(1)
    await store.create("other", _record(clock), ttl=300)
    assert await store.load("returning") is not None
    await store.create("new", _record(clock), ttl=300)
    assert await store.load("one-shot") is None
    for key in ("returning", "other", "new"):
        assert await store.load(key) is not None


@pytest.mark.anyio
async def test_a_full_store_evicts_by_the_rolled_deadline_not_the_first_one() -> None:
    """Sessions in use beyond the protected share compete by the deadline their last load gave them."""
    clock = FakeClock()
    store = MemoryStore(max_entries=5, clock=clock)  # at most 4 in use are protected
    for key in "abcde":
        await store.create(key, _record(clock), ttl=100)
        clock.advance(1)
    for key in "abcd":  # all of them in use
        assert await store.load(key, touch=100) is not None
        clock.advance(1)
    clock.advance(41)
    assert await store.load("a", touch=100) is not None  # a was queued first, and was just used
    assert await store.load("e", touch=100) is not None  # the fifth in use: the idlest one goes back
    await store.create("f", _record(clock), ttl=100)  # full: evicts the idlest
    assert await store.load("b") is None, "b was idle longest"
    for key in "acdef":
        assert await store.load(key) is not None, f"{key} evicted instead of b"


@pytest.mark.anyio
async def test_a_write_that_brings_the_expiry_closer_moves_the_session_up_the_eviction_order() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=3, clock=clock)
    for key in "abc":
        await store.create(key, _record(clock), ttl=500)
        clock.advance(1)
    soon = SessionChange({"a": b"2"}, expires_at=clock.time() + 10)  # e.g. set_expiry(10)
    assert await store.update("c", soon, ttl=500) is WriteResult.OK
    await store.create("d", _record(clock), ttl=500)
    assert await store.load("c") is None
    for key in "abd":
        assert await store.load(key) is not None


@pytest.mark.anyio
async def test_evictions_are_logged_as_a_warning_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=10, clock=clock)
    caplog.set_level(logging.WARNING, logger="fastapi_sessions")
    await _flood(store, clock, 10, 1000, "fill")
    assert not caplog.records, "nothing is evicted before the store is full"
    await _flood(store, clock, 25, 1000, "a")  # 25 evictions in 0.25 s: one report, at the first
    reports = [r for r in caplog.records if r.name == "fastapi_sessions"]
    assert len(reports) == 1
    assert reports[0].levelno == logging.WARNING
    assert "max_entries=10" in reports[0].getMessage()
    assert "SESSION_STORE_URL=redis://" in reports[0].getMessage()
    clock.advance(60)
    await _flood(store, clock, 1, 1000, "b")  # a minute later: the next report counts all since
    reports = [r for r in caplog.records if r.name == "fastapi_sessions"]
    assert len(reports) == 2
    assert "25 sessions" in reports[1].getMessage()


@pytest.mark.anyio
async def test_a_session_kept_alive_by_loads_outlives_its_first_deadline() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=2, clock=clock)
    await store.create("used", _record(clock), ttl=10)
    clock.advance(5)
    assert await store.load("used", touch=10) is not None  # in use, due at +15
    clock.advance(3)
    assert await store.load("used", touch=10) is not None  # due at +18
    clock.advance(8)  # past the deadlines it had (+10, +15), not its rolled one
    await store.create("other", _record(clock), ttl=10)  # reclaims what expired
    await store.create("third", _record(clock), ttl=10)  # full: reclaims everything expired first
    assert await store.load("used") is not None


@pytest.mark.anyio
async def test_a_touch_shorter_than_the_last_ttl_is_reclaimed_at_the_shorter_deadline() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.create("k", _record(clock), ttl=1000)
    assert await store.load("k") is not None  # in use
    assert await store.load("k", touch=5) is not None  # now due at +5, not +1000
    clock.advance(6)
    await store.create("other", _record(clock), ttl=1000)  # a write reclaims what expired
    assert len(store) == 1


@pytest.mark.anyio
async def test_writes_find_an_expired_session_gone() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for key in ("new", "used"):
        await store.create(key, _record(clock), ttl=10)
    assert await store.load("used") is not None
    clock.advance(11)
    for key in ("new", "used"):
        assert await store.update(key, SessionChange({"a": b"2"}), ttl=10) is WriteResult.MISSING
        assert await store.create(key, _record(clock), ttl=10) is WriteResult.OK
    assert len(store) == 2


@pytest.mark.anyio
async def test_queued_deadlines_of_departed_sessions_do_not_pile_up() -> None:
    """Logged-out, regenerated and promoted sessions leave heap items behind; they are dropped."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for round_ in range(5):
        for i in range(1000):
            await store.create(f"{round_}-{i}", _record(clock), ttl=1000)
            if i % 2:
                assert await store.load(f"{round_}-{i}") is not None  # promoted: its old item stays
            else:
                await store.delete(f"{round_}-{i}")  # logged out: its item stays
    for segment in (store._probation, store._protected):
        assert len(segment.heap) <= 2 * len(segment.entries) + 1025
    for i in range(1, 1000, 2):
        assert await store.load(f"4-{i}") is not None


@pytest.mark.anyio
async def test_a_full_store_reclaims_expired_sessions_queued_behind_many_departed_ones() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=5, clock=clock)
    for i in range(40):  # logged out long ago: their queued deadlines come first
        await store.create(f"gone{i}", _record(clock), ttl=1)
        await store.delete(f"gone{i}")
    clock.advance(0.5)
    for i in range(5):
        await store.create(f"old{i}", _record(clock), ttl=1)
    clock.advance(1)
    await store.create("new", _record(clock), ttl=100)  # full, but of expired sessions only
    assert len(store) == 1


async def _in_use(store: MemoryStore, clock: FakeClock, keys: list[str]) -> None:
    """Sessions created and come back (protected), on an idle timeout of 100 s."""
    for key in keys:
        await store.create(key, _record(clock), ttl=100)
        assert await store.load(key, touch=100) is not None


@pytest.mark.anyio
async def test_when_thousands_of_sessions_in_use_rolled_on_the_idlest_still_goes_back_first() -> None:
    """Past a thousand sessions whose deadline moved on since they were queued, the heap is rebuilt."""
    clock = FakeClock()
    store = MemoryStore(max_entries=2500, clock=clock)  # at most 2000 protected
    users = [f"user{i}" for i in range(2000)]
    await _in_use(store, clock, users)  # all due at +100
    clock.advance(10)
    assert await store.load("user0", touch=100) is not None  # due at +110
    clock.advance(1)
    for user in users[1:]:  # due at +111
        assert await store.load(user, touch=100) is not None
    await _in_use(store, clock, ["late"])  # one too many in use: the idlest goes back to probation
    assert list(store._probation.entries) == ["user0"]
    assert len(store._protected.entries) == 2000


@pytest.mark.anyio
async def test_a_full_store_finds_an_expired_session_behind_thousands_that_rolled_on() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=2500, clock=clock)
    users = [f"user{i}" for i in range(1999)]
    await _in_use(store, clock, users)  # queued at +100
    clock.advance(5)
    await _in_use(store, clock, ["idle"])  # queued at +105, and never used again
    clock.advance(45)
    for user in users:  # due at +150, still queued at +100
        assert await store.load(user, touch=100) is not None
    await _flood(store, clock, 500, 1000, "one-shot")  # the store is full
    clock.advance(70)  # "idle" expired; the others' queued deadlines passed, not their real ones
    await store.create("new", _record(clock), ttl=100)
    assert "idle" not in store._data
    assert len(store) == 2500, "room made by reclaiming, not by evicting"
    assert all(f"one-shot{i}" in store._data for i in range(500))


SPLICED = b'["x"],"user_id":999'  # joined into the session's document, this would set user_id too


@pytest.mark.anyio
@pytest.mark.parametrize("value", [SPLICED, b"", b"1 2", b'"open', b"[1", b"\xff", b"nul\x00"], ids=repr)
async def test_a_field_value_that_is_not_exactly_one_json_value_is_refused_and_nothing_written(
    value: bytes,
) -> None:
    """A read hands the stored document over without a parse, so a write must not put a value in it
    that would splice into other fields (or break the document); create, update and rename all refuse."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    meta = SessionMeta(clock.time(), clock.time() + 60)
    with pytest.raises(ValueError, match="'cart' is not one"):
        await store.create("k", SessionRecord({"user_id": b"1", "cart": value}, meta), ttl=60)
    assert await store.load("k") is None
    await store.create("k", SessionRecord({"user_id": b"1", "cart": b"[]"}, meta), ttl=60)
    with pytest.raises(ValueError, match="'cart' is not one"):
        await store.update("k", SessionChange({"cart": value}), ttl=60)
    with pytest.raises(ValueError, match="'cart' is not one"):
        await store.rename("k", "new", SessionChange({"cart": value}), ttl=60)
    loaded = await store.load("k")
    assert loaded is not None
    assert dict(loaded.fields) == {"user_id": b"1", "cart": b"[]"}, "nothing was written"
    assert loaded.meta.version == 0
    assert await store.load("new") is None


@pytest.mark.anyio
async def test_the_user_index_of_a_user_who_never_returns_is_pruned_by_later_logins() -> None:
    """Each login prunes the user index written longest ago: no scan, and no index kept forever."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    now = clock.time()
    await store.index_add("gone", "k1", until=now + 10, now=now)
    await store.index_add("active", "k2", until=now + 100, now=now)
    assert set(store._users) == {"gone", "active"}
    await store.index_add("active", "k3", until=now + 100, now=now + 20)
    assert set(store._users) == {"active"}, "the entry past its until went, and its user with it"


@pytest.mark.anyio
async def test_values_the_engine_encoded_are_not_parsed_again(
    client: Any, store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine writes only values it encoded itself, each one JSON value: MemoryStore's check is
    for other callers, and a login or a write does not pay it (seven parses a login)."""
    from fastapi_sessions.stores import memory

    parsed: list[bytes] = []

    def counting(value: bytes) -> str:
        parsed.append(value)
        return ""

    monkeypatch.setattr(memory, "json_value_problem", counting)
    assert (await client.post("/login/7")).status_code == 303  # a create
    assert (await client.post("/cart/apple")).json() == {"cart": ["apple"]}  # an update
    assert parsed == []
    assert len(store) == 1
    await store.create("k", SessionRecord({"x": b"1"}, SessionMeta(0.0, 1e12)), ttl=60)
    assert parsed == [b"1"], "a value from another caller is still checked"
