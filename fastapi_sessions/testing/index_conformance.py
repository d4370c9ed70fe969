"""The rules of the optional ``UserIndexStore`` capability, as checks: a store that keeps, per user,
the keys of their logged-in sessions passes them all.

Run them through ``fastapi_sessions.testing.UserIndexConformance`` (pytest) with the same
``store_harness`` fixture as ``StoreConformance``, or call them yourself. No check waits: each passes
the index a ``now`` of its choosing.
"""

from __future__ import annotations

from ..stores.base import SessionChange
from ..stores.index import IndexedSession, UserIndexStore
from .harness import Check, StoreHarness

__all__ = ["INDEX_CHECKS"]


def _index(h: StoreHarness) -> UserIndexStore:
    assert isinstance(h.store, UserIndexStore), (
        f"{type(h.store).__name__} lacks index_add, index_remove or index_sessions"
    )
    return h.store


def _user(h: StoreHarness) -> str:
    return "user " + h.key()  # any text is a user identifier: a space and a fresh name


def _keys(listed: list[IndexedSession]) -> set[str]:
    return {item.key for item in listed}


async def check_index_lists_a_users_sessions_with_their_records(h: StoreHarness) -> None:
    index, user, other = _index(h), _user(h), _user(h)
    now = h.now()
    first, second, theirs = h.key(), h.key(), h.key()
    for key in (first, second, theirs):
        await h.store.create(key, h.record({"k": f'"{key}"'.encode()}), ttl=10 * h.unit)
    await index.index_add(user, first, until=now + 100 * h.unit, now=now)
    await index.index_add(user, second, until=now + 100 * h.unit, now=now)
    await index.index_add(other, theirs, until=now + 100 * h.unit, now=now)
    listed = await index.index_sessions(user, now=now)
    assert _keys(listed) == {first, second}, "a user's index lists their sessions and no one else's"
    for item in listed:
        assert dict(item.record.fields) == {"k": f'"{item.key}"'.encode()}, "each with its own record"
    assert _keys(await index.index_sessions(other, now=now)) == {theirs}
    assert await index.index_sessions(_user(h), now=now) == [], "an unknown user has no sessions"


async def check_index_reports_when_each_sessions_ttl_ends(h: StoreHarness) -> None:
    index, user, key = _index(h), _user(h), h.key()
    await h.store.create(key, h.record(), ttl=h.lasting)
    before = h.now()
    await h.store.load(key, touch=50 * h.unit)
    now = h.now()
    await index.index_add(user, key, until=now + 100 * h.unit, now=now)
    (item,) = await index.index_sessions(user, now=now)
    after = h.now()
    # The touch set the TTL to 50 units from the moment it ran, somewhere between before and after;
    # a store that reads what is left of the TTL later and adds it to ``now`` reports up to
    # (after - before) less. Bounds that a slow machine widens, never breaks.
    elapsed = after - before
    assert before + 50 * h.unit - elapsed - 0.002 <= item.ttl_ends <= after + 50 * h.unit + 0.002, (
        f"ttl_ends is {item.ttl_ends - before:.3f} s after the touch began, not the {50 * h.unit:g} s "
        "the touch set"
    )


async def check_index_remove_drops_only_that_entry(h: StoreHarness) -> None:
    index, user, now = _index(h), _user(h), h.now()
    kept, removed = h.key(), h.key()
    for key in (kept, removed):
        await h.store.create(key, h.record(), ttl=10 * h.unit)
        await index.index_add(user, key, until=now + 100 * h.unit, now=now)
    await index.index_remove(user, removed)
    await index.index_remove(user, h.key())  # absent: nothing to do
    await index.index_remove(_user(h), kept)  # another user's: nothing to do
    assert _keys(await index.index_sessions(user, now=now)) == {kept}
    assert await h.store.load(removed) is not None, "index_remove never deletes the session itself"


async def check_index_drops_entries_past_their_bound_without_a_scan(h: StoreHarness) -> None:
    index, user, now = _index(h), _user(h), h.now()
    old, fresh = h.key(), h.key()
    for key in (old, fresh):
        await h.store.create(key, h.record(), ttl=100 * h.unit)
    await index.index_add(user, old, until=now + 10 * h.unit, now=now)
    await index.index_add(user, fresh, until=now + 100 * h.unit, now=now)
    later = now + 20 * h.unit
    assert _keys(await index.index_sessions(user, now=later)) == {fresh}, (
        "an entry past its until is not listed, even while the record is still there"
    )
    assert _keys(await index.index_sessions(user, now=now)) == {fresh}, (
        "listing dropped the entry past its until for good"
    )
    third = h.key()
    await h.store.create(third, h.record(), ttl=100 * h.unit)
    await index.index_add(user, third, until=now + 200 * h.unit, now=now + 150 * h.unit)
    assert _keys(await index.index_sessions(user, now=now)) == {third}, (
        "a write to the index drops its entries past the now it is given"
    )


async def check_index_keeps_an_entry_whose_record_is_missing(h: StoreHarness) -> None:
    """A login writes the entry just before its session: a listing in between must not drop it."""
    index, user, key, now = _index(h), _user(h), h.key(), h.now()
    await index.index_add(user, key, until=now + 100 * h.unit, now=now)
    assert await index.index_sessions(user, now=now) == [], "no record, nothing listed"
    await h.store.create(key, h.record(), ttl=10 * h.unit)
    assert _keys(await index.index_sessions(user, now=now)) == {key}, "the entry was kept"
    await h.store.delete(key)
    assert await index.index_sessions(user, now=now) == [], "a deleted session is not listed"


async def check_plain_session_operations_leave_the_index_alone(h: StoreHarness) -> None:
    index, user, key, now = _index(h), _user(h), h.key(), h.now()
    await h.store.create(key, h.record(), ttl=10 * h.unit)
    await index.index_add(user, key, until=now + 100 * h.unit, now=now)
    moved = h.key()
    await h.store.rename(key, moved, SessionChange(), ttl=10 * h.unit)
    assert await index.index_sessions(user, now=now) == [], "a rename does not move the entry by itself"
    await index.index_add(user, moved, until=now + 100 * h.unit, now=now)
    await h.store.update(moved, SessionChange({"a": b"1"}), ttl=10 * h.unit)
    assert _keys(await index.index_sessions(user, now=now)) == {moved}


INDEX_CHECKS: tuple[Check, ...] = (
    check_index_lists_a_users_sessions_with_their_records,
    check_index_reports_when_each_sessions_ttl_ends,
    check_index_remove_drops_only_that_entry,
    check_index_drops_entries_past_their_bound_without_a_scan,
    check_index_keeps_an_entry_whose_record_is_missing,
    check_plain_session_operations_leave_the_index_alone,
)
"""Every check of the ``UserIndexStore`` capability."""
