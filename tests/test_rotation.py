"""Automatic ID rotation (SESSION_ROTATE_INTERVAL): a session in use gets a new ID every interval, its
previous ID reaches it for the grace window only, and never after a logout, a regeneration or a second
rotation. On MemoryStore and Redis; Cluster in test_redis_cluster.py.

Time runs on a FakeClock; races are held with tests/races.py (no sleeps, no timing).
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionStore
from fastapi_sessions.rotation import FORWARD_FIELD, ROTATION_FIELD, forward_key
from fastapi_sessions.stores import MemoryStore, SessionChange, SessionRecord, WriteResult
from fastapi_sessions.testing import FakeClock, RecordingStore, session_store_key

from .conftest import make_settings
from .races import HANG_GUARD, Race, client_for, hold_then, overlap, session_id

pytestmark = pytest.mark.anyio

INTERVAL = 600
GRACE = 30
STORE_DEADLINE = 60.0
"""The Redis store's deadline: a hang guard, never reached."""


class Cart(BaseModel):
    a: int = 0
    b: int = 0


@dataclass
class Backend:
    """A store, and the session keys it holds (without any prefix)."""

    store: SessionStore
    keys: Callable[[], Awaitable[list[str]]]
    raw: SessionStore
    """The store itself, for looking into records."""


@pytest.fixture(params=["memory", "custom", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryStore(clock=clock)

        async def memory_keys() -> list[str]:
            return sorted(memory._data)

        yield Backend(memory, memory_keys, memory)
        return
    if request.param == "custom":  # a user's Backend, through the adapter every custom one gets
        from fastapi_sessions.backends.adapter import as_store

        from .backend_support import DictBackend

        records = DictBackend(clock)
        adapted = as_store(records, clock=clock)

        async def live_keys() -> list[str]:
            return sorted(name for name, (dies, _) in records.records.items() if dies > clock.time())

        yield Backend(adapted, live_keys, adapted)
        return
    pytest.importorskip("redis")
    from redis.asyncio import Redis

    from fastapi_sessions.stores.redis import RedisStore

    url: str = request.getfixturevalue("redis_server_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    store = RedisStore.from_url(url, prefix=prefix, timeout=STORE_DEADLINE)
    raw = Redis.from_url(url)

    async def redis_keys() -> list[str]:
        found = [key.decode() async for key in raw.scan_iter(match=prefix + "*", count=1000)]
        return sorted(key.removeprefix(prefix) for key in found)

    yield Backend(store, redis_keys, store)
    await raw.aclose()
    await store.aclose()


def rotating_app(store: SessionStore, clock: FakeClock, **settings: Any) -> tuple[FastAPI, Race]:
    """A typed-door app with rotation on; each route can be held after its load (``?tag=``)."""
    values: dict[str, Any] = {"rotate_interval": INTERVAL, "rotate_grace": GRACE, **settings}
    sessions = SessionManager(Cart, settings=make_settings(**values), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Cart, Depends(sessions.get_session)]
    race = Race()

    @app.get("/read")
    async def read(session: Session, tag: str = "") -> Cart:
        await race.hold(tag)
        return session

    @app.post("/set/{field}/{value}")
    async def set_field(field: str, value: int, session: Session, tag: str = "") -> None:
        await race.hold(tag)
        setattr(session, field, value)

    @app.post("/remember")
    async def remember(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.set_expiry(session, 3600)

    @app.post("/login")
    async def login(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.regenerate(session)

    @app.post("/logout")
    async def logout(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.destroy(session)

    return app, race


def with_cookie(cookie: str) -> dict[str, str]:
    return {"cookie": f"session={cookie}"}


def key(cookie: str) -> str:
    return session_store_key(session_id(cookie))


async def seed(client: httpx.AsyncClient) -> str:
    """Create the session (a=9) and return its cookie."""
    assert (await client.post("/set/a/9")).status_code == 200
    return client.cookies["session"]


async def rotated(client: httpx.AsyncClient, clock: FakeClock) -> tuple[str, str]:
    """Seed a session, let an interval pass and read it: its (previous, new) cookies."""
    old = await seed(client)
    clock.advance(INTERVAL)
    response = await client.get("/read")
    assert response.status_code == 200
    new = client.cookies["session"]
    assert session_id(new) != session_id(old)
    return old, new


async def read_as(client: httpx.AsyncClient, cookie: str) -> httpx.Response:
    return await client.get("/read", headers=with_cookie(cookie))


# -- rotation -------------------------------------------------------------------------------------


async def test_a_session_used_after_the_interval_gets_a_new_id_and_keeps_its_data_and_lifetime(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        before = await backend.raw.load(key(old))
        assert before is not None
        clock.advance(INTERVAL - 1)
        response = await client.get("/read")
        assert "set-cookie" not in response.headers, "not due yet: a plain read"
        clock.advance(1)
        response = await client.get("/read")
        assert response.json() == {"a": 9, "b": 0}
        new = client.cookies["session"]
        assert session_id(new) != session_id(old)
        assert "no-store" in response.headers["cache-control"]
        after = await backend.raw.load(key(new))
        assert after is not None
        assert after.meta.created_at == before.meta.created_at
        assert after.meta.expires_at == before.meta.expires_at
        assert await backend.raw.load(key(old)) is None
        assert await backend.keys() == sorted([key(new), forward_key(key(old))])
        response = await client.get("/read")
        assert "set-cookie" not in response.headers, "the new ID is fresh: a plain read again"


async def test_rotation_never_extends_the_absolute_lifetime(clock: FakeClock) -> None:
    app, _ = rotating_app(MemoryStore(clock=clock), clock, max_age=3 * INTERVAL)
    async with client_for(app) as client:
        await seed(client)
        for _ in range(2):
            clock.advance(INTERVAL)
            assert "set-cookie" in (await client.get("/read")).headers
        clock.advance(INTERVAL)
        assert (await client.get("/read")).json() == {"a": 0, "b": 0}


async def test_a_read_that_is_not_due_makes_one_store_call_and_a_rotation_one_write_more(
    clock: FakeClock,
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    app, _ = rotating_app(store, clock)
    async with client_for(app) as client:
        await seed(client)
        clock.advance(INTERVAL - 1)
        store.reset()
        await client.get("/read")
        assert dict(store.calls) == {"load": 1}
        clock.advance(1)
        store.reset()
        await client.get("/read")
        assert dict(store.calls) == {"load": 1, "create": 1, "rename": 1}, "the forward, the move"


async def test_a_regeneration_restarts_the_interval(clock: FakeClock) -> None:
    """A login (regenerate) on a session older than the interval gives it its new ID; the next
    request does not rotate it again."""
    app, _ = rotating_app(MemoryStore(clock=clock), clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        assert (await client.post("/login")).status_code == 200
        logged_in = client.cookies["session"]
        assert session_id(logged_in) != session_id(old)
        assert "set-cookie" not in (await client.get("/read")).headers
        assert client.cookies["session"] == logged_in


async def test_with_rotation_off_a_session_keeps_its_id(clock: FakeClock) -> None:
    app, _ = rotating_app(MemoryStore(clock=clock), clock, rotate_interval=None)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(10 * INTERVAL)
        assert "set-cookie" not in (await client.get("/read")).headers
        assert client.cookies["session"] == old


async def test_the_classic_door_rotates_too(clock: FakeClock) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from fastapi_sessions import SessionMiddleware

    app = FastAPI()
    app.add_middleware(
        SessionMiddleware,
        settings=make_settings(rotate_interval=INTERVAL, rotate_grace=GRACE),
        backend=MemoryStore(clock=clock),
        clock=clock,
    )

    @app.get("/read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    @app.post("/set/{value}")
    async def set_value(value: str, request: Request) -> None:
        request.session["v"] = value

    async with client_for(app) as client:
        await client.post("/set/x")
        old = client.cookies["session"]
        clock.advance(INTERVAL)
        assert (await client.get("/read")).json() == {"v": "x"}
        new = client.cookies["session"]
        assert session_id(new) != session_id(old)
        response = await read_as(client, old)
        assert response.json() == {"v": "x"}
        assert "set-cookie" not in response.headers


# -- the previous ID ------------------------------------------------------------------------------


async def test_the_previous_id_reaches_the_session_in_the_grace_window_and_gets_no_cookie(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        clock.advance(GRACE - 1)
        response = await read_as(client, old)
        assert response.json() == {"a": 9, "b": 0}
        assert "set-cookie" not in response.headers
        response = await client.post("/set/b/5", headers=with_cookie(old))
        assert response.status_code == 200
        assert "set-cookie" not in response.headers, "never the previous ID back, never a new one"
        assert (await read_as(client, new)).json() == {"a": 9, "b": 5}
        assert await backend.raw.load(key(old)) is None, "the previous key is never written again"


async def test_the_previous_id_opens_nothing_after_the_grace_window_and_is_never_adopted(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        clock.advance(GRACE)
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}
        response = await client.post("/set/b/1", headers=with_cookie(old))
        fresh = response.cookies["session"]
        assert session_id(fresh) not in {session_id(old), session_id(new)}
        assert await backend.raw.load(key(old)) is None
        assert (await read_as(client, new)).json() == {"a": 9, "b": 0}


async def test_the_previous_id_opens_nothing_after_a_logout(backend: Backend, clock: FakeClock) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        await client.post("/logout", headers=with_cookie(new))
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}
        response = await client.post("/set/b/1", headers=with_cookie(old))
        assert response.status_code == 200
        assert session_id(response.cookies["session"]) not in {session_id(old), session_id(new)}
        assert await backend.raw.load(key(new)) is None, "a write through the dead ID resurrects nothing"


async def test_a_logout_sent_with_the_previous_id_ends_the_session(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        response = await client.post("/logout", headers=with_cookie(old))
        assert response.status_code == 200
        # The forward to the deleted session is left to its TTL: it leads nowhere.
        assert await backend.keys() == [forward_key(key(old))]
        assert (await read_as(client, new)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


async def test_the_previous_id_opens_nothing_after_a_regeneration(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        response = await client.post("/login", headers=with_cookie(new))
        logged_in = response.cookies["session"]
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, new)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, logged_in)).json() == {"a": 9, "b": 0}


async def test_the_previous_id_follows_one_rotation_never_two(backend: Backend, clock: FakeClock) -> None:
    """A session rotated again within the grace window (here: its rotation time overwritten) leaves
    the ID of two rotations ago opening nothing; the ID of one rotation ago still reaches it."""
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        first, second = await rotated(client, clock)
        forgotten = SessionChange({}, frozenset({ROTATION_FIELD}))
        assert await backend.raw.update(key(second), forgotten, ttl=3600) is WriteResult.OK
        third = (await read_as(client, second)).cookies["session"]
        assert len({session_id(first), session_id(second), session_id(third)}) == 3
        assert (await read_as(client, first)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, second)).json() == {"a": 9, "b": 0}


async def test_set_expiry_through_the_previous_id_is_a_409_and_saves_nothing(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, new = await rotated(client, clock)
        before = await backend.raw.load(key(new))
        response = await client.post("/remember", headers=with_cookie(old))
        assert response.status_code == 409
        assert "set-cookie" not in response.headers
        after = await backend.raw.load(key(new))
        assert before is not None
        assert after is not None
        assert after.meta == before.meta


async def test_a_forward_is_no_session_to_a_store_read_or_to_a_door_without_rotation(
    backend: Backend, clock: FakeClock
) -> None:
    app, _ = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old, _ = await rotated(client, clock)
    assert await backend.raw.load(key(old)) is None
    forward = await backend.raw.load(forward_key(key(old)))
    assert forward is not None
    assert set(forward.fields) == {FORWARD_FIELD}
    assert "." in forward_key(key(old))
    assert "." not in key(old), "no cookie's store key can be a forward's"
    plain, _ = rotating_app(backend.store, clock, rotate_interval=None)
    async with client_for(plain) as client:
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


# -- races ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["last_write_wins", "version_check"])
async def test_a_write_that_loaded_before_a_rotation_lands_on_the_rotated_session(
    backend: Backend, clock: FakeClock, concurrency: str
) -> None:
    app, race = rotating_app(backend.store, clock, concurrency=concurrency)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        held, rotating = await hold_then(client, race, "/set/b/5?tag=1", "/read")
        assert held.status_code == 200
        assert "set-cookie" not in held.headers, "the rotating request sent the new cookie"
        new = rotating.cookies["session"]
        assert session_id(new) != session_id(old)
        assert (await read_as(client, new)).json() == {"a": 9, "b": 5}
        assert await backend.raw.load(key(old)) is None


async def test_parallel_requests_due_for_rotation_rotate_the_session_once(
    backend: Backend, clock: FakeClock
) -> None:
    app, race = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        results = await overlap(client, race, "/read?tag=1", "/read?tag=2")
        assert "set-cookie" in results["1"].headers
        assert "set-cookie" not in results["2"].headers
        new = results["1"].cookies["session"]
        assert await backend.keys() == sorted([key(new), forward_key(key(old))])


async def test_a_logout_that_loaded_before_a_rotation_still_ends_the_session(
    backend: Backend, clock: FakeClock
) -> None:
    app, race = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        logout, rotating = await hold_then(client, race, "/logout?tag=1", "/read")
        new = rotating.cookies["session"]
        assert logout.status_code == 200
        assert await backend.keys() == []
        assert (await read_as(client, new)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


async def test_a_rotation_that_loaded_before_a_logout_brings_nothing_back(
    backend: Backend, clock: FakeClock
) -> None:
    app, race = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        rotating, logout = await hold_then(client, race, "/read?tag=1", "/logout")
        assert logout.status_code == 200
        assert rotating.status_code == 200
        assert "set-cookie" not in rotating.headers
        assert await backend.keys() == []
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}


async def test_a_login_that_loaded_before_a_rotation_regenerates_the_rotated_session(
    backend: Backend, clock: FakeClock
) -> None:
    app, race = rotating_app(backend.store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        login, rotating = await hold_then(client, race, "/login?tag=1", "/read")
        rotated_cookie = rotating.cookies["session"]
        logged_in = login.cookies["session"]
        assert (await read_as(client, logged_in)).json() == {"a": 9, "b": 0}
        assert (await read_as(client, rotated_cookie)).json() == {"a": 0, "b": 0}
        assert (await read_as(client, old)).json() == {"a": 0, "b": 0}
        assert await backend.keys() == [key(logged_in)]


class PausedRename:
    """Wraps a store: holds the first ``rename`` after it is called, until released."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.reached = anyio.Event()
        self.release = anyio.Event()

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        return await self.inner.load(key, touch=touch)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        return await self.inner.create(key, record, ttl=ttl)

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        return await self.inner.update(key, change, ttl=ttl, expected=expected)

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if not self.reached.is_set():
            self.reached.set()
            await self.release.wait()
        return await self.inner.rename(old_key, new_key, change, ttl=ttl, expected=expected)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_logout_between_the_forward_and_the_move_still_ends_the_session(
    backend: Backend, clock: FakeClock
) -> None:
    """The rotation has left its forward and not moved the record yet when a logout runs whole."""
    store = PausedRename(backend.store)
    app, _ = rotating_app(store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        results: dict[str, httpx.Response] = {}

        async def rotate() -> None:
            results["rotate"] = await client.get("/read")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                group.start_soon(rotate)
                await store.reached.wait()
                results["logout"] = await client.post("/logout", headers=with_cookie(old))
                store.release.set()
        assert results["logout"].status_code == 200
        assert "set-cookie" not in results["rotate"].headers
        assert await backend.keys() == []


async def test_a_write_due_for_rotation_while_another_request_rotates_gets_no_cookie_and_lands(
    backend: Backend, clock: FakeClock
) -> None:
    """The other rotation has left its forward, not moved the record yet: this request's write lands
    and is carried over; its response never sends the ID that is moving away."""
    store = PausedRename(backend.store)
    app, _ = rotating_app(store, clock)
    async with client_for(app) as client:
        old = await seed(client)
        clock.advance(INTERVAL)
        results: dict[str, httpx.Response] = {}

        async def rotate() -> None:
            results["rotate"] = await client.get("/read")

        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as group:
                group.start_soon(rotate)
                await store.reached.wait()
                results["write"] = await client.post("/set/b/5", headers=with_cookie(old))
                store.release.set()
        assert results["write"].status_code == 200
        assert "set-cookie" not in results["write"].headers
        new = results["rotate"].cookies["session"]
        assert (await read_as(client, new)).json() == {"a": 9, "b": 5}
