"""A store wrapper for tests: it records every call, and can be made to fail like a store that is down."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ..stores.base import SessionChange, SessionRecord, SessionStore, WriteResult

__all__ = ["RecordingStore"]

WRITES = ("create", "update", "rename", "delete")


class RecordingStore:
    """Wraps any store: forwards the six methods, counts them and notes the keys they touch.

    Assert "this route never touched the store" with ``store.calls == Counter()``, or "a read costs
    one load" with ``store.calls["load"] == 1``. Put method names in ``failing`` to make them raise
    ``ConnectionError`` (an outage) instead of reaching the wrapped store.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.keys: list[tuple[str, str]] = []
        self.failing: set[str] = set()

    def writes(self) -> int:
        """How many create/update/rename/delete calls were made."""
        return sum(self.calls[name] for name in WRITES)

    def reset(self) -> None:
        """Forget the calls made so far."""
        self.calls.clear()
        self.keys.clear()

    def _enter(self, method: str, key: str = "") -> None:
        self.calls[method] += 1
        self.keys.append((method, key))
        if method in self.failing:
            raise ConnectionError(f"session store is down ({method}, injected by RecordingStore)")

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        self._enter("load", key)
        return await self.inner.load(key, touch=touch)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        self._enter("create", key)
        return await self.inner.create(key, record, ttl=ttl)

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        self._enter("update", key)
        if expected is None:  # a store written before expected= existed still works without it
            return await self.inner.update(key, change, ttl=ttl)
        return await self.inner.update(key, change, ttl=ttl, expected=expected)

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        self._enter("rename", old_key)
        if expected is None:
            return await self.inner.rename(old_key, new_key, change, ttl=ttl)
        return await self.inner.rename(old_key, new_key, change, ttl=ttl, expected=expected)

    async def delete(self, key: str) -> None:
        self._enter("delete", key)
        await self.inner.delete(key)

    async def aclose(self) -> None:
        self._enter("aclose")
        await self.inner.aclose()
