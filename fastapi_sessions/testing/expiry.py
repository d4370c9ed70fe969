"""The store contract in time: records expire after their TTL; a touch or an update gives them more,
a touch never past ``expires_at``.

These are the only checks that use short TTLs, and the only ones that need time to pass. On a fake
clock time moves only when a check says so. On real time a busy machine can stretch any step, so the
checks never trust a sleep to have been short enough:

* A record that must still be alive is looked at by a load that the check times on the harness'
  clock, from before the store call that started the TTL. Only if that load ended before the TTL
  could have run out does the check assert that it found the record. If it ended later, the attempt
  proves nothing either way, and the check starts again on a fresh key with every span doubled (up to
  32 times the harness' ``unit``): a slow machine makes the check pass more slowly, never fail.
* A record that must be gone is waited for: loaded again and again until it loads as None. Every one
  of those loads starts after the record's end, so a record found there breaks the rule; the check
  lets a store be late by up to ``_LATE`` seconds of its time (or 25 units) before it says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..stores.base import SessionChange, WriteResult
from .harness import StoreHarness, assert_same

__all__ = ["EXPIRY_CHECKS"]

_SCALES = 6
"""Attempts a check makes, at 1, 2, 4, ... 32 times the harness' unit, before it calls the store too
slow to check at all (a call that takes longer than 8 units of 32 times the unit is a hang)."""
_LATE = 30.0
"""Seconds (of the store's time) a record may outlive its end before a check calls it immortal;
at least 25 units. Only a broken store (or a hung one) ever reaches it."""
_POLL = 0.25
"""Units between two loads of a record that must be gone."""


class _TooSlow(Exception):
    """A step meant to land inside a TTL landed after it: this attempt proves nothing."""


class _Since:
    """A moment on the harness' clock, taken before a store call starts a TTL."""

    def __init__(self, h: StoreHarness) -> None:
        self.h, self.start = h, h.now()

    def within(self, span: float) -> None:
        """Whatever ran since this moment ran before a TTL of ``span`` started then ran out; else
        ``_TooSlow``."""
        if self.h.now() - self.start >= span:
            raise _TooSlow


async def _scaled(h: StoreHarness, attempt: Callable[[float], Awaitable[None]]) -> None:
    """Run ``attempt(unit)``, with the harness' unit and then doubled ones while it is too slow."""
    for scale in (2**step for step in range(_SCALES)):
        try:
            await attempt(scale * h.unit)
            return
        except _TooSlow:
            pass
    raise AssertionError(
        f"every attempt was too slow to tell, even with {scale * h.unit:g} s a unit: each of a few "
        "store calls takes longer than several units. The store hangs, or `now` and `wait` of the "
        "harness are not the store's time."
    )


async def _gone(h: StoreHarness, key: str, what: str, *, late: float | None = None) -> None:
    """Load ``key`` until it loads as None; an ``AssertionError`` if it is still there ``late``
    seconds (default ``_LATE``, at least 25 units) after the first load. The caller waited until
    the record's end first."""
    late = max(_LATE, 25 * h.unit) if late is None else late
    first = h.now()
    while await h.store.load(key) is not None:
        if h.now() - first >= late:
            raise AssertionError(
                f"a record is still there {h.now() - first:.1f} s after it should have been gone "
                f"(at the end of {what}). An expired record must load as None: compare the expiry "
                "time on every read, or let the server expire the key."
            )
        await h.wait(_POLL * h.unit)


async def check_records_expire_after_their_ttl(h: StoreHarness) -> None:
    async def attempt(unit: float) -> None:
        key, created = h.key(), _Since(h)
        await h.store.create(key, h.record(), ttl=2 * unit)
        await h.wait(1 * unit)
        loaded = await h.store.load(key)
        created.within(2 * unit)
        assert loaded is not None, "a record must live until its TTL runs out"
        await h.wait(1.5 * unit)
        await _gone(h, key, "its TTL")
        change = SessionChange({"a": b"1"})
        assert await h.store.update(key, change, ttl=h.lasting) is WriteResult.MISSING
        assert await h.store.load(key) is None, "an update of an expired record must not bring it back"

    await _scaled(h, attempt)


async def check_touch_extends_the_ttl_without_rewriting(h: StoreHarness) -> None:
    async def attempt(unit: float) -> None:
        key, record, created = h.key(), h.record(), _Since(h)
        await h.store.create(key, record, ttl=2 * unit)
        await h.wait(1 * unit)
        touched = _Since(h)
        loaded = await h.store.load(key, touch=2 * unit)
        created.within(2 * unit)
        assert_same(loaded, record)
        # 2.5 units after the create returned (the sleeps see to that): alive only because of the
        # touch, if the load ends within its TTL.
        await h.wait(1.5 * unit)
        loaded = await h.store.load(key)
        touched.within(2 * unit)
        assert_same(loaded, record)
        await h.wait(1.5 * unit)
        await _gone(h, key, "the TTL of a touch")

    await _scaled(h, attempt)


async def check_touch_never_goes_past_expires_at(h: StoreHarness) -> None:
    async def attempt(unit: float) -> None:
        key, created = h.key(), _Since(h)
        await h.store.create(key, h.record(life=2 * unit / h.unit), ttl=2 * unit)
        loaded = await h.store.load(key, touch=50 * unit)
        created.within(2 * unit)
        assert loaded is not None
        await h.wait(2.5 * unit)
        # Gone long before the touch's 50 units would have ended.
        await _gone(h, key, "its expires_at, which no touch may extend", late=25 * unit)

    await _scaled(h, attempt)


async def check_update_resets_the_ttl(h: StoreHarness) -> None:
    async def attempt(unit: float) -> None:
        key, created = h.key(), _Since(h)
        await h.store.create(key, h.record(), ttl=2 * unit)
        await h.wait(1 * unit)
        updated = _Since(h)
        result = await h.store.update(key, SessionChange({"a": b"1"}), ttl=2 * unit)
        created.within(2 * unit)
        assert result is WriteResult.OK
        await h.wait(1.5 * unit)  # past the create's TTL: alive only because of the update
        loaded = await h.store.load(key)
        updated.within(2 * unit)
        assert loaded is not None, "an update must give the record its TTL anew"
        await h.wait(1.5 * unit)
        await _gone(h, key, "the TTL of an update")

    await _scaled(h, attempt)


EXPIRY_CHECKS = (
    check_records_expire_after_their_ttl,
    check_touch_extends_the_ttl_without_rewriting,
    check_touch_never_goes_past_expires_at,
    check_update_resets_the_ttl,
)
"""The checks that let time pass, in a stable order (all are in ``CHECKS`` too)."""
