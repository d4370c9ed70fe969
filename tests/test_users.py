"""Users and their sessions (``fastapi_sessions.users``): the login helper, a user's list of sessions,
revoking them, and the index that follows each logged-in session's key; on MemoryStore and Redis."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from fastapi_sessions import (
    ActiveSession,
    SessionConfigError,
    SessionManager,
    SessionMiddleware,
    SessionStore,
    UserIndexStore,
    request_session,
    session_users,
)
from fastapi_sessions.backends import Backend
from fastapi_sessions.stores import IndexedSession, MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .backend_support import DictBackend
from .conftest import UserSession, make_settings
from .races import HANG_GUARD, Race

pytestmark = pytest.mark.anyio
BASE_URL = "https://t"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0"


class IndexRecordingStore(RecordingStore):
    """``RecordingStore`` with the index capability forwarded and counted too."""

    def __init__(self, inner: SessionStore) -> None:
        assert isinstance(inner, UserIndexStore)
        super().__init__(inner)
        self.index: UserIndexStore = inner

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        self._enter("index_add", key)
        await self.index.index_add(user, key, until=until, now=now)

    async def index_remove(self, user: str, key: str) -> None:
        self._enter("index_remove", key)
        await self.index.index_remove(user, key)

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:
        self._enter("index_sessions", user)
        return await self.index.index_sessions(user, now=now)


class HeldCreates(IndexRecordingStore):
    """Holds the next ``create`` until ``go`` is set, after telling ``reached``."""

    def __init__(self, inner: SessionStore) -> None:
        super().__init__(inner)
        self.held: tuple[anyio.Event, anyio.Event] | None = None

    async def create(self, key: str, record: Any, *, ttl: float) -> Any:
        if self.held is not None:
            reached, go = self.held
            self.held = None
            reached.set()
            await go.wait()
        return await super().create(key, record, ttl=ttl)


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[HeldCreates]:
    """The store under test, counted: a MemoryStore, a RedisStore on this test's own prefix, or a
    PostgresStore in this test's own schema."""
    if request.param == "memory":
        yield HeldCreates(MemoryStore(clock=clock))
        return
    if request.param == "postgres":
        pytest.importorskip("asyncpg")
        from fastapi_sessions.stores.postgres import PostgresStore

        from .postgres_support import postgres_schema, store_url

        async with postgres_schema() as (dsn, schema):
            url = store_url(dsn, f"{schema}.sessions")
            postgres = PostgresStore.from_url(url, clock=clock, timeout=HANG_GUARD)
            await postgres.create_table()
            yield HeldCreates(postgres)
            await postgres.aclose()
        return
    from fastapi_sessions.stores.redis import RedisStore  # the [redis] extra: only where it runs

    url = request.getfixturevalue("redis_server_url")
    redis = RedisStore.from_url(url, prefix=request.getfixturevalue("redis_prefix"), timeout=HANG_GUARD)
    yield HeldCreates(redis)
    await redis.aclose()


def typed_app(store: SessionStore, clock: FakeClock, **settings: Any) -> tuple[FastAPI, Race]:
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    app.state.sessions = sessions
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    race = Race()

    @app.post("/login/{user}")
    async def login(user: str, session: Session, request: Request, tag: str = "") -> None:
        await race.hold(tag)
        sessions.users.login(session, user, request)

    @app.get("/me")
    async def me(session: Session) -> dict[str, Any]:
        return {"data": session.model_dump(), "login": sessions.session_of(session).state.get("login")}

    @app.post("/cart/{item}")
    async def add(item: str, session: Session, tag: str = "") -> None:
        await race.hold(tag)
        session.cart.append(item)

    @app.get("/sessions/{user}")
    async def listing(user: str, session: Session) -> list[ActiveSession]:
        return await sessions.users.list_sessions(user, current=session)

    @app.post("/revoke/{user}/{handle}")
    async def revoke(user: str, handle: str) -> bool:
        return await sessions.users.revoke(user, handle)

    @app.post("/revoke-all/{user}")
    async def revoke_all(user: str, session: Session, keep: bool = False) -> int:
        return await sessions.users.revoke_all(user, keep=session if keep else None)

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    @app.post("/regenerate")
    async def regenerate(session: Session) -> None:
        sessions.regenerate(session)

    return app, race


def browser(app: FastAPI, agent: str = CHROME) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=("203.0.113.7", 4321))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers={"user-agent": agent})


async def listed(client: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    response = await client.get(f"/sessions/{user}")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def test_login_gives_a_new_id_binds_the_user_and_records_when_and_what(
    store: HeldCreates, clock: FakeClock
) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/cart/book")
        before = client.cookies["session"]
        assert (await client.post("/login/alice")).status_code == 200
        after = client.cookies["session"]
        assert after != before, "a login must change the session ID (fixation)"
        me = (await client.get("/me")).json()
        assert me["data"]["cart"] == ["book"], "the same browser's anonymous data survives its login"
        login = me["login"]
        assert len(login.pop("id")) == 24, "a random revoke handle"
        assert login == {"user": "alice", "at": clock.time(), "ua": CHROME, "ip": None}
    async with browser(app) as attacker:  # who planted or saw the pre-login cookie
        attacker.cookies.set("session", before)
        assert (await attacker.get("/me")).json()["login"] is None, "the pre-login ID opens nothing"


async def test_the_ip_is_recorded_only_with_session_record_ip(store: HeldCreates, clock: FakeClock) -> None:
    app, _ = typed_app(store, clock, record_ip=True)
    async with browser(app, agent="x" * 1000) as client:
        await client.post("/login/alice")
        login = (await client.get("/me")).json()["login"]
    assert login["ip"] == "203.0.113.7", "the client address as the server sees it"
    assert login["ua"] == "x" * 256, "a user agent is cut to a sane length"


async def test_login_as_another_user_starts_from_empty_data(store: HeldCreates, clock: FakeClock) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        await client.post("/cart/alices-secret")
        await client.post("/login/alice")
        assert (await client.get("/me")).json()["data"]["cart"] == ["alices-secret"]
        await client.post("/login/mallory")
        me = (await client.get("/me")).json()
        assert me["data"]["cart"] == [], "nothing of alice's carries over to another user's login"
        assert me["login"]["user"] == "mallory"
        assert await listed(client, "alice") == [], "alice's index no longer lists the session"
        assert len(await listed(client, "mallory")) == 1


async def test_a_users_sessions_are_listed_with_the_current_one_flagged(
    store: HeldCreates, clock: FakeClock
) -> None:
    app, _ = typed_app(store, clock, idle_timeout=600)
    async with browser(app, "Phone") as phone, browser(app, "Laptop") as laptop:
        created = clock.time()
        await phone.post("/login/alice")
        clock.advance(100)
        await laptop.post("/login/alice")
        sessions = await listed(laptop, "alice")
    assert [(s["user_agent"], s["current"]) for s in sessions] == [("Laptop", True), ("Phone", False)]
    laptop_session, phone_session = sessions
    assert phone_session["created_at"] == created
    assert phone_session["login_at"] == created
    assert laptop_session["login_at"] == created + 100
    assert len({s["id"] for s in sessions}) == 2
    for session in sessions:  # Redis keeps real time, which the fake clock does not move
        assert session["login_at"] <= session["last_seen"] <= clock.time()


async def test_last_seen_comes_from_the_idle_window_without_a_write(clock: FakeClock) -> None:
    store = HeldCreates(MemoryStore(clock=clock))
    app, _ = typed_app(store, clock, idle_timeout=600)
    async with browser(app, "Phone") as phone, browser(app, "Laptop") as laptop:
        await phone.post("/login/alice")
        await laptop.post("/login/alice")
        clock.advance(50)
        store.reset()
        await phone.get("/me")  # a read: the phone was seen now, without any write
        assert store.writes() == 0
        seen = clock.time()
        clock.advance(30)
        laptop_session, phone_session = await listed(laptop, "alice")  # most recently seen first
    assert laptop_session["last_seen"] == clock.time(), "the listing request itself used it"
    assert phone_session["last_seen"] == seen
    assert phone_session["expires_at"] == seen + 600


async def test_last_seen_is_unknown_without_an_idle_timeout(store: HeldCreates, clock: FakeClock) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        (session,) = await listed(client, "alice")
    assert session["last_seen"] is None


async def test_a_plain_read_of_a_logged_in_session_is_one_store_call(
    store: HeldCreates, clock: FakeClock
) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        store.reset()
        await client.get("/me")
        assert store.calls == {"load": 1}, "the index is never touched on a read"
        store.reset()
        await client.post("/cart/x")
        assert store.calls == {"load": 1, "update": 1}, "nor on a plain write"


async def test_revoking_a_session_logs_that_browser_out(store: HeldCreates, clock: FakeClock) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app, "Phone") as phone, browser(app, "Laptop") as laptop:
        await phone.post("/login/alice")
        await laptop.post("/login/alice")
        (phone_session,) = [s for s in await listed(laptop, "alice") if s["user_agent"] == "Phone"]
        assert (await laptop.post(f"/revoke/bob/{phone_session['id']}")).json() is False, (
            "a session is revoked only for its own user"
        )
        assert (await laptop.post(f"/revoke/alice/{phone_session['id']}")).json() is True
        assert (await phone.get("/me")).json()["login"] is None
        assert (await laptop.get("/me")).json()["login"]["user"] == "alice"
        assert [s["user_agent"] for s in await listed(laptop, "alice")] == ["Laptop"]
        assert (await laptop.post(f"/revoke/alice/{phone_session['id']}")).json() is False


async def test_log_out_everywhere_else_keeps_only_the_current_session(
    store: HeldCreates, clock: FakeClock
) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app, "A") as a, browser(app, "B") as b, browser(app, "C") as c:
        for client in (a, b, c):
            await client.post("/login/alice")
        await c.post("/login/bob")
        assert (await a.post("/revoke-all/alice?keep=true")).json() == 1
        assert (await a.get("/me")).json()["login"]["user"] == "alice"
        assert (await b.get("/me")).json()["login"] is None
        assert (await c.get("/me")).json()["login"]["user"] == "bob", "another user's stay"
        assert [s["current"] for s in await listed(a, "alice")] == [True]
        assert (await c.post("/revoke-all/bob")).json() == 1, "revoke_all without keep ends them all"
        assert (await c.get("/me")).json()["login"] is None


async def test_logout_removes_the_session_from_its_users_index(
    store: HeldCreates, clock: FakeClock
) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        store.reset()
        await client.post("/logout")
        assert store.calls["index_remove"] == 1
        assert await store.index.index_sessions("alice", now=clock.time()) == []


async def test_the_index_follows_a_regeneration(store: HeldCreates, clock: FakeClock) -> None:
    app, _ = typed_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        (before,) = await listed(client, "alice")
        await client.post("/regenerate")
        (after,) = await listed(client, "alice")
        assert after["id"] == before["id"], "the revoke handle outlives the ID it was listed under"
        assert after["current"]
        assert len(await store.index.index_sessions("alice", now=clock.time())) == 1


async def test_the_index_follows_an_automatic_rotation_and_revoke_ends_the_rotated_session(
    store: HeldCreates, clock: FakeClock
) -> None:
    """With SESSION_ROTATE_INTERVAL, a rotated session stays in its user's list under its new ID, and
    "log out everywhere" ends it: neither the new cookie nor the previous one (in its grace window)
    opens it afterwards."""
    app, _ = typed_app(store, clock, rotate_interval=600, rotate_grace=30)
    async with browser(app) as client, browser(app) as other:
        await client.post("/login/alice")
        old = client.cookies["session"]
        (before,) = await listed(client, "alice")
        clock.advance(600)
        await client.post("/cart/book")  # due: rotated at this commit
        assert client.cookies["session"] != old
        (after,) = await listed(client, "alice")
        assert after["id"] == before["id"], "a device list shown before the rotation still works"
        assert after["current"]
        assert len(await store.index.index_sessions("alice", now=clock.time())) == 1
        assert (await other.post(f"/revoke/alice/{before['id']}")).json() is True
        assert (await client.get("/me")).json()["login"] is None
        await client.post("/login/alice")
        assert (await other.post("/revoke-all/alice")).json() == 1
        assert (await client.get("/me")).json()["login"] is None
        other.cookies.set("session", old)
        assert (await other.get("/me")).json()["login"] is None, "the previous ID opens nothing either"


async def test_a_revoke_that_read_the_index_before_a_rotation_still_ends_the_session(
    store: HeldCreates, clock: FakeClock
) -> None:
    """``revoke_all`` reads the user's index, then deletes: a rotation by another request in between
    moves the session to a new key, and the delete of the key it read must follow it there."""
    app, _ = typed_app(store, clock, rotate_interval=600, rotate_grace=30)
    sessions = app.state.sessions
    async with browser(app) as client:
        await client.post("/login/alice")
        (listed_before,) = await store.index.index_sessions("alice", now=clock.time())
        clock.advance(600)
        old = client.cookies["session"]
        await client.post("/cart/book")  # rotated by this request, after the index was read
        assert client.cookies["session"] != old
        await sessions.users._revoke("alice", listed_before.key)
        assert (await client.get("/me")).json()["login"] is None, "the rotated session ended too"


async def test_a_store_without_the_capability_says_which_one_it_lacks(clock: FakeClock) -> None:
    app, _ = typed_app(RecordingStore(MemoryStore(clock=clock)), clock)
    async with browser(app) as client:
        with pytest.raises(SessionConfigError, match="UserIndexStore"):
            await client.post("/login/alice")


async def test_a_revoke_racing_a_request_on_that_session_does_not_resurrect_it(
    store: HeldCreates, clock: FakeClock
) -> None:
    """The held request loaded the session before the revoke; its write after it answers 409."""
    app, race = typed_app(store, clock)
    async with browser(app) as victim, browser(app) as admin:
        await victim.post("/login/alice")
        (session,) = await listed(admin, "alice")
        race.add("1")
        results: dict[str, httpx.Response] = {}

        async def held() -> None:
            results["cart"] = await victim.post("/cart/late?tag=1")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                group.start_soon(held)
                await race.loaded["1"].wait()
                assert (await admin.post(f"/revoke/alice/{session['id']}")).json() is True
                race.go["1"].set()
        assert results["cart"].status_code == 409
        assert (await victim.get("/me")).json() == {"data": UserSession().model_dump(), "login": None}
        assert await listed(admin, "alice") == []


async def test_a_login_racing_log_out_everywhere_stays_revocable(
    store: HeldCreates, clock: FakeClock
) -> None:
    """Held between its index entry and its session, a login survives a revoke_all that ran in
    between (it logged in after), and stays in the index: the next revoke_all ends it."""
    app, _ = typed_app(store, clock)
    reached, go = anyio.Event(), anyio.Event()
    async with browser(app) as late, browser(app) as admin:
        store.held = (reached, go)
        results: dict[str, httpx.Response] = {}

        async def login() -> None:
            results["login"] = await late.post("/login/alice")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                group.start_soon(login)
                await reached.wait()
                assert (await admin.post("/revoke-all/alice")).json() == 0
                go.set()
        assert results["login"].status_code == 200
        assert (await late.get("/me")).json()["login"]["user"] == "alice"
        assert (await admin.post("/revoke-all/alice")).json() == 1
        assert (await late.get("/me")).json()["login"] is None


async def test_a_login_racing_a_revoke_of_the_session_it_regenerates_fails_cleanly(
    store: HeldCreates, clock: FakeClock
) -> None:
    """A re-login held after its load, while the session is revoked: its rename answers 409, and the
    new key it indexed first leaves the index again."""
    app, race = typed_app(store, clock)
    async with browser(app) as client, browser(app) as admin:
        await client.post("/login/alice")
        (session,) = await listed(admin, "alice")
        race.add("1")
        results: dict[str, httpx.Response] = {}

        async def relogin() -> None:
            results["login"] = await client.post("/login/alice?tag=1")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                group.start_soon(relogin)
                await race.loaded["1"].wait()
                assert (await admin.post(f"/revoke/alice/{session['id']}")).json() is True
                race.go["1"].set()
        assert results["login"].status_code == 409
        assert await store.index.index_sessions("alice", now=clock.time()) == []


# -- the classic door -------------------------------------------------------------------------


def classic_app(store: SessionStore | Backend, clock: FakeClock) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, settings=make_settings(), clock=clock)

    @app.post("/login/{user}")
    async def login(user: str, request: Request) -> None:
        session_users(request).login(request_session(request), user, request)

    @app.post("/set/{value}")
    async def set_value(value: str, request: Request) -> None:
        request.session["value"] = value

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"data": dict(request.session), "login": request_session(request).live().state.get("login")}

    @app.get("/sessions/{user}")
    async def listing(user: str, request: Request) -> list[ActiveSession]:
        return await session_users(request).list_sessions(user, current=request_session(request))

    @app.post("/revoke-all/{user}")
    async def revoke_all(user: str, request: Request) -> int:
        return await session_users(request).revoke_all(user, keep=request_session(request))

    return app


async def test_the_classic_door_logs_in_lists_and_revokes(store: HeldCreates, clock: FakeClock) -> None:
    app = classic_app(store, clock)
    async with browser(app, "A") as a, browser(app, "B") as b:
        await a.post("/set/anonymous")
        before = a.cookies["session"]
        await a.post("/login/alice")
        assert a.cookies["session"] != before
        assert (await a.get("/me")).json()["data"] == {"value": "anonymous"}
        await b.post("/login/alice")
        await b.post("/set/bobs")
        await b.post("/login/bob")
        assert (await b.get("/me")).json()["data"] == {}, "a switch of user clears the data"
        await b.post("/login/alice")
        assert sorted((s["user_agent"], s["current"]) for s in await listed(a, "alice")) == [
            ("A", True),
            ("B", False),
        ]
        assert (await a.post("/revoke-all/alice")).json() == 1
        assert (await b.get("/me")).json()["login"] is None


async def test_a_backend_of_your_own_has_no_index(clock: FakeClock) -> None:
    """A ``Backend`` goes through the adapter, which does not offer the capability."""
    app = classic_app(DictBackend(clock), clock)
    async with browser(app) as client:
        with pytest.raises(SessionConfigError, match="UserIndexStore"):
            await client.post("/login/alice")
