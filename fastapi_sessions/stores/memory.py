"""An in-process store: the default for development, demos and tests.

Single-process only: each worker process has its own sessions, and they vanish on restart. Use the
Redis store as soon as the app runs more than one process.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from ..clock import Clock, SystemClock
from ..exceptions import SessionConfigError
from .base import SessionChange, SessionRecord, WriteResult, meets
from .packed import Entry

__all__ = ["MemoryStore"]

DEFAULT_MAX_ENTRIES = 100_000
# Expired entries reclaimed per write: bounded work per request, never a scan of the whole store.
_REAP_PER_WRITE = 8


class MemoryStore:
    """Sessions in a dict, with TTLs on a monotonic clock and at most ``max_entries`` of them.

    When full, the session closest to expiry is evicted. Expired sessions are reclaimed a few at a time
    on every write (a heap ordered by deadline), so no request pays for a scan of the whole store.
    All operations finish without awaiting, so each one is atomic under asyncio.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock | None = None) -> None:
        if max_entries <= 0:
            raise SessionConfigError(f"MemoryStore max_entries must be positive, not {max_entries}.")
        self.max_entries = max_entries
        self._clock: Clock = clock or SystemClock()
        self._data: dict[str, Entry] = {}
        self._heap: list[tuple[float, str]] = []

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> MemoryStore:
        """Build from ``memory://`` or ``memory://?max_entries=N``."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        unknown = set(query) - {"max_entries"}
        if parts.scheme != "memory" or parts.netloc or parts.path or unknown:
            raise SessionConfigError(
                f"Not a memory store URL: {url!r}. Use 'memory://' or 'memory://?max_entries=N'."
            )
        try:
            max_entries = int(query.get("max_entries", [DEFAULT_MAX_ENTRIES])[-1])
        except ValueError as exc:
            raise SessionConfigError(f"max_entries in {url!r} must be an integer.") from exc
        return cls(max_entries=max_entries, clock=clock)

    def __len__(self) -> int:
        """Sessions held, expired ones not yet reclaimed included."""
        return len(self._data)

    def _live(self, key: str, now: float | None = None) -> Entry | None:
        """The entry under ``key`` unless it expired (then it is dropped); ``now``: the monotonic clock."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.deadline <= (self._clock.monotonic() if now is None else now):
            del self._data[key]
            return None
        return entry

    def _deadline(self, ttl: float, expires_at: float, now: float | None = None) -> float:
        """When an entry written now with ``ttl`` dies: never past the record's own expiry.

        ``now`` is the monotonic clock, when the caller has read it already.
        """
        left = expires_at - self._clock.time()
        if now is None:
            now = self._clock.monotonic()
        return now + (ttl if ttl < left else left if left > 0.0 else 0.0)

    def _reap(self, budget: int) -> None:
        """Reclaim up to ``budget`` expired entries from the front of the deadline heap."""
        now = self._clock.monotonic()
        heap, data = self._heap, self._data
        while heap and budget > 0 and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = data.get(key)
            if entry is None:
                continue
            if entry.deadline <= now:
                del data[key]
                budget -= 1
            else:  # touched since it was queued: queue it again at its real deadline
                heapq.heappush(heap, (entry.deadline, key))
        if len(heap) > 2 * len(data) + 1024:  # entries of deleted keys piled up
            self._heap = [(entry.deadline, key) for key, entry in data.items()]
            heapq.heapify(self._heap)

    def _evict_one(self) -> None:
        while self._heap:
            _, key = heapq.heappop(self._heap)
            entry = self._data.get(key)
            if entry is None:
                continue
            del self._data[key]
            return
        # The heap lost track (cannot happen unless the dict was edited directly).
        self._data.pop(next(iter(self._data)))  # pragma: no cover

    def _insert(self, key: str, entry: Entry) -> None:
        self._reap(_REAP_PER_WRITE)
        if len(self._data) >= self.max_entries:
            self._reap(len(self._data))
            while len(self._data) >= self.max_entries:
                self._evict_one()
        self._data[key] = entry
        heapq.heappush(self._heap, (entry.deadline, key))

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        now = self._clock.monotonic()  # one clock read for both: this runs on every request
        entry = self._live(key, now)
        if entry is None:
            return None
        record = entry.record()
        if touch is not None:  # rolling expiry
            entry.deadline = self._deadline(touch, record.meta.expires_at, now)
        return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        if self._live(key) is not None:
            return WriteResult.EXISTS
        self._insert(key, Entry(self._deadline(ttl, record.meta.expires_at), record))
        return WriteResult.OK

    def _apply(
        self,
        entry: Entry,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None] | None,
    ) -> WriteResult:
        if expected and not meets(entry.record().fields, expected):
            return WriteResult.CONFLICT
        entry.deadline = self._deadline(ttl, entry.apply(change, entry.meta()).expires_at)
        return WriteResult.OK

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        entry = self._live(key)
        if entry is None:
            return WriteResult.MISSING
        # A deadline moved earlier is still honoured by _live(); the heap catches up when it surfaces.
        return self._apply(entry, change, ttl, expected)

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        entry = self._live(old_key)
        if entry is None:
            return WriteResult.MISSING
        if self._live(new_key) is not None:
            return WriteResult.EXISTS
        if self._apply(entry, change, ttl, expected) is not WriteResult.OK:
            return WriteResult.CONFLICT
        del self._data[old_key]
        self._insert(new_key, entry)
        return WriteResult.OK

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def clear(self) -> None:
        """Remove every session of this store at once: everyone is logged out."""
        self._data.clear()
        self._heap.clear()

    async def aclose(self) -> None:
        """Nothing to release: the sessions stay until the process ends, so a test client or a
        server that stops and starts the app again in one process (sanic-testing does, per
        request) finds them still there. ``clear()`` drops them."""
