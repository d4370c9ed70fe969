"""Two small ``Backend`` subclasses for the tests, written the way a user would write one.

* :class:`DictBackend`: records as JSON text in a dict (so only JSON survives a round trip), expired
  on a fake clock, with a checkpoint in every method (so concurrent operations really interleave), and
  a switch to fail like a backend that is down.
* :class:`RedisJSONBackend`: each record as one JSON string in a real Redis (``SET ... EX``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from fastapi_sessions.backends import Backend
from fastapi_sessions.testing import FakeClock


class DictBackend(Backend):
    """Records in a dict until their ``ttl`` runs out on ``clock`` (never, with ``honour_ttl=False``)."""

    def __init__(self, clock: FakeClock, *, honour_ttl: bool = True) -> None:
        self.clock = clock
        self.honour_ttl = honour_ttl
        self.records: dict[str, tuple[float, str]] = {}
        self.planted: dict[str, object] = {}
        """Returned by ``read`` as they are: for malformed data that JSON could not even hold."""
        self.failing: set[str] = set()
        """Names of methods that raise ``ConnectionError``, as a backend that is down does."""
        self.ttls: list[int] = []
        self.closed = False
        self.gate: anyio.Event | None = None
        """When set, every ``write`` waits for this event before it stores anything."""

    async def _enter(self, method: str) -> None:
        await checkpoint()
        if method in self.failing:
            raise ConnectionError(f"backend down ({method}, injected by DictBackend)")

    async def read(self, key: str) -> dict[str, Any] | None:
        await self._enter("read")
        if key in self.planted:
            planted: Any = self.planted[key]
            return planted
        stored = self.records.get(key)
        if stored is None or stored[0] <= self.clock.time():
            return None
        data: dict[str, Any] = json.loads(stored[1])
        return data

    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        await self._enter("write")
        if self.gate is not None:
            await self.gate.wait()
        assert type(ttl) is int
        assert ttl >= 1
        self.ttls.append(ttl)
        until = self.clock.time() + ttl if self.honour_ttl else math.inf
        self.records[key] = (until, json.dumps(data))

    async def destroy(self, key: str) -> None:
        await self._enter("destroy")
        self.planted.pop(key, None)
        self.records.pop(key, None)

    async def clear(self) -> None:
        await self._enter("clear")
        self.planted.clear()
        self.records.clear()

    async def aclose(self) -> None:
        self.closed = True

    def data(self, key: str) -> Any:
        """The dict stored under ``key``, whatever its ttl (for assertions)."""
        return json.loads(self.records[key][1])


class RedisJSONBackend(Backend):
    """Each record as one JSON string under ``prefix + key``, with Redis' own expiry."""

    def __init__(self, url: str, prefix: str) -> None:
        from redis.asyncio import Redis

        self.client = Redis.from_url(url)
        self.prefix = prefix

    async def read(self, key: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.prefix + key)
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        await self.client.set(self.prefix + key, json.dumps(data), ex=ttl)

    async def destroy(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def clear(self) -> None:
        batch: list[bytes] = []
        async for name in self.client.scan_iter(match=self.prefix + "*", count=500):
            batch.append(name)
            if len(batch) == 500:
                await self.client.unlink(*batch)
                batch.clear()
        if batch:
            await self.client.unlink(*batch)

    async def aclose(self) -> None:
        await self.client.aclose()
