"""An in-process store: the default for development, demos and tests.

Single-process only: each worker process has its own sessions, and they vanish on restart. Use the
Redis store as soon as the app runs more than one process.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from heapq import heappush
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..clock import Clock, SystemClock
from ..exceptions import SessionConfigError
from ..logs import log
from . import workers
from .base import (
    EncodedFields,
    SessionChange,
    SessionRecord,
    WriteResult,
    json_value_problem,
    meets,
)
from .index import IndexedSession
from .packed import Entry
from .segment import Segment

if TYPE_CHECKING:
    from .metered import DropReport

__all__ = ["MemoryStore"]

DEFAULT_MAX_ENTRIES = 100_000
# Expired entries reclaimed per write: bounded work per request, never a scan of the whole store.
_REAP_PER_WRITE = 8
# At most this many heap items looked at per write while reclaiming (stale or left-over ones included).
_REAP_LOOKS_PER_WRITE = 4 * _REAP_PER_WRITE
EVICTION_REPORT_INTERVAL = 60.0
"""Seconds (on the store's monotonic clock) between two warnings about evictions."""


def _sessions(count: int) -> str:
    return f"{count} session" if count == 1 else f"{count} sessions"


def _check(fields: Mapping[str, bytes]) -> None:
    """Refuse a field whose value is not exactly one JSON value, before anything is written.

    A read hands the stored document over as it is, so a value must be checked once, here: joined
    into the document it would otherwise set other fields than its own. The engine only ever writes
    single values; this is for other callers. (A parse of each written value: about 0.1 us for a
    small one, 0.5 us per KB.) Values the engine encoded (``EncodedFields``) are one JSON value each.
    """
    if type(fields) is EncodedFields:
        return
    for name, value in fields.items():
        problem = json_value_problem(value)
        if problem:
            raise ValueError(
                f"MemoryStore keeps each session field as one JSON value; {name!r} is not one "
                f"({problem}). Nothing was written."
            )


class MemoryStore:
    """Sessions in memory, with TTLs on a monotonic clock and at most ``max_entries`` of them.

    Eviction keeps the sessions in use. Sessions live in two segments: a new session starts in
    *probation*, and the first ``load`` of it (the user came back) moves it to the *protected*
    segment, which holds at most four fifths of ``max_entries``. When a load would overfill the
    protected segment, the protected session closest to expiry moves back to probation. When the store
    is full, a new session evicts the probationary session closest to expiry. "Closest to expiry" is
    the session's current deadline: a load with ``touch`` (an idle timeout) moves it later, a write
    that brings ``expires_at`` closer moves it earlier. So a flood of sessions that never come back
    evicts only each other, as long as the sessions in use fit in the protected four fifths.

    A read is one dict lookup (a session's first return also queues it in the protected segment, a
    heap push, once); a write is O(log n), amortized. Expired sessions are reclaimed a few at a time
    on every write (a heap per segment, ordered by deadline), so no request pays for a scan of the
    whole store. Evictions are logged as a WARNING on
    the ``fastapi_sessions`` logger, at most once per ``EVICTION_REPORT_INTERVAL`` seconds of the
    store's clock. All operations finish without awaiting, so each one is atomic under asyncio.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Clock | None = None) -> None:
        if max_entries <= 0:
            raise SessionConfigError(f"MemoryStore max_entries must be positive, not {max_entries}.")
        self.max_entries = max_entries
        self.protected_max = max_entries * 4 // 5
        """How many sessions in use the protected segment holds at most."""
        self._clock: Clock = clock or SystemClock()
        self._probation = Segment()
        self._protected = Segment()
        self._evicted = 0  # since the last report
        self._demoted = 0
        self._reported_at: float | None = None
        self._users: dict[str, dict[str, float]] = {}
        """Each user's logged-in session keys, with the time after which each is surely dead."""
        self.on_dropped: DropReport | None = None
        """Told how many sessions were evicted (``capacity``) or reclaimed once expired (``expired``):
        how SESSION_METRICS counts them. None (the default) costs nothing."""

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
        return len(self._probation.entries) + len(self._protected.entries)

    @property
    def _data(self) -> Mapping[str, Entry]:
        """Every session held, both segments, read only: how tests look into the store."""
        return MappingProxyType(ChainMap(self._protected.entries, self._probation.entries))

    def _find(self, key: str) -> tuple[Segment, Entry] | None:
        """The segment and entry under ``key`` unless it expired (then it is dropped)."""
        now = self._clock.monotonic()
        for segment in (self._protected, self._probation):
            entry = segment.entries.get(key)
            if entry is not None:
                if entry.deadline <= now:
                    del segment.entries[key]
                    self._expired_found()
                    return None
                return segment, entry
        return None

    def _deadline(self, ttl: float, expires_at: float, now: float | None = None) -> float:
        """When an entry written now with ``ttl`` dies: never past the record's own expiry.

        ``now`` is the monotonic clock, when the caller has read it already.
        """
        left = expires_at - self._clock.time()
        if now is None:
            now = self._clock.monotonic()
        return now + (ttl if ttl < left else left if left > 0.0 else 0.0)

    def _reap(self, budget: int, looks: int) -> int:
        """Reclaim up to ``budget`` expired sessions, looking at ``looks`` heap items per segment;
        how many went."""
        now = self._clock.monotonic()
        reaped = self._probation.reap(now, budget, looks)
        reaped += self._protected.reap(now, budget - reaped, looks)
        if reaped and self.on_dropped is not None:
            self.on_dropped("expired", reaped)
        return reaped

    def _expired_found(self) -> None:
        """An expired session met by a read or a write, and dropped: reclaimed like a reaped one."""
        if self.on_dropped is not None:
            self.on_dropped("expired", 1)

    def _insert(self, key: str, entry: Entry, segment: Segment) -> None:
        self._reap(_REAP_PER_WRITE, _REAP_LOOKS_PER_WRITE)
        if len(self) >= self.max_entries:  # every expired session goes before a live one is evicted
            self._reap(len(self), len(self._probation.heap) + len(self._protected.heap))
            if len(self) >= self.max_entries:
                self._evict(len(self) - self.max_entries + 1)
        segment.add(key, entry)

    def _evict(self, count: int) -> None:
        """Evict ``count`` probationary sessions, the closest to expiry first, and say so.

        Never from the protected segment: it holds fewer than ``max_entries`` sessions, so a full
        store has probationary ones.
        """
        for _ in range(count):
            self._probation.pop_closest()
        self._evicted += count
        if self.on_dropped is not None:
            self.on_dropped("capacity", count)
        now = self._clock.monotonic()
        since = self._reported_at
        if since is not None and now - since < EVICTION_REPORT_INTERVAL:
            return
        window = "" if since is None else f" in the last {now - since:.0f} s"
        demoted = ""
        if self._demoted:
            demoted = (
                f"; {_sessions(self._demoted)} in use moved back to probation, as more than "
                f"{self.protected_max} are in use"
            )
        log.warning(
            "MemoryStore is full (max_entries=%d): %s evicted%s, new ones that never came back first "
            "(%s in use kept%s). If this is real traffic, raise max_entries "
            "(SESSION_STORE_URL=memory://?max_entries=N) or use Redis (SESSION_STORE_URL=redis://...).",
            self.max_entries,
            _sessions(self._evicted),
            window,
            _sessions(len(self._protected.entries)),
            demoted,
        )
        self._reported_at = now
        self._evicted = self._demoted = 0

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        now = self._clock.monotonic()  # one clock read for both: this runs on every request
        entry = self._protected.entries.get(key)
        if entry is None:
            return self._load_new(key, touch, now)
        if entry.deadline <= now:
            del self._protected.entries[key]
            self._expired_found()
            return None
        record = entry.record()
        if touch is not None:  # rolling expiry
            before = entry.deadline
            entry.deadline = deadline = self._deadline(touch, record.meta.expires_at, now)
            if deadline < before:  # rare (a touch shorter than the write's ttl): queue it closer
                heappush(self._protected.heap, (deadline, key))
        return record

    def _load_new(self, key: str, touch: float | None, now: float) -> SessionRecord | None:
        """A load of a probationary session: it came back, so it moves to the protected segment."""
        entry = self._probation.entries.pop(key, None)
        if entry is None:
            return None
        if entry.deadline <= now:
            self._expired_found()
            return None
        record = entry.record()
        if touch is not None:
            entry.deadline = self._deadline(touch, record.meta.expires_at, now)
        protected = self._protected
        protected.add(key, entry)
        if len(protected.entries) > self.protected_max:
            self._probation.add(*protected.pop_closest())
            self._demoted += 1
        return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        _check(record.fields)
        if not workers.checked:  # the first session this process stores: is it one of several?
            workers.check()
        if self._find(key) is not None:
            return WriteResult.EXISTS
        self._insert(key, Entry(self._deadline(ttl, record.meta.expires_at), record), self._probation)
        return WriteResult.OK

    def _apply(
        self,
        segment: Segment,
        key: str,
        entry: Entry,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None] | None,
    ) -> WriteResult:
        if expected and not meets(entry.record().fields, expected):
            return WriteResult.CONFLICT
        before = entry.deadline
        entry.deadline = self._deadline(ttl, entry.apply(change, entry.meta()).expires_at)
        segment.moved(key, entry, before)
        return WriteResult.OK

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        _check(change.fields)
        found = self._find(key)
        if found is None:
            return WriteResult.MISSING
        segment, entry = found
        return self._apply(segment, key, entry, change, ttl, expected)

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        _check(change.fields)
        found = self._find(old_key)
        if found is None:
            return WriteResult.MISSING
        if self._find(new_key) is not None:
            return WriteResult.EXISTS
        segment, entry = found
        if self._apply(segment, old_key, entry, change, ttl, expected) is not WriteResult.OK:
            return WriteResult.CONFLICT
        del segment.entries[old_key]
        self._insert(new_key, entry, segment)  # it stays in its segment
        return WriteResult.OK

    async def delete(self, key: str) -> None:
        self._probation.entries.pop(key, None)
        self._protected.entries.pop(key, None)

    async def clear(self) -> None:
        """Remove every session of this store at once: everyone is logged out."""
        self._probation = Segment()
        self._protected = Segment()
        self._users = {}

    # -- operations (``PurgingStore``, ``StatsStore``) ------------------------------------------

    async def purge_expired(self) -> int:
        """Reclaim every expired session now, and the user index entries past their end; how many
        sessions went. Writes reclaim a few each anyway: this is for a store that sees few writes."""
        purged = self._reap(len(self), len(self._probation.heap) + len(self._protected.heap))
        now = self._clock.time()
        for user in list(self._users):
            if not self._user_index(user, now):
                del self._users[user]
        return purged

    async def stats(self) -> dict[str, int | float | str]:
        """How many sessions this process holds (live, in use, expired but not yet reclaimed) against
        ``max_entries``, and how many users have an index; a scan of the store, for operators only."""
        now = self._clock.monotonic()
        live = sum(
            entry.deadline > now
            for segment in (self._probation, self._protected)
            for entry in segment.entries.values()
        )
        return {
            "store": "memory (this process only)",
            "sessions": live,
            "in_use": len(self._protected.entries),
            "expired_unreclaimed": len(self) - live,
            "max_entries": self.max_entries,
            "indexed_users": len(self._users),
        }

    # -- the user index (``UserIndexStore``) ---------------------------------------------------

    def _user_index(self, user: str, now: float) -> dict[str, float]:
        """``user``'s entries, those past their ``until`` dropped (the index is pruned when touched)."""
        entries = self._users.get(user, {})
        for key in [key for key, until in entries.items() if until <= now]:
            del entries[key]
        return entries

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        entries = self._user_index(user, now)
        entries[key] = until
        self._users.pop(user, None)
        self._users[user] = entries  # last in order: the users least recently logged in come first
        # One more user pruned per login, the one whose index was written longest ago: the index of a
        # user who never comes back goes too, without a scan of them all.
        oldest = next(iter(self._users))
        if oldest != user and not self._user_index(oldest, now):
            del self._users[oldest]

    async def index_remove(self, user: str, key: str) -> None:
        entries = self._users.get(user)
        if entries is not None:
            entries.pop(key, None)
            if not entries:
                del self._users[user]

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:
        entries = self._user_index(user, now)
        if not entries:
            self._users.pop(user, None)
        listed = []
        for key in entries:
            found = self._find(key)
            if found is not None:
                entry = found[1]
                ttl_ends = now + (entry.deadline - self._clock.monotonic())
                listed.append(IndexedSession(key, entry.record(), ttl_ends))
        return listed

    async def aclose(self) -> None:
        """Nothing to release: the sessions stay until the process ends, so a test client or a
        server that stops and starts the app again in one process (sanic-testing does, per
        request) finds them still there. ``clear()`` drops them."""
