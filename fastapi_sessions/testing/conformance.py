"""The store contract as plain async checks, each raising ``AssertionError`` when a store breaks it.

Run them through ``fastapi_sessions.testing.StoreConformance`` (pytest), or call them yourself:
``for check in CHECKS: await check(harness)``. A harness gives a fresh store, a wall clock and a way to
let time pass: a fake clock for in-process stores, real sleeps for a server (with a small ``unit``).
Records live for ``StoreHarness.lasting`` (at least 10 minutes), longer than any check runs; only the
checks of expiry (``expiry.py``) use short TTLs, and they hold however slow the machine is.
"""

from __future__ import annotations

from ..rotation import forward_key
from ..stores.base import SessionChange, SessionMeta, SessionRecord, WriteResult
from .concurrency import CONCURRENCY_CHECKS
from .expiry import EXPIRY_CHECKS
from .harness import Check, StoreHarness, assert_same

__all__ = ["CHECKS", "Check", "StoreHarness"]


async def check_load_of_unknown_key_is_none_and_creates_nothing(h: StoreHarness) -> None:
    key = h.key()
    assert await h.store.load(key) is None
    assert await h.store.load(key, touch=h.lasting) is None
    assert await h.store.create(key, h.record(), ttl=h.lasting) is WriteResult.OK


async def check_create_then_load_round_trips(h: StoreHarness) -> None:
    key, record = h.key(), h.record({"a": b'{"x":[1,2]}', "b": b'"\\u00e9"', "c": b"null"})
    assert await h.store.create(key, record, ttl=h.lasting) is WriteResult.OK
    assert_same(await h.store.load(key), record)
    meta = SessionMeta(1_700_000_000.5, 1_800_000_000.25, True, 7)
    other = h.key()
    await h.store.create(other, SessionRecord({"z": b"1"}, meta), ttl=h.lasting)
    loaded = await h.store.load(other)
    assert loaded is not None
    assert loaded.meta == meta, "metadata must round-trip exactly (floats, flags, version)"


async def check_create_never_overwrites(h: StoreHarness) -> None:
    key, first = h.key(), h.record({"who": b'"first"'})
    assert await h.store.create(key, first, ttl=h.lasting) is WriteResult.OK
    second = h.record({"who": b'"second"'})
    assert await h.store.create(key, second, ttl=h.lasting) is WriteResult.EXISTS
    assert_same(await h.store.load(key), first)


async def check_update_of_missing_key_is_missing_and_creates_nothing(h: StoreHarness) -> None:
    key = h.key()
    change = SessionChange({"user_id": b"1"})
    assert await h.store.update(key, change, ttl=h.lasting) is WriteResult.MISSING
    assert await h.store.load(key) is None


async def check_update_writes_only_the_given_fields(h: StoreHarness) -> None:
    key, record = h.key(), h.record({"a": b"1", "b": b"2", "c": b"3"})
    await h.store.create(key, record, ttl=h.lasting)
    change = SessionChange({"b": b"20", "d": b"4"}, frozenset({"c"}))
    assert await h.store.update(key, change, ttl=h.lasting) is WriteResult.OK
    loaded = await h.store.load(key)
    assert loaded is not None
    assert dict(loaded.fields) == {"a": b"1", "b": b"20", "d": b"4"}
    assert loaded.meta.created_at == record.meta.created_at
    assert loaded.meta.expires_at == record.meta.expires_at
    assert loaded.meta.version == record.meta.version + 1, "every update adds one to the version"


async def check_update_can_change_expiry_and_persistence(h: StoreHarness) -> None:
    key, record = h.key(), h.record()
    await h.store.create(key, record, ttl=h.lasting)
    new_expiry = record.meta.expires_at - 5 * h.unit
    change = SessionChange(expires_at=new_expiry, persistent=True)
    assert await h.store.update(key, change, ttl=h.lasting) is WriteResult.OK
    loaded = await h.store.load(key)
    assert loaded is not None
    assert loaded.meta.expires_at == new_expiry
    assert loaded.meta.persistent is True
    assert dict(loaded.fields) == dict(record.fields)


async def check_version_check_refuses_a_stale_writer(h: StoreHarness) -> None:
    key, record = h.key(), h.record({"n": b"0"})
    await h.store.create(key, record, ttl=h.lasting)
    first = SessionChange({"n": b"1"})
    assert await h.store.update(key, first, ttl=h.lasting, expected={"n": b"0"}) is WriteResult.OK
    stale = SessionChange({"n": b"99"})
    result = await h.store.update(key, stale, ttl=h.lasting, expected={"n": b"0"})
    assert result is WriteResult.CONFLICT, "n is no longer the value the writer loaded"
    gone = SessionChange(removed=frozenset({"n"}))
    result = await h.store.update(key, gone, ttl=h.lasting, expected={"n": b"0"})
    assert result is WriteResult.CONFLICT, "removing a field that moved on conflicts too"
    added = SessionChange({"new": b"1"})
    assert await h.store.update(key, added, ttl=h.lasting, expected={"new": None}) is WriteResult.OK
    result = await h.store.update(key, SessionChange({"new": b"2"}), ttl=h.lasting, expected={"new": None})
    assert result is WriteResult.CONFLICT, "expected absent (None), but another write added it"
    loaded = await h.store.load(key)
    assert loaded is not None
    assert dict(loaded.fields) == {"n": b"1", "new": b"1"}, "a refused write must change nothing"
    assert loaded.meta.version == 2


async def check_version_check_lets_a_change_to_another_field_through(h: StoreHarness) -> None:
    key = h.key()
    await h.store.create(key, h.record({"a": b"0", "b": b"0"}), ttl=h.lasting)
    # Two writers loaded the record when both fields were 0; each changes its own field.
    first = SessionChange({"a": b"1"})
    assert await h.store.update(key, first, ttl=h.lasting, expected={"a": b"0"}) is WriteResult.OK
    second = SessionChange({"b": b"1"})
    result = await h.store.update(key, second, ttl=h.lasting, expected={"b": b"0"})
    assert result is WriteResult.OK, "only a change to a field the write touches may conflict"
    loaded = await h.store.load(key)
    assert loaded is not None
    assert dict(loaded.fields) == {"a": b"1", "b": b"1"}
    assert loaded.meta.version == 2


async def check_rename_moves_the_record_and_applies_the_change(h: StoreHarness) -> None:
    old, new, record = h.key(), h.key(), h.record({"a": b"1", "b": b"2"})
    await h.store.create(old, record, ttl=h.lasting)
    change = SessionChange({"b": b"3"})
    assert await h.store.rename(old, new, change, ttl=h.lasting) is WriteResult.OK
    assert await h.store.load(old) is None, "the old key must be gone after rename"
    loaded = await h.store.load(new)
    assert loaded is not None
    assert dict(loaded.fields) == {"a": b"1", "b": b"3"}
    assert loaded.meta.created_at == record.meta.created_at, "rename keeps the creation time"
    assert loaded.meta.version == record.meta.version + 1


async def check_rename_of_missing_key_is_missing_and_creates_nothing(h: StoreHarness) -> None:
    old, new = h.key(), h.key()
    assert await h.store.rename(old, new, SessionChange(), ttl=h.lasting) is WriteResult.MISSING
    assert await h.store.load(new) is None


async def check_rename_onto_existing_key_is_refused(h: StoreHarness) -> None:
    old, new = h.key(), h.key()
    first, second = h.record({"who": b'"old"'}), h.record({"who": b'"new"'})
    await h.store.create(old, first, ttl=h.lasting)
    await h.store.create(new, second, ttl=h.lasting)
    assert await h.store.rename(old, new, SessionChange(), ttl=h.lasting) is WriteResult.EXISTS
    assert_same(await h.store.load(old), first)
    assert_same(await h.store.load(new), second)


async def check_rename_with_a_stale_expectation_is_refused(h: StoreHarness) -> None:
    old, new = h.key(), h.key()
    record = h.record({"user_id": b"42", "cart": b"[]"})
    await h.store.create(old, record, ttl=h.lasting)
    change = SessionChange({"user_id": b"7"})
    result = await h.store.rename(old, new, change, ttl=h.lasting, expected={"user_id": b"1"})
    assert result is WriteResult.CONFLICT
    assert_same(await h.store.load(old), record)
    assert await h.store.load(new) is None
    result = await h.store.rename(old, new, change, ttl=h.lasting, expected={"user_id": b"42"})
    assert result is WriteResult.OK


async def check_delete_removes_and_never_resurrects(h: StoreHarness) -> None:
    key = h.key()
    await h.store.create(key, h.record(), ttl=h.lasting)
    await h.store.delete(key)
    assert await h.store.load(key) is None
    change = SessionChange({"user_id": b"7"})
    assert await h.store.update(key, change, ttl=h.lasting) is WriteResult.MISSING
    assert await h.store.load(key, touch=h.lasting) is None
    await h.store.delete(key)  # deleting what is gone is fine


async def check_keys_are_isolated(h: StoreHarness) -> None:
    one, two = h.key(), h.key()
    await h.store.create(one, h.record({"who": b'"one"'}), ttl=h.lasting)
    await h.store.create(two, h.record({"who": b'"two"'}), ttl=h.lasting)
    await h.store.update(one, SessionChange({"extra": b"1"}), ttl=h.lasting)
    await h.store.delete(one)
    loaded = await h.store.load(two)
    assert loaded is not None
    assert dict(loaded.fields) == {"who": b'"two"'}


async def check_a_key_with_a_dotted_suffix_is_a_key_of_its_own(h: StoreHarness) -> None:
    """Automatic ID rotation keeps a short-lived forward under the session's key plus ``.forward``."""
    key = h.key()
    await h.store.create(key, h.record({"who": b'"session"'}), ttl=h.lasting)
    assert await h.store.load(forward_key(key)) is None
    await h.store.create(forward_key(key), h.record({"who": b'"forward"'}), ttl=h.lasting)
    await h.store.delete(key)
    forward = await h.store.load(forward_key(key))
    assert forward is not None
    assert dict(forward.fields) == {"who": b'"forward"'}
    assert await h.store.load(key) is None


CHECKS: tuple[Check, ...] = (
    check_load_of_unknown_key_is_none_and_creates_nothing,
    check_create_then_load_round_trips,
    check_create_never_overwrites,
    check_update_of_missing_key_is_missing_and_creates_nothing,
    check_update_writes_only_the_given_fields,
    check_update_can_change_expiry_and_persistence,
    check_version_check_refuses_a_stale_writer,
    check_version_check_lets_a_change_to_another_field_through,
    check_rename_moves_the_record_and_applies_the_change,
    check_rename_of_missing_key_is_missing_and_creates_nothing,
    check_rename_onto_existing_key_is_refused,
    check_rename_with_a_stale_expectation_is_refused,
    check_delete_removes_and_never_resurrects,
    *EXPIRY_CHECKS,
    check_keys_are_isolated,
    check_a_key_with_a_dotted_suffix_is_a_key_of_its_own,
    *CONCURRENCY_CHECKS,
)
"""Every check of the store contract, in a stable order: one operation at a time, then the races."""
