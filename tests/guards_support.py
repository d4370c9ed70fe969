"""The store every test of flash messages and route guards runs on: memory, or a real Redis.

Time is the test's ``FakeClock`` on both: the engine judges a session's age and expiry by it, and
Redis's own TTL is kept far longer than any test runs.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

__all__ = ["STORES", "open_store"]

STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]
"""Parameters of a store fixture: ``request.param`` for ``open_store``."""

# A hang guard only: no test waits on it.
STORE_DEADLINE = 60.0


@asynccontextmanager
async def open_store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RecordingStore]:
    """A counting store of the kind ``request.param`` names, closed afterwards."""
    if request.param == "memory":
        yield RecordingStore(MemoryStore(clock=clock))
        return
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    url: str = request.getfixturevalue("redis_server_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    store = RedisStore.from_url(url, prefix=prefix, timeout=STORE_DEADLINE)
    try:
        yield RecordingStore(store)
    finally:
        await store.aclose()
