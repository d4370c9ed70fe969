"""Per-key locks for one process: operations on one key take turns, operations on others run freely."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

__all__ = ["KeyLocks"]


class _Entry:
    """A key's lock and how many tasks hold it or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.users = 0


class KeyLocks:
    """An ``anyio.Lock`` per key, made when a key is first wanted and dropped when no task holds or
    waits for it: the table holds the keys in use right now, so it cannot grow without bound.

    They order tasks of one process only; other processes writing the same backend are not held back.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Keys held or waited for right now."""
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Hold the lock of every key in ``keys`` for the ``async with`` block.

        Locks are taken in sorted order, so two tasks that want the same two keys (a rename each way)
        cannot each hold one and wait for the other.
        """
        ordered = sorted(set(keys))
        entries: list[_Entry] = []
        for key in ordered:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.users += 1
            entries.append(entry)
        held = 0
        try:
            for entry in entries:
                await entry.lock.acquire()
                held += 1
            yield
        finally:
            for entry in entries[:held]:
                entry.lock.release()
            for key, entry in zip(ordered, entries, strict=True):
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]
