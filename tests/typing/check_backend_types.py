"""Type-checked, never run by pytest: ``mypy --strict tests/typing`` must pass.

It proves from the consumer side that a ``Backend`` subclass type-checks as written in the docs, that
``SessionManager(store=...)`` takes one as readily as a full store, and that ``RedisBackend``, imported
lazily by ``fastapi_sessions.backends``, is still the real class to the type checker (not ``Any``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import assert_type

from fastapi_sessions import SessionManager, SessionStore
from fastapi_sessions.backends import Backend, MemoryBackend, RedisBackend, as_store
from fastapi_sessions.stores.redis import RedisStore


class Cart(BaseModel):
    items: list[str] = []


class DictBackend(Backend):
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    async def read(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        self.records[key] = data

    async def destroy(self, key: str) -> None:
        self.records.pop(key, None)

    async def clear(self) -> None:
        self.records.clear()


def build() -> None:
    on_backend = SessionManager(Cart, store=DictBackend())
    assert_type(on_backend, SessionManager[Cart])
    assert_type(on_backend.store, SessionStore)
    assert_type(as_store(DictBackend()), SessionStore)
    SessionManager(Cart, store=MemoryBackend())
    redis_backend = RedisBackend(host="localhost", port=6379, db=0)
    assert_type(redis_backend, RedisBackend)
    assert_type(RedisBackend.from_url("redis://localhost:6379/0"), RedisBackend)
    store: RedisStore = redis_backend
    SessionManager(Cart, store=store)
