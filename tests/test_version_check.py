"""``SESSION_CONCURRENCY=version_check`` on every shipped store: only a change to the *same* field
conflicts. Many requests that each change a different field, all loaded before any commits, all
succeed; two that change one field: the later gets a 409.

Each racing request is held after its load until every one has loaded, then all are let go at once:
the commits really run together, on the memory store, on Redis and on a ``Backend`` (whose adapter
checks and writes in two steps).
"""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, create_model

from fastapi_sessions import SessionConfigError, SessionManager, SessionStore
from fastapi_sessions.backends import as_store
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .backend_support import DictBackend
from .conftest import make_settings

pytestmark = pytest.mark.anyio

FIELDS = 20
Many: type[BaseModel] = create_model("Many", **{f"f{i}": (int, 0) for i in range(FIELDS)})  # type: ignore[call-overload]


CLOCK = FakeClock(start=time.time())  # the app's and the stores' (Redis keeps real time)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), "backend", "recording"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore(clock=CLOCK)
    elif request.param == "recording":  # the test helper passes expected= through
        yield RecordingStore(MemoryStore(clock=CLOCK))
    elif request.param == "backend":
        yield as_store(DictBackend(CLOCK), clock=CLOCK)
    else:
        pytest.importorskip("redis")
        from fastapi_sessions.stores.redis import RedisStore

        url: str = request.getfixturevalue("redis_server_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        redis_store = RedisStore.from_url(url, prefix=prefix)
        yield redis_store
        await redis_store.aclose()


class Gate:
    """Holds each tagged request after its load until :meth:`open`; counts the loads."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.loaded = 0
        self.all_loaded = anyio.Event()
        self.go = anyio.Event()

    async def hold(self) -> None:
        self.loaded += 1
        if self.loaded == self.expected:
            self.all_loaded.set()
        await self.go.wait()


def build(store: SessionStore, gate: Gate) -> FastAPI:
    settings = make_settings(concurrency="version_check")
    sessions = SessionManager(Many, settings=settings, store=store, clock=CLOCK)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Many, Depends(sessions.get_session)]  # type: ignore[valid-type]

    @app.post("/set/{field}/{value}")
    async def set_field(field: str, value: int, session: Session, held: bool = False) -> None:
        if held:
            await gate.hold()
        setattr(session, field, value)

    @app.get("/read")
    async def read(session: Session) -> Any:
        return session

    return app


async def race(client: httpx.AsyncClient, gate: Gate, paths: list[str]) -> list[int]:
    """Run every path (held after its load) until all have loaded, then let them commit at once."""
    statuses: list[int] = []

    async def run(path: str) -> None:
        statuses.append((await client.post(path + "?held=true")).status_code)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            for path in paths:
                group.start_soon(run, path)
            await gate.all_loaded.wait()
            gate.go.set()
    return statuses


async def test_concurrent_changes_to_different_fields_never_conflict(store: SessionStore) -> None:
    gate = Gate(FIELDS)
    transport = httpx.ASGITransport(build(store, gate))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        assert (await client.post("/set/f0/100")).status_code == 200  # the session exists
        statuses = await race(client, gate, [f"/set/f{i}/{i + 1}" for i in range(FIELDS)])
        assert statuses.count(409) == 0, statuses
        assert (await client.get("/read")).json() == {f"f{i}": i + 1 for i in range(FIELDS)}


async def test_concurrent_changes_to_the_same_field_still_conflict(store: SessionStore) -> None:
    gate = Gate(2)
    transport = httpx.ASGITransport(build(store, gate))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        assert (await client.post("/set/f0/100")).status_code == 200
        statuses = await race(client, gate, ["/set/f1/1", "/set/f1/2"])
        assert sorted(statuses) == [200, 409]
        winner = (await client.get("/read")).json()["f1"]
        assert winner in (1, 2)


class StoreOfTheOldProtocol(MemoryStore):
    """A custom store written for 0.1.0, whose update() and rename() took ``expected_version``."""

    async def update(self, key, change, *, ttl, expected_version=None):  # type: ignore[no-untyped-def,override]
        assert expected_version is None
        return await super().update(key, change, ttl=ttl)

    async def rename(self, old_key, new_key, change, *, ttl, expected_version=None):  # type: ignore[no-untyped-def,override]
        assert expected_version is None
        return await super().rename(old_key, new_key, change, ttl=ttl)


async def test_a_store_without_expected_is_refused_at_start_up_with_version_checks_only() -> None:
    with pytest.raises(SessionConfigError, match=r"StoreOfTheOldProtocol\.update\(\) does not"):
        SessionManager(
            Many, settings=make_settings(concurrency="version_check"), store=StoreOfTheOldProtocol()
        )
    # The default mode never passes expected=: such a store keeps working there.
    sessions = SessionManager(Many, settings=make_settings(), store=StoreOfTheOldProtocol())
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Many, Depends(sessions.get_session)]  # type: ignore[valid-type]

    @app.post("/set/{field}/{value}")
    async def set_field(field: str, value: int, session: Session) -> None:
        setattr(session, field, value)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        for path in ("/set/f0/1", "/set/f1/2"):  # a create, then an update
            assert (await client.post(path)).status_code == 200
