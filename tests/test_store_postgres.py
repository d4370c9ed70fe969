"""PostgresStore against a real server: the store contract, the table, purges, statistics, failures
and an app on SESSION_STORE_URL. Each test has a schema of its own, dropped afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from fastapi_sessions import SessionConfigError, SessionManager, SessionStoreError
from fastapi_sessions.stores import (
    CorruptRecordError,
    SessionMeta,
    SessionRecord,
    SessionStore,
    WriteResult,
)
from fastapi_sessions.testing import (
    FakeClock,
    StoreConformance,
    StoreHarness,
    UserIndexConformance,
    fake_wait,
    session_store_key,
)

from .conftest import UserSession, make_app, make_settings
from .postgres_support import asyncpg, postgres_schema, store_url

pytest.importorskip("asyncpg")
from fastapi_sessions.stores.postgres import PURGE_BATCH, PostgresStore, create_table

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

HANG_GUARD = 30.0  # seconds: the stores' deadline here; only a hang reaches it


@pytest.fixture
async def schema() -> AsyncIterator[tuple[str, str]]:
    async with postgres_schema() as found:
        yield found


@pytest.fixture
async def pool(schema: tuple[str, str]) -> AsyncIterator[Any]:
    connect, _ = schema
    pool = await asyncpg.create_pool(connect, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def store(pool: Any, schema: tuple[str, str], clock: FakeClock) -> PostgresStore:
    store = PostgresStore(pool, table=f"{schema[1]}.sessions", clock=clock, timeout=HANG_GUARD)
    await store.create_table()
    return store


class TestPostgresStoreContract(StoreConformance, UserIndexConformance):
    """Every check, the races included, with the writers spread over two pools (two processes)."""

    @pytest.fixture
    async def store_harness(self, pool: Any, schema: tuple[str, str]) -> StoreHarness:
        dsn, name = schema
        clock = FakeClock()
        store = PostgresStore(pool, table=f"{name}.sessions", clock=clock, timeout=HANG_GUARD)
        await store.create_table()

        async def connect() -> SessionStore:  # a store with a pool of its own, closed by the checks
            return PostgresStore.from_url(
                store_url(dsn, f"{name}.sessions"), clock=clock, timeout=HANG_GUARD
            )

        return StoreHarness(store, clock.time, fake_wait(clock), connect=connect)


def record(clock: FakeClock, fields: dict[str, bytes], life: float = 3600) -> SessionRecord:
    now = clock.time()
    return SessionRecord(fields, SessionMeta(now, now + life))


async def rows(pool: Any, store: PostgresStore) -> dict[str, Any]:
    table = store.table
    return {row["key"]: row for row in await pool.fetch(f"SELECT * FROM {table}")}  # noqa: S608


# -- the table ------------------------------------------------------------------------------------


async def test_create_table_is_idempotent_and_indexes_the_deadline(pool: Any, store: PostgresStore) -> None:
    await store.create_table()
    await create_table(pool, store.table)
    schema, table = store.table.split(".")
    indexes = await pool.fetch(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2", schema, table
    )
    assert any("(deadline)" in row["indexdef"] for row in indexes), indexes


async def test_concurrent_create_tables_from_several_processes_all_succeed(
    schema: tuple[str, str],
) -> None:
    connect, name = schema
    pools = [await asyncpg.create_pool(connect, min_size=1, max_size=1) for _ in range(4)]
    try:
        async with anyio.create_task_group() as group:
            for each in pools:
                group.start_soon(create_table, each, f"{name}.racing")
    finally:
        for each in pools:
            await each.close()


@pytest.mark.parametrize("table", ["", "a.b.c", "sessions; DROP TABLE x", "1abc", "x" * 41])
def test_a_table_name_that_is_not_an_identifier_is_refused(table: str) -> None:
    with pytest.raises(SessionConfigError, match="table name"):
        PostgresStore(None, table=table)


async def test_a_missing_table_is_a_store_error_that_says_how_to_create_it(
    pool: Any, clock: FakeClock
) -> None:
    store = PostgresStore(pool, table="no_such_sessions_table", clock=clock)
    with pytest.raises(SessionStoreError, match=r"does not exist.*create_table"):
        await store.load("k")


# -- values -----------------------------------------------------------------------------------------


async def test_values_come_back_byte_for_byte_and_version_checks_compare_them(
    store: PostgresStore, clock: FakeClock
) -> None:
    """JSONB would reformat objects (spaces, key order) and escapes; the store keeps each text."""
    fields = {"prefs": b'{"zeta":1,"a":[1, 2]}', "name": b'"\\u00e9\\u0000"', "n": b"1.50"}
    assert await store.create("k", record(clock, fields), ttl=60) is WriteResult.OK
    loaded = await store.load("k")
    assert loaded is not None
    assert dict(loaded.fields) == fields
    change = store_change({"prefs": b"{}"})
    expected = {"prefs": loaded.fields["prefs"]}
    assert await store.update("k", change, ttl=60, expected=expected) is WriteResult.OK


def store_change(fields: dict[str, bytes]) -> Any:
    from fastapi_sessions.stores import SessionChange

    return SessionChange(fields)


@pytest.mark.parametrize(
    "stored",
    ['{"user_id": 42}', "[1, 2]", '"text"', '{"cart": "[1,"}'],
    ids=["value-not-a-text", "not-an-object", "a-string", "text-not-json"],
)
async def test_a_garbage_row_is_a_fresh_session_and_nothing_else_is_lost(
    pool: Any, store: PostgresStore, clock: FakeClock, stored: str
) -> None:
    sessions = SessionManager(
        UserSession, settings=make_settings(cookie_secure=False), store=store, clock=clock
    )
    app = make_app(sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        good = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
        async with good:
            await good.post("/login/7")
            await client.post("/login/8")
            key = session_store_key(client.cookies["session"].split(".", 1)[0])
            await pool.execute(
                f"UPDATE {store.table} SET fields = $2::jsonb WHERE key = $1",  # noqa: S608
                store.prefix + key,
                stored,
            )
            if stored != '{"cart": "[1,"}':
                with pytest.raises(CorruptRecordError):
                    await store.load(key)
            answer = await client.get("/me")
            assert answer.status_code == 200
            assert answer.json()["user_id"] is None, "a fresh session"
            assert (await good.get("/me")).json()["user_id"] == 7, "the other session is intact"
        assert store.prefix + key not in await rows(pool, store), "the garbage row was removed"


# -- expired rows -----------------------------------------------------------------------------------


async def test_purge_removes_expired_rows_in_batches_and_keeps_live_ones(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    now, expired, live = clock.time(), PURGE_BATCH * 2 + 5, 10
    await pool.executemany(
        f"INSERT INTO {store.table} VALUES ($1, '{{}}', $2::float8, $2::float8 + 100, false, 0, $3)",  # noqa: S608
        [(f"session:dead{i}", now - 10, now - 1 - i % 7) for i in range(expired)]
        + [(f"session:live{i}", now, now + 50) for i in range(live)],
    )
    assert await store.stats() == {
        "sessions": live,
        "expired": expired,
        "bytes": pytest.approx((await store.stats())["bytes"]),
        "table": store.table,
    }
    assert await store.purge_expired() == expired
    assert len(await rows(pool, store)) == live
    assert await store.purge_expired() == 0
    clock.advance(60)
    assert (await store.stats())["expired"] == live
    assert await store.purge_expired() == live


async def test_the_purge_uses_the_deadline_index(pool: Any, store: PostgresStore) -> None:
    await pool.execute(f"ANALYZE {store.table}")
    async with pool.acquire() as connection:
        await connection.execute("SET enable_seqscan = off")  # a tiny table: make the planner choose
        plan = await connection.fetch("EXPLAIN " + store._sql.purge, 0.0, PURGE_BATCH)
    assert "deadline_idx" in "\n".join(row[0] for row in plan)


async def test_stats_count_live_and_expired_rows_and_the_size(
    store: PostgresStore, clock: FakeClock
) -> None:
    await store.create("a", record(clock, {"x": b"1"}), ttl=10)
    await store.create("b", record(clock, {"x": b"1"}), ttl=100)
    clock.advance(20)
    stats = await store.stats()
    assert (stats["sessions"], stats["expired"]) == (1, 1)
    assert isinstance(stats["bytes"], int)
    assert stats["bytes"] > 0


class Ticks:
    """A background purge's ``sleep``: each wait returns when the test lets one tick through."""

    def __init__(self) -> None:
        self.waiting = anyio.Event()
        self.go = anyio.Event()
        self.intervals: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.intervals.append(seconds)
        self.waiting.set()
        await self.go.wait()
        self.go = anyio.Event()

    async def tick(self) -> None:
        """Let the purge run once, and wait until it is waiting again."""
        await self.waiting.wait()
        self.waiting = anyio.Event()
        self.go.set()
        await self.waiting.wait()


async def test_the_background_purge_starts_with_the_first_call_and_stops_with_the_store(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    ticks = Ticks()
    purging = PostgresStore(pool, table=store.table, clock=clock, purge_interval=30, sleep=ticks.sleep)
    assert purging._purger is None, "nothing runs before the store is used"
    await purging.create("old", record(clock, {"x": b"1"}), ttl=10)
    await purging.create("new", record(clock, {"x": b"1"}), ttl=1000)
    clock.advance(20)
    await ticks.tick()
    assert set(await rows(pool, store)) == {"session:new"}
    assert ticks.intervals == [30, 30]
    await purging.aclose()
    assert purging._purger is None
    assert pool._closed is False, "a pool passed in stays open"


async def test_a_failing_background_purge_is_logged_and_tried_again(
    store: PostgresStore, clock: FakeClock, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = Ticks()
    broken = PostgresStore(pool, table="missing_table", clock=clock, purge_interval=5, sleep=ticks.sleep)
    with pytest.raises(SessionStoreError):
        await broken.load("k")
    await ticks.tick()
    await ticks.tick()
    assert caplog.text.count("Background purge of expired sessions failed") == 2
    await broken.aclose()


# -- failures -----------------------------------------------------------------------------------------


async def test_an_unreachable_server_is_a_store_error_and_a_503(clock: FakeClock, tmp_path: Any) -> None:
    url = f"postgresql://app:secret-password@/test?host={tmp_path}&port=5999"
    settings = make_settings(store_url=url, cookie_secure=False)
    sessions = SessionManager(UserSession, settings=settings, clock=clock)
    with pytest.raises(SessionStoreError, match="PostgreSQL") as raised:
        await sessions.store.load("k")
    assert "secret-password" not in str(raised.value)
    app = make_app(sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        client.cookies["session"] = "x"
        answer = await client.post("/login/1")
    assert answer.status_code == 503
    await sessions.store.aclose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u:pw@h/db?max_connections=zero", "max_connections"),
        ("postgresql://u:pw@h/db?max_connections=0", "at least 1"),
        ("postgresql://u:pw@h/db?purge_interval=-1", "purge_interval"),
        ("postgresql://u:pw@h/db?table=x;y", "table name"),
        ("postgresql://u:pw@h:port/db", "port"),
    ],
)
def test_a_bad_store_url_is_refused_at_start_up_without_its_password(url: str, problem: str) -> None:
    with pytest.raises(SessionConfigError, match=problem) as raised:
        SessionManager(UserSession, settings=make_settings(store_url=url))
    assert "SESSION_STORE_URL" in str(raised.value)
    assert "pw" not in str(raised.value).replace("postgresql://u@h/db", "")


def test_wait_replicas_is_refused_with_a_postgres_url() -> None:
    settings = make_settings(store_url="postgresql://localhost/db", store_wait_replicas=1)
    with pytest.raises(SessionConfigError, match="SESSION_STORE_WAIT_REPLICAS"):
        SessionManager(UserSession, settings=settings)


# -- an app on SESSION_STORE_URL -----------------------------------------------------------------------


async def test_an_app_on_a_postgres_url_keeps_its_sessions_in_the_table(
    schema: tuple[str, str], pool: Any, clock: FakeClock
) -> None:
    connect, name = schema
    await create_table(pool, f"{name}.sessions")
    settings = make_settings(
        store_url=store_url(connect, f"{name}.sessions", max_connections="3", purge_interval="60"),
        store_prefix="app1:",
        cookie_secure=False,
        idle_timeout=600,
        concurrency="version_check",
    )
    sessions = SessionManager(UserSession, settings=settings, clock=clock)
    app = make_app(sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        assert (await client.post("/login/5", follow_redirects=True)).json()["user_id"] == 5
        await client.post("/cart/apple")
        me = (await client.get("/me")).json()
        assert (me["user_id"], me["cart"]) == (5, ["apple"])
        stored = await pool.fetch(f"SELECT key, fields FROM {name}.sessions")  # noqa: S608
        assert len(stored) == 1
        assert stored[0]["key"].startswith("app1:")
        assert json.loads(json.loads(stored[0]["fields"])["cart"]) == ["apple"]
        clock.advance(601)
        assert (await client.get("/me")).json()["user_id"] is None, "idle for longer than the timeout"
    store = sessions.store
    assert isinstance(store, PostgresStore)
    assert store.pool._maxsize == 3
    assert store.purge_interval == 60
    assert store._purger is not None, "the first read started the background purge"
    await store.aclose()
    assert store.pool is None


# -- the rolling expiry, deadlines and lost answers ---------------------------------------------------


async def deadline_of(pool: Any, store: PostgresStore, key: str) -> float:
    sql = f"SELECT deadline FROM {store.table} WHERE key = $1"  # noqa: S608
    found: float = await pool.fetchval(sql, store.prefix + key)
    return found


async def test_a_touch_rewrites_the_row_only_when_it_moves_the_deadline_by_more_than_one_percent(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    await store.create("k", record(clock, {"x": b"1"}), ttl=1000)
    created = await deadline_of(pool, store, "k")
    clock.advance(5)  # a touch now would gain 5 s: less than 1% of 1000
    assert await store.load("k", touch=1000) is not None
    assert await deadline_of(pool, store, "k") == created
    clock.advance(20)
    assert await store.load("k", touch=1000) is not None
    assert await deadline_of(pool, store, "k") == clock.time() + 1000
    assert await store.load("k", touch=100) is not None, "a shorter touch moves the deadline closer"
    assert await deadline_of(pool, store, "k") == clock.time() + 100


async def test_a_call_held_up_past_the_timeout_is_a_store_error_and_the_pool_recovers(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    """Another transaction holds the row's lock for as long as the test wants: the store's deadline
    is what ends the wait, however fast the machine."""
    await store.create("k", record(clock, {"x": b"1"}), ttl=100)
    hasty = PostgresStore(pool, table=store.table, clock=clock, timeout=0.2)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(f"SELECT 1 FROM {store.table} WHERE key = 'session:k' FOR UPDATE")  # noqa: S608
        with pytest.raises(SessionStoreError, match=r"did not answer a session update within 0.2 s"):
            await hasty.update("k", store_change({"x": b"2"}), ttl=100)
    # The pool recovers: checked by the patient store on the same pool (0.2 s could pass on a busy machine).
    assert await store.update("k", store_change({"x": b"3"}), ttl=100) is WriteResult.OK
    loaded = await store.load("k")
    assert loaded is not None
    assert loaded.fields["x"] == b"3"


class LosingPool:
    """A pool that loses the answer of the rename statement: after running it (``ran``), or
    before sending it; ``then_down``: every later call fails too."""

    def __init__(self, pool: Any, rename_sql: str, *, ran: bool, then_down: bool = False) -> None:
        self.pool, self.rename_sql, self.ran, self.then_down = pool, rename_sql, ran, then_down
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        if self.lost and self.then_down:
            raise ConnectionRefusedError("the server is gone")
        return getattr(self.pool, name)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        if sql == self.rename_sql:
            if self.ran:
                await self.pool.fetchrow(sql, *args)
            self.lost = True
            raise ConnectionResetError("connection lost before the answer came")
        return await self.pool.fetchrow(sql, *args)


@pytest.mark.parametrize("ran", [True, False], ids=["it-moved", "it-never-ran"])
async def test_a_rename_whose_answer_is_lost_finds_out_whether_it_moved(
    pool: Any, store: PostgresStore, clock: FakeClock, ran: bool
) -> None:
    await store.create("old", record(clock, {"user_id": b"1"}), ttl=100)
    losing = PostgresStore(LosingPool(pool, store._sql.rename, ran=ran), table=store.table, clock=clock)
    change = store_change({"user_id": b"2"})
    if ran:
        assert await losing.rename("old", "new", change, ttl=100) is WriteResult.OK
        assert await store.load("old") is None
        moved = await store.load("new")
        assert moved is not None
        assert moved.fields["user_id"] == b"2"
    else:
        with pytest.raises(SessionStoreError, match="connection lost"):
            await losing.rename("old", "new", change, ttl=100)
        kept = await store.load("old")
        assert kept is not None, "the old session stays usable with the old cookie"
        assert await store.load("new") is None


async def test_the_purge_drops_index_entries_of_users_who_never_came_back(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    now = clock.time()
    await store.index_add("gone", "a", until=now + 10, now=now)
    await store.index_add("back", "b", until=now + 1000, now=now)
    clock.advance(20)
    await store.purge_expired()
    users = await pool.fetch(f"SELECT user_id FROM {store.table}_users")  # noqa: S608
    assert [row["user_id"] for row in users] == ["session:back"]


def test_without_asyncpg_a_postgres_url_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if the [postgres] extra were not installed
    monkeypatch.delitem(sys.modules, "fastapi_sessions.stores.postgres")
    settings = make_settings(store_url="postgresql://localhost/app")
    with pytest.raises(ImportError, match=r"pip install 'pselfastapise-async\[postgres\]'"):
        SessionManager(UserSession, settings=settings)


async def test_a_rename_whose_answer_is_lost_with_the_server_gone_says_the_user_may_be_logged_out(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    await store.create("old", record(clock, {"user_id": b"1"}), ttl=100)
    down = LosingPool(pool, store._sql.rename, ran=False, then_down=True)
    losing = PostgresStore(down, table=store.table, clock=clock)
    with pytest.raises(SessionStoreError, match="check of whether the regeneration happened failed too"):
        await losing.rename("old", "new", store_change({}), ttl=100)


async def test_a_rename_the_server_refuses_raises_at_once(pool: Any, clock: FakeClock) -> None:
    store = PostgresStore(pool, table="no_such_sessions_table", clock=clock)
    with pytest.raises(SessionStoreError, match="does not exist"):
        await store.rename("old", "new", store_change({}), ttl=100)


async def test_create_table_where_it_cannot_be_created_says_what_to_do(pool: Any, clock: FakeClock) -> None:
    store = PostgresStore(pool, table="no_such_schema.sessions", clock=clock)
    with pytest.raises(SessionStoreError, match="could not create the session table"):
        await store.create_table()


async def test_a_row_with_a_time_that_is_not_finite_is_corrupt_and_not_listed(
    pool: Any, store: PostgresStore, clock: FakeClock
) -> None:
    now = clock.time()
    await store.create("k", record(clock, {"x": b"1"}), ttl=100)
    await store.index_add("alice", "k", until=now + 100, now=now)
    assert len(await store.index_sessions("alice", now=now)) == 1
    await pool.execute(f"UPDATE {store.table} SET created_at = 'NaN'")  # noqa: S608
    with pytest.raises(CorruptRecordError, match="not finite"):
        await store.load("k")
    assert await store.index_sessions("alice", now=now) == [], "a corrupt session is not listed"


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"purge_interval": 0}, {"purge_interval": -5.0}],
    ids=["timeout", "purge-interval-zero", "purge-interval-negative"],
)
def test_a_store_with_a_setting_out_of_range_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(SessionConfigError, match="must be positive"):
        PostgresStore(None, **options)


def test_from_url_refuses_another_scheme_without_its_password() -> None:
    with pytest.raises(SessionConfigError, match="Not a PostgreSQL URL") as raised:
        PostgresStore.from_url("mysql://u:secret-pw@h/db")
    assert "secret-pw" not in str(raised.value)


async def test_a_store_passed_in_with_another_explicit_prefix_fails_at_start_up(pool: Any) -> None:
    store = PostgresStore(pool, prefix="shop:")
    with pytest.raises(SessionConfigError, match="SESSION_STORE_PREFIX"):
        SessionManager(UserSession, settings=make_settings(store_prefix="blog:"), store=store)
    SessionManager(UserSession, settings=make_settings(store_prefix="shop:"), store=store)


async def test_a_store_without_a_pool_or_url_says_it_needs_one(clock: FakeClock) -> None:
    with pytest.raises(SessionConfigError, match="needs an asyncpg pool"):
        await PostgresStore(None, clock=clock).load("k")
