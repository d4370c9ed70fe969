"""``BackendStore``: the full store protocol on top of a four-method ``Backend``, and ``as_store``.

A backend moves whole records, so every change is a read, a change in memory and a write of the whole
record. A lock per key makes each of those atomic among the requests of this process; across worker
processes nothing can, which is the price of a simple backend (see "Custom stores" in the docs).
Expiry is decided here, from the deadline stored in each record: a backend's own TTL comes in whole
seconds and may run late, so a record past its stored deadline is absent whatever the backend returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..clock import Clock, SystemClock
from ..stores.base import SessionChange, SessionRecord, SessionStore, WriteResult, meets
from .base import Backend, from_data, to_data
from .locks import KeyLocks

__all__ = ["BackendStore", "as_store"]


class BackendStore:
    """A ``SessionStore`` that keeps its records in a ``Backend``.

    Every failure of the backend propagates (the manager answers 503); a ``read`` result without the
    documented shape raises ``CorruptRecordError`` (the manager starts a new session and deletes it).
    """

    def __init__(self, backend: Backend, *, clock: Clock | None = None) -> None:
        self.backend = backend
        """The wrapped backend."""
        self._clock: Clock = clock or SystemClock()
        self._locks = KeyLocks()

    def __repr__(self) -> str:
        return f"BackendStore({self.backend!r})"

    async def _live(self, key: str, now: float) -> SessionRecord | None:
        """The record under ``key`` unless there is none or it is past its deadline or its expiry."""
        data = await self.backend.read(key)
        if data is None:
            return None
        record, deadline = from_data(data)
        if deadline <= now or record.meta.expires_at <= now:
            return None
        return record

    async def _write(self, key: str, record: SessionRecord, ttl: float, now: float) -> None:
        """Write ``record`` to live ``ttl`` seconds from ``now``, never past its ``expires_at``."""
        deadline = min(now + ttl, record.meta.expires_at)
        # The backend's TTL is a clean-up bound, rounded up: the deadline inside the record decides.
        await self.backend.write(key, to_data(record, deadline), max(math.ceil(deadline - now), 1))

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        """The record under ``key``; with ``touch``, rewritten to live ``touch`` more seconds.

        A backend cannot move a TTL without rewriting the record, so a touch costs one write (same
        data, same version, a new deadline). A plain load is one read and takes no lock.
        """
        if touch is None:
            return await self._live(key, self._clock.time())
        async with self._locks.hold(key):
            now = self._clock.time()
            record = await self._live(key, now)
            if record is not None:
                await self._write(key, record, touch, now)
            return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        async with self._locks.hold(key):
            now = self._clock.time()
            if await self._live(key, now) is not None:
                return WriteResult.EXISTS
            await self._write(key, record, ttl, now)
            return WriteResult.OK

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        async with self._locks.hold(key):
            now = self._clock.time()
            record = await self._live(key, now)
            if record is None:
                return WriteResult.MISSING
            if not meets(record.fields, expected):
                return WriteResult.CONFLICT
            await self._write(key, record.applied(change), ttl, now)
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
        """Write the record under ``new_key``, then destroy ``old_key``.

        Should the destroy fail, both keys hold the session until the old one's TTL ends; the request
        fails (503), and no session is ever lost.
        """
        async with self._locks.hold(old_key, new_key):
            now = self._clock.time()
            record = await self._live(old_key, now)
            if record is None:
                return WriteResult.MISSING
            if await self._live(new_key, now) is not None:
                return WriteResult.EXISTS
            if not meets(record.fields, expected):
                return WriteResult.CONFLICT
            await self._write(new_key, record.applied(change), ttl, now)
            await self.backend.destroy(old_key)
            return WriteResult.OK

    async def delete(self, key: str) -> None:
        # Under the lock: an update in flight (read, then write) must not bring the record back.
        async with self._locks.hold(key):
            await self.backend.destroy(key)

    async def clear(self) -> None:
        """Remove every session of the backend (its ``clear``)."""
        await self.backend.clear()

    async def aclose(self) -> None:
        await self.backend.aclose()


def as_store(store: SessionStore | Backend, *, clock: Clock | None = None) -> SessionStore:
    """``store`` as a ``SessionStore``: a ``Backend`` wrapped in a ``BackendStore``, any other
    store as it is.

    Args:
        store: A store, or a backend to wrap.
        clock: The clock that decides when records of a wrapped backend expire: pass the manager's.
    """
    if isinstance(store, Backend):
        return BackendStore(store, clock=clock)
    return store
