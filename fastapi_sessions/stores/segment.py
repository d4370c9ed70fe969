"""One segment of ``MemoryStore``: its sessions, and a heap that finds the one closest to expiry."""

from __future__ import annotations

from heapq import heappop, heappush, heapreplace

from .packed import Entry

__all__ = ["Segment"]

# Sessions whose deadline rolled on, queued again one by one before the heap is rebuilt at once: with
# 80,000 sessions in use all touched since they were queued, one pop took 120 ms re-queueing them one
# by one, and 13 to 15 ms with the rebuild.
_REQUEUE_THEN_REBUILD = 1024


class Segment:
    """Sessions of one segment, and a heap that finds the one closest to expiry.

    The heap holds ``(deadline, key)`` items and is exact lazily. Every session of the segment has an
    item no later than its real deadline: a session whose deadline moves later (a rolling touch) keeps
    its old item, one whose deadline moves earlier gets a new one (``moved``). So the first item whose
    deadline is its session's own is the session closest to expiry; an item found early is queued
    again at the real deadline, and items of sessions that left the segment (or have an earlier item)
    are dropped.
    """

    __slots__ = ("entries", "heap")

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.heap: list[tuple[float, str]] = []

    def add(self, key: str, entry: Entry) -> None:
        self.entries[key] = entry
        heappush(self.heap, (entry.deadline, key))
        if len(self.heap) > 2 * len(self.entries) + 1024:  # items of departed sessions piled up
            self._rebuild()

    def _rebuild(self) -> None:
        """One exact item per session (a sorted list is a heap)."""
        self.heap = sorted((entry.deadline, key) for key, entry in self.entries.items())

    def moved(self, key: str, entry: Entry, before: float) -> None:
        """``entry``'s deadline changed from ``before``: queue it anew if it came closer."""
        if entry.deadline < before:
            heappush(self.heap, (entry.deadline, key))

    def pop_closest(self) -> tuple[str, Entry]:
        """Remove and return the session closest to expiry; the segment must hold one."""
        heap, entries = self.heap, self.entries
        requeued = 0
        while True:
            queued, key = heap[0]
            entry = entries.get(key)
            if entry is None or entry.deadline < queued:  # gone, or queued again earlier
                heappop(heap)
            elif entry.deadline == queued:
                heappop(heap)
                del entries[key]
                return key, entry
            elif requeued < _REQUEUE_THEN_REBUILD:  # its deadline rolled on since it was queued
                heapreplace(heap, (entry.deadline, key))
                requeued += 1
            else:  # many rolled on: a sort of them all is faster than queueing each again
                self._rebuild()
                heap = self.heap

    def reap(self, now: float, budget: int, looks: int) -> int:
        """Drop up to ``budget`` expired sessions, looking at ``looks`` items at most; returns the count."""
        heap, entries = self.heap, self.entries
        dropped = requeued = 0
        while heap and dropped < budget and looks > 0 and heap[0][0] <= now:
            looks -= 1
            key = heap[0][1]
            entry = entries.get(key)
            if entry is not None and entry.deadline <= now:
                del entries[key]
                dropped += 1
            if entry is None or entry.deadline <= now:
                heappop(heap)
            elif requeued < _REQUEUE_THEN_REBUILD:  # touched since it was queued: queue it again
                heapreplace(heap, (entry.deadline, key))
                requeued += 1
            else:
                self._rebuild()
                heap = self.heap
        return dropped
