"""The library's own state in a session (``fastapi_sessions.state``): stored beside the app's data
under one reserved field, invisible to the app's model and dict, written only when it changes."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict

from fastapi_sessions import (
    SessionDict,
    SessionManager,
    SessionMiddleware,
    SessionValueError,
    request_session,
)
from fastapi_sessions.state import STATE_PREFIX
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import SECRET, make_settings
from .races import Race, hold_then

pytestmark = pytest.mark.anyio
BASE_URL = "https://testserver"


class Plain(BaseModel):
    name: str = ""


class Forbidding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""


class Allowing(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""


def typed_app(model: type[BaseModel], store: RecordingStore, clock: FakeClock) -> FastAPI:
    sessions = SessionManager(model, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[model, Depends(sessions.get_session)]

    @app.post("/mark/{value}")
    async def mark(value: str, session: Session) -> None:
        sessions.session_of(session).set_state("mark", value)

    @app.post("/name/{value}")
    async def name(value: str, session: Session) -> None:
        session.name = value  # type: ignore[attr-defined]

    @app.get("/read")
    async def read(session: Session) -> dict[str, Any]:
        live = sessions.session_of(session)
        return {"data": session.model_dump(), "state": live.state}

    @app.post("/regenerate")
    async def regenerate(session: Session) -> None:
        sessions.regenerate(session)

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    @app.post("/logout-with-note")
    async def logout_with_note(session: Session) -> None:
        sessions.destroy(session)
        sessions.session_of(session).set_state("note", "bye")

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


@pytest.fixture(params=[Plain, Forbidding, Allowing], ids=["ignore", "forbid", "allow"])
async def client(
    request: pytest.FixtureRequest, store: RecordingStore, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    app = typed_app(request.param, store, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        yield client


async def test_state_alone_creates_a_session_and_the_model_never_sees_it(
    client: httpx.AsyncClient,
) -> None:
    """Setting state on a new session stores it (and sends the cookie); the model, whether it ignores,
    forbids or keeps unknown fields, loads as if the field were not there."""
    response = await client.post("/mark/a")
    assert "set-cookie" in response.headers
    read = (await client.get("/read")).json()
    assert read == {"data": {"name": ""}, "state": {"mark": "a"}}


async def test_a_read_of_a_session_with_state_writes_nothing(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    """State that is read and not changed is not written back."""
    await client.post("/mark/a")
    before = dict(store.calls)
    assert (await client.get("/read")).json()["state"] == {"mark": "a"}
    assert store.calls.get("update", 0) == before.get("update", 0)


async def test_state_and_data_change_independently(client: httpx.AsyncClient) -> None:
    """A change of the app's data keeps the state, and a change of the state keeps the data."""
    await client.post("/mark/a")
    await client.post("/name/bob")
    await client.post("/mark/b")
    assert (await client.get("/read")).json() == {"data": {"name": "bob"}, "state": {"mark": "b"}}


async def test_regenerate_keeps_the_state_and_destroy_drops_it(client: httpx.AsyncClient) -> None:
    """The state follows the session to its new ID, and ends with it."""
    await client.post("/mark/a")
    await client.post("/regenerate")
    assert (await client.get("/read")).json()["state"] == {"mark": "a"}
    await client.post("/logout")
    assert (await client.get("/read")).json()["state"] == {}


async def test_state_set_after_destroy_starts_a_new_session(client: httpx.AsyncClient) -> None:
    """A note left at logout (a flash message) lives in a new session, not in the destroyed one."""
    await client.post("/mark/a")
    old = client.cookies["session"]
    response = await client.post("/logout-with-note")
    new = client.cookies["session"]
    assert "set-cookie" in response.headers
    assert new != old
    assert (await client.get("/read")).json()["state"] == {"note": "bye"}


async def test_concurrent_changes_of_different_entries_both_survive(
    store: RecordingStore, clock: FakeClock
) -> None:
    """Each entry is a field of its own: a request that sets one entry while another request, loaded
    before it, sets another (a flash message and a CSRF token, say) loses neither change."""
    app, race = raced_app(store, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        await client.post("/entry/seed/1")
        held, then = await hold_then(client, race, "/entry/a/1?tag=1", "/entry/b/2")
        assert held.status_code == then.status_code == 200
        assert (await client.get("/read")).json()["state"] == {"seed": "1", "a": "1", "b": "2"}


def raced_app(store: RecordingStore, clock: FakeClock) -> tuple[FastAPI, Race]:
    sessions = SessionManager(Plain, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Plain, Depends(sessions.get_session)]
    race = Race()

    @app.post("/entry/{name}/{value}")
    async def entry(name: str, value: str, session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.session_of(session).set_state(name, value)

    @app.get("/read")
    async def read(session: Session) -> dict[str, Any]:
        return {"state": sessions.session_of(session).state}

    return app, race


# -- the classic door ----------------------------------------------------------------------------


def dict_app(store: RecordingStore, clock: FakeClock) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, clock=clock, secret_key=SECRET)

    @app.post("/set/{key}/{value}")
    async def put(key: str, value: str, request: Request) -> None:
        request.session[key] = value

    @app.post("/mark/{value}")
    async def mark(value: str, request: Request) -> None:
        request_session(request).live().set_state("mark", value)

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return {"data": dict(request.session), "state": request_session(request).live().state}

    return app


async def test_the_dict_session_never_holds_the_state_field(
    store: RecordingStore, clock: FakeClock
) -> None:
    """``request.session`` is the app's data only: the library's state is stored beside it."""
    transport = httpx.ASGITransport(dict_app(store, clock))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await client.post("/set/user/bob")
        await client.post("/mark/a")
        assert (await client.get("/read")).json() == {"data": {"user": "bob"}, "state": {"mark": "a"}}


async def test_app_data_under_the_reserved_name_is_refused_and_nothing_is_lost(
    store: RecordingStore, clock: FakeClock
) -> None:
    """``request.session["$fs"] = ...`` fails the request with an error naming the key; the stored
    session, state included, stays as it was."""
    transport = httpx.ASGITransport(dict_app(store, clock), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await client.post("/set/user/bob")
        await client.post("/mark/a")
        with pytest.raises(SessionValueError, match=r"\$fs:x"):
            await client.post(f"/set/{STATE_PREFIX}x/x")
        assert (await client.get("/read")).json() == {"data": {"user": "bob"}, "state": {"mark": "a"}}


def test_a_dict_session_refuses_the_librarys_field_names_when_assigned() -> None:
    """``session["$fs:login"] = ...`` fails at the assignment (as a value that is not JSON does), so
    app code can never forge the library's state, and the error names the key."""
    session = SessionDict({})
    for assign in (
        lambda: session.__setitem__("$fs:login", {"user": "admin"}),
        lambda: session.update({"$fs:csrf": "x"}),
        lambda: session.setdefault("$fs:flash", []),
    ):
        with pytest.raises(SessionValueError, match=r"\$fs:"):
            assign()
    session["$price"] = 3  # other names starting with $ are the app's own
    assert dict(session) == {"$price": 3}
