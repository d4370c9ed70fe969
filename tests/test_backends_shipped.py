"""MemoryBackend and RedisBackend: the shipped stores under the ``backends`` names, at full speed, and
the article's code running with only the package name changed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import anyio
import pytest

import fastapi_sessions.backends
from fastapi_sessions import SessionConfigError
from fastapi_sessions.backends import MemoryBackend, as_store
from fastapi_sessions.stores import MemoryStore, SessionMeta, SessionRecord
from fastapi_sessions.testing import FakeClock, StoreConformance, StoreHarness, fake_wait


def new_record(now: float) -> SessionRecord:
    return SessionRecord({"user_id": b"7"}, SessionMeta(now, now + 3600))


class TestMemoryBackendContract(StoreConformance):
    @pytest.fixture
    async def store_harness(self) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = MemoryBackend(clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


def test_memory_backend_is_the_memory_store_itself_not_wrapped() -> None:
    backend = MemoryBackend(max_entries=10)
    assert isinstance(backend, MemoryStore)
    assert as_store(backend) is backend
    assert isinstance(MemoryBackend.from_url("memory://?max_entries=3"), MemoryBackend)


@pytest.mark.anyio
async def test_memory_backend_clear_removes_only_its_own_sessions() -> None:
    clock = FakeClock()
    one, two = MemoryBackend(clock=clock), MemoryBackend(clock=clock)
    await one.create("k", new_record(clock.time()), ttl=60)
    await two.create("k", new_record(clock.time()), ttl=60)
    await one.clear()
    assert await one.load("k") is None
    assert await two.load("k") is not None


def test_importing_the_backends_never_imports_redis() -> None:
    code = "import sys, fastapi_sessions.backends; assert 'redis' not in sys.modules, 'redis was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchBackend"):
        _ = fastapi_sessions.backends.NoSuchBackend  # type: ignore[attr-defined]


def test_redis_backend_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = ("fastapi_sessions.stores.redis", "fastapi_sessions.backends.redis")
    for name in [m for m in sys.modules if m == "redis" or m.startswith(("redis.", *ours))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match=r"pip install 'pselfastapise-async\[redis\]'"):
        from fastapi_sessions.backends import RedisBackend  # noqa: F401


# -- RedisBackend --------------------------------------------------------------------------------

redis_only = pytest.mark.redis


async def real_wait(seconds: float) -> None:
    await anyio.sleep(seconds)


@redis_only
class TestRedisBackendContract(StoreConformance):
    @pytest.fixture
    async def store_harness(self, redis_server_url: str, redis_prefix: str) -> AsyncIterator[StoreHarness]:
        from fastapi_sessions.backends import RedisBackend

        from .redis_support import HANG_GUARD

        # A deadline no healthy call reaches: with the default second, a call that a loaded machine
        # held up for longer failed a check about what the store keeps, not about how fast it is.
        store = RedisBackend(url=redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
        yield StoreHarness(store, time.time, real_wait, unit=0.25)
        await store.aclose()


@redis_only
@pytest.mark.anyio
async def test_redis_backend_from_host_port_db_and_from_url_reach_the_same_sessions(
    redis_server_url: str, redis_prefix: str
) -> None:
    from fastapi_sessions.backends import RedisBackend
    from fastapi_sessions.stores.redis import RedisStore

    parts = urlsplit(redis_server_url)
    assert parts.hostname is not None
    assert parts.port is not None
    db = int(parts.path.strip("/") or 0)
    by_host = RedisBackend(host=parts.hostname, port=parts.port, db=db, prefix=redis_prefix)
    by_url = RedisBackend(url=redis_server_url, prefix=redis_prefix)
    by_from_url = RedisBackend.from_url(redis_server_url, prefix=redis_prefix)
    assert isinstance(by_from_url, RedisBackend)
    for store in (by_host, by_url, by_from_url):
        assert isinstance(store, RedisStore)
        assert as_store(store) is store, "a full store: no adapter"
    record = new_record(time.time())
    await by_host.create("k", record, ttl=60)
    assert await by_url.load("k") == record
    assert await by_from_url.load("k") == record
    for store in (by_host, by_url, by_from_url):
        await store.aclose()


@redis_only
@pytest.mark.anyio
async def test_redis_backend_owns_its_pool_and_closes_it(redis_server_url: str, redis_prefix: str) -> None:
    from fastapi_sessions.backends import RedisBackend

    store = RedisBackend(url=redis_server_url, prefix=redis_prefix)
    await store.load("x")
    connections = list(store.client.connection_pool._available_connections)
    assert connections
    assert all(c.is_connected for c in connections)
    await store.aclose()
    assert not any(c.is_connected for c in connections)


@redis_only
@pytest.mark.anyio
async def test_redis_backend_clear_removes_its_prefix_and_leaves_the_others(
    redis_server_url: str, redis_prefix: str
) -> None:
    from fastapi_sessions.backends import RedisBackend

    mine = RedisBackend(url=redis_server_url, prefix=redis_prefix + "mine:")
    theirs = RedisBackend(url=redis_server_url, prefix=redis_prefix + "theirs:")
    record = new_record(time.time())
    for key in ("a", "b"):
        await mine.create(key, record, ttl=60)
    await theirs.create("a", record, ttl=60)
    await mine.clear()
    assert await mine.load("a") is None
    assert await mine.load("b") is None
    assert await theirs.load("a") == record
    await mine.aclose()
    await theirs.aclose()


@redis_only
def test_redis_backend_refuses_a_url_and_a_host_together(redis_server_url: str) -> None:
    from fastapi_sessions.backends import RedisBackend

    with pytest.raises(SessionConfigError, match="one or the other"):
        RedisBackend("cache.internal", url=redis_server_url)
    with pytest.raises(SessionConfigError, match="Invalid Redis URL"):
        RedisBackend(url="http://not-redis")
    with pytest.raises(SessionConfigError, match="prefix"):
        RedisBackend(prefix="")


@redis_only
@pytest.mark.anyio
async def test_the_articles_code_runs_with_only_the_package_name_changed() -> None:
    namespace: dict[str, object] = {}
    article = (
        "from fastapi_sessions.backends.memory import MemoryBackend\n"
        "from fastapi_sessions.backends.redis import RedisBackend\n"
        "memory_backend = MemoryBackend()\n"
        "redis_backend = RedisBackend(host='localhost', port=6379, db=0)\n"
    )
    exec(article, namespace)  # noqa: S102 - our own fixed text
    from fastapi_sessions.backends import RedisBackend
    from fastapi_sessions.stores.redis import RedisStore

    redis_backend = namespace["redis_backend"]
    assert isinstance(redis_backend, RedisBackend)
    assert isinstance(redis_backend, RedisStore)
    assert redis_backend.client.connection_pool.connection_kwargs["host"] == "localhost"
    assert redis_backend.client.connection_pool.connection_kwargs["db"] == 0
    await redis_backend.aclose()
    assert isinstance(namespace["memory_backend"], MemoryStore)
