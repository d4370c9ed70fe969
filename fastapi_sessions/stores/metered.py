"""A store wrapper that times each call and counts failures and rewrites, for ``SESSION_METRICS``.

The engine wraps its store in it when metrics are on, so every door and every caller (rotation
forwards too) is measured the same way. It imports nothing of OpenTelemetry: it is handed the
histogram's ``record`` and the counting functions (``fastapi_sessions.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any, Literal, Protocol

from .base import SessionChange, SessionRecord, SessionStore, WriteResult

__all__ = ["OPERATION", "DropReport", "MeteredStore", "ReportsDrops", "unwrapped"]

DropReport = Callable[[Literal["capacity", "expired"], int], None]
"""Told how many sessions a store dropped on its own: evicted when full (``capacity``), or
reclaimed once expired (``expired``)."""
Record = Callable[[float, Mapping[str, str]], None]
Failed = Callable[[str, BaseException, float], None]
Wrote = Callable[[], None]

OPERATION = "fastapi_sessions.operation"
"""The attribute naming a store call: ``load``, ``create``, ``update``, ``rename`` or ``delete``."""
_LOAD = {OPERATION: "load"}
_CREATE = {OPERATION: "create"}
_UPDATE = {OPERATION: "update"}
_RENAME = {OPERATION: "rename"}
_DELETE = {OPERATION: "delete"}


class ReportsDrops(Protocol):
    """A store that says when it drops sessions on its own (MemoryStore, PostgresStore's purge)."""

    on_dropped: DropReport | None


class MeteredStore:
    """``inner`` with each call's duration recorded (by operation) and each failure counted (by
    operation and error type); an ``update`` or ``rename`` that answers ``OK`` is a rewrite.

    Anything else (``index_add``, ``clear``...) is ``inner``'s own, untimed.
    """

    __slots__ = ("_failed", "_record", "_wrote", "inner")

    def __init__(
        self, inner: SessionStore, record: Record, failed: Failed, wrote: Callable[[], None]
    ) -> None:
        self.inner = inner
        self._record = record
        self._failed = failed
        self._wrote = wrote

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        start = perf_counter()
        try:
            record = await self.inner.load(key, touch=touch)
        except Exception as exc:
            self._failed("load", exc, perf_counter() - start)
            raise
        self._record(perf_counter() - start, _LOAD)
        return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        start = perf_counter()
        try:
            result = await self.inner.create(key, record, ttl=ttl)
        except Exception as exc:
            self._failed("create", exc, perf_counter() - start)
            raise
        self._record(perf_counter() - start, _CREATE)
        return result

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        # expected= is passed on only when given: a store without it works unless version checks are on.
        checks = {} if expected is None else {"expected": expected}
        start = perf_counter()
        try:
            result = await self.inner.update(key, change, ttl=ttl, **checks)
        except Exception as exc:
            self._failed("update", exc, perf_counter() - start)
            raise
        self._record(perf_counter() - start, _UPDATE)
        if result is WriteResult.OK:
            self._wrote()
        return result

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        checks = {} if expected is None else {"expected": expected}
        start = perf_counter()
        try:
            result = await self.inner.rename(old_key, new_key, change, ttl=ttl, **checks)
        except Exception as exc:
            self._failed("rename", exc, perf_counter() - start)
            raise
        self._record(perf_counter() - start, _RENAME)
        if result is WriteResult.OK:
            self._wrote()
        return result

    async def delete(self, key: str) -> None:
        start = perf_counter()
        try:
            await self.inner.delete(key)
        except Exception as exc:
            self._failed("delete", exc, perf_counter() - start)
            raise
        self._record(perf_counter() - start, _DELETE)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"MeteredStore({self.inner!r})"


def unwrapped(store: SessionStore) -> SessionStore:
    """The store a ``MeteredStore`` times, or ``store`` itself: the one to name in messages."""
    return store.inner if isinstance(store, MeteredStore) else store
