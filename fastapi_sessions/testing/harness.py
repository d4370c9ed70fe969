"""The store under test as the conformance checks see it: a ``StoreHarness``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..signing import new_session_id, store_key
from ..stores.base import SessionMeta, SessionRecord, SessionStore, json_document

__all__ = ["Check", "StoreHarness"]

_LASTING_UNITS = 1000.0
_LASTING_FLOOR = 600.0


@dataclass
class StoreHarness:
    """A store under test, the time it lives in, and how hard the concurrency checks race it."""

    store: SessionStore
    now: Callable[[], float]
    """Wall-clock seconds, as the store sees them."""
    wait: Callable[[float], Awaitable[None]]
    """Let this many seconds pass for the store (advance a fake clock, or sleep)."""
    unit: float = 1.0
    """Seconds used as the TTL scale of the checks of expiry; small for stores on real time. Only
    those checks use short TTLs, and they never fail for time passing slowly: on a busy machine
    they try again with longer spans (see ``fastapi_sessions.testing.expiry``)."""
    connect: Callable[[], Awaitable[SessionStore]] | None = None
    """Open another store on the same storage, as a second worker process would (a new client, a new
    connection pool). The concurrency checks then spread their writers over it and ``store``, and
    close it when done: only so do they catch a store that is atomic within one client but not across
    clients (a per-key lock in the process, a pool of one connection). None: every writer uses
    ``store``."""
    writers: int = 8
    """Writers the concurrency checks start at once on one record."""
    rounds: int = 10
    """Races each concurrency check runs, each on a fresh key; it fails at the first one lost."""

    def __post_init__(self) -> None:
        if self.writers < 2 or self.rounds < 1:
            raise ValueError(
                f"A race needs at least 2 writers and 1 round, not writers={self.writers}, "
                f"rounds={self.rounds}."
            )

    @property
    def lasting(self) -> float:
        """A TTL in seconds that no check outlives, however slow the machine: 1000 units, and at
        least 10 minutes. Every record that must stay alive during a check gets it."""
        return max(_LASTING_UNITS * self.unit, _LASTING_FLOOR)

    def key(self) -> str:
        """A fresh, unused store key."""
        return store_key(new_session_id(), "conformance")

    def record(self, fields: dict[str, bytes] | None = None, *, life: float | None = None) -> SessionRecord:
        """A record created now that expires in ``life`` units (None: when a TTL of ``lasting``
        would end)."""
        now = self.now()
        span = self.lasting if life is None else life * self.unit
        data = fields if fields is not None else {"user_id": b"42", "cart": b'["a"]'}
        return SessionRecord(dict(data), SessionMeta(now, now + span, False, 0))

    @asynccontextmanager
    async def clients(self) -> AsyncIterator[tuple[SessionStore, ...]]:
        """The stores the concurrency checks spread their writers over: ``store``, and one more
        from ``connect`` (closed on the way out) when there is a ``connect``.

        Each has served one request before it races: the races test atomicity, not how a fresh
        client copes with concurrent first requests (a fresh redis-py ``RedisCluster`` client, for
        one, can fail some of those while it discovers the cluster).
        """
        if self.connect is None:
            await self.store.load(self.key())
            yield (self.store,)
            return
        other = await self.connect()
        try:
            for client in (self.store, other):
                await client.load(self.key())
            yield (self.store, other)
        finally:
            await other.aclose()


def assert_same(a: SessionRecord | None, b: SessionRecord) -> None:
    """``a`` is a record with ``b``'s fields and metadata (and a matching document, if it has one)."""
    assert a is not None, "the record is missing"
    assert dict(a.fields) == dict(b.fields), f"fields differ: {dict(a.fields)} != {dict(b.fields)}"
    assert a.meta == b.meta, f"metadata differs: {a.meta} != {b.meta}"
    if a.document is not None:
        assert a.document == json_document(a.fields), "document is not json_document(fields)"


Check = Callable[[StoreHarness], Awaitable[None]]
"""A conformance check: raises ``AssertionError`` when the harness' store breaks a rule."""
