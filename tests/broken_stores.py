"""Stores broken on purpose, for proving that the conformance checks catch what they claim to.

:class:`RowStore` keeps whole records in a dict the way the docs' SQLite example keeps rows: every
method reads the row, decides in Python, then writes the whole row. With ``round_trips=False`` it never
awaits, so each method is atomic under asyncio and the store is correct. With ``round_trips=True``
each read and write awaits a checkpoint first, as a network database's round trip does: the same code,
ported to a server without transactions, and broken under concurrency only. The subclasses break
one rule each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import anyio
from anyio.lowlevel import checkpoint

from fastapi_sessions.stores import SessionChange, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores.base import meets
from fastapi_sessions.testing import FakeClock


class RowStore:
    """Whole records in a dict, read then written; ``round_trips``: await before every access."""

    def __init__(self, clock: FakeClock, *, round_trips: bool = False) -> None:
        self.clock = clock
        self.round_trips = round_trips
        self.rows: dict[str, tuple[float, SessionRecord]] = {}
        """Shared by stores made with :meth:`sharing` (several clients of one database)."""

    def sharing(self) -> RowStore:
        """Another client of the same rows, with the same round trips."""
        other = type(self)(self.clock, round_trips=self.round_trips)
        other.rows = self.rows
        return other

    async def _trip(self) -> None:
        if self.round_trips:
            await checkpoint()

    async def _read(self, key: str) -> SessionRecord | None:
        await self._trip()
        row = self.rows.get(key)
        if row is None or row[0] <= self.clock.time():
            return None
        return row[1]

    async def _write(self, key: str, record: SessionRecord, ttl: float) -> None:
        await self._trip()
        self.rows[key] = (min(self.clock.time() + ttl, record.meta.expires_at), record)

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        record = await self._read(key)
        if record is not None and touch is not None:
            await self._write(key, record, touch)
        return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        if await self._read(key) is not None:
            return WriteResult.EXISTS
        await self._write(key, record, ttl)
        return WriteResult.OK

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        record = await self._read(key)
        if record is None:
            return WriteResult.MISSING
        if not meets(record.fields, expected):
            return WriteResult.CONFLICT
        await self._write(key, record.applied(change), ttl)
        return WriteResult.OK

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        record = await self._read(old_key)
        if record is None:
            return WriteResult.MISSING
        if await self._read(new_key) is not None:
            return WriteResult.EXISTS
        if not meets(record.fields, expected):
            return WriteResult.CONFLICT
        await self._write(new_key, record.applied(change), ttl)
        await self.delete(old_key)
        return WriteResult.OK

    async def delete(self, key: str) -> None:
        await self._trip()
        self.rows.pop(key, None)

    async def aclose(self) -> None:
        pass


class ResurrectingStore(RowStore):
    """Broken: an update of a missing record writes the change as a new record."""

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if await self._read(key) is None:
            now = self.clock.time()
            await self._write(key, SessionRecord(dict(change.fields), SessionMeta(now, now + ttl)), ttl)
            return WriteResult.OK
        return await super().update(key, change, ttl=ttl, expected=expected)


class OverwritingStore(RowStore):
    """Broken: a create replaces a live record instead of answering EXISTS."""

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        await self._write(key, record, ttl)
        return WriteResult.OK


class DuplicateKeyStore(RowStore):
    """Broken: a create looks for the key, then inserts, and the insert fails on a key that appeared
    meanwhile (a primary key violation) instead of answering EXISTS."""

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        if await self._read(key) is not None:
            return WriteResult.EXISTS
        await checkpoint()  # the insert's round trip
        if key in self.rows:
            raise RuntimeError(f"duplicate key value violates unique constraint ({key})")
        self.rows[key] = (min(self.clock.time() + ttl, record.meta.expires_at), record)
        return WriteResult.OK


class HangingStore(RowStore):
    """Broken: an update that meets another one in flight waits for it forever (a lock-order
    deadlock, as two transactions that lock the same rows in opposite order can have)."""

    def __init__(self, clock: FakeClock, *, round_trips: bool = False) -> None:
        super().__init__(clock, round_trips=round_trips)
        self.updating = 0

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        self.updating += 1
        await checkpoint()
        if self.updating > 1:
            await anyio.Event().wait()  # never set
        try:
            return await super().update(key, change, ttl=ttl, expected=expected)
        finally:
            self.updating -= 1


class ImmortalStore(RowStore):
    """Broken: records never expire; TTLs and ``expires_at`` are ignored."""

    async def _write(self, key: str, record: SessionRecord, ttl: float) -> None:
        await self._trip()
        self.rows[key] = (math.inf, record)


class HastyStore(RowStore):
    """Broken: a record expires when half its TTL has run out (a TTL in the wrong unit, say)."""

    async def _write(self, key: str, record: SessionRecord, ttl: float) -> None:
        await super()._write(key, record, ttl / 2)


class TouchPastExpiryStore(RowStore):
    """Broken: a touch gives the record the whole touch TTL, past its ``expires_at``."""

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        record = await self._read(key)
        if record is not None and touch is not None:
            self.rows[key] = (self.clock.time() + touch, record)
        return record


class SlowMachineStore(RowStore):
    """Correct, on a machine so busy that every call takes ``delay`` seconds of its clock."""

    def __init__(self, clock: FakeClock, *, delay: float = 0.0) -> None:
        super().__init__(clock)
        self.delay = delay

    async def _trip(self) -> None:
        self.clock.advance(self.delay)
