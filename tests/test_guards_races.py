"""Flash messages and route guards under concurrent requests of one session, made deterministic by
holding a request after its load (tests/races.py), on the memory store and on Redis.

Each entry of the library's own state is a stored field of its own: a guard's time and a flash merge
like any two fields; two requests changing the flash messages are two writers of one field, and the
last wins (``SESSION_CONCURRENCY=last_write_wins``) or the later one gets a 409 (``version_check``).
A request in flight never brings back a session that was logged out meanwhile.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI

from fastapi_sessions import SessionManager
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import UserSession, make_settings
from .guards_support import STORES, open_store
from .races import Race, client_for, hold_then, overlap

pytestmark = pytest.mark.anyio
USED_WITHIN = 120.0


def build(store: RecordingStore, clock: FakeClock, **settings: Any) -> tuple[FastAPI, Race]:
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    Payment = Annotated[UserSession, Depends(sessions.require_fresh(used_within=USED_WITHIN))]
    race = Race()

    @app.post("/login")
    async def login(session: Session) -> None:
        # What the login helper writes (built in parallel; written directly here).
        live = sessions.session_of(session)
        live.regenerate()
        live.set_state("login", {"user": "ada", "at": clock.time(), "ua": None, "ip": None})

    @app.post("/pay")
    async def pay(session: Payment, tag: str = "") -> None:
        await race.hold(tag)

    @app.post("/logout")
    async def logout(session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.destroy(session)

    @app.post("/flash/{message}")
    async def flash(message: str, session: Session, tag: str = "") -> None:
        await race.hold(tag)
        sessions.flash(session, message)

    @app.post("/take")
    async def take(session: Session, tag: str = "") -> list[str]:
        await race.hold(tag)
        return [f.message for f in sessions.flashes(session)]

    return app, race


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RecordingStore]:
    async with open_store(request, clock) as store:
        yield store


async def test_a_guarded_request_in_flight_across_a_logout_never_brings_the_login_back(
    store: RecordingStore, clock: FakeClock
) -> None:
    """A used_within guard that records its use after a logout committed gets a 409: the logged-out
    session stays gone, and its cookie opens no guarded route."""
    app, race = build(store, clock)
    async with client_for(app) as client:
        await client.post("/login")
        old = client.cookies["session"]
        clock.advance(USED_WITHIN / 2)  # so the guarded request records its use: a write
        held, logout = await hold_then(client, race, "/pay?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        client.cookies.set("session", old)
        response = await client.post("/pay")
        assert response.status_code == 401
        assert response.json()["detail"]["error"] == "login_required"


async def test_a_flash_take_in_flight_across_a_logout_never_brings_the_session_back(
    store: RecordingStore, clock: FakeClock
) -> None:
    """Taking flash messages is a write; after a logout it fails (409) instead of recreating the
    session, and the messages went with the session."""
    app, race = build(store, clock)
    async with client_for(app) as client:
        await client.post("/flash/hello")
        old = client.cookies["session"]
        held, logout = await hold_then(client, race, "/take?tag=1", "/logout")
        assert logout.status_code == 200
        assert held.status_code == 409
        client.cookies.set("session", old)
        assert (await client.post("/take")).json() == []


async def test_a_guard_recording_its_time_and_a_flash_at_once_both_keep_their_change(
    store: RecordingStore, clock: FakeClock
) -> None:
    """The guard's time and the flash messages are different stored fields: overlapping requests
    that write one each merge, whichever commits last."""
    app, race = build(store, clock)
    async with client_for(app) as client:
        await client.post("/login")
        clock.advance(USED_WITHIN / 2)  # so the guarded request records its use: a write
        results = await overlap(client, race, "/pay?tag=1", "/flash/hello?tag=2")
        assert [results[tag].status_code for tag in "12"] == [200, 200]
        assert (await client.post("/take")).json() == ["hello"]
        clock.advance(USED_WITHIN)  # within the window of the use recorded at the overlap
        assert (await client.post("/pay")).status_code == 200


async def test_with_version_checks_a_flash_added_during_a_take_is_never_silently_lost(
    store: RecordingStore, clock: FakeClock
) -> None:
    """Both requests change the library's state: under version_check the later commit gets a 409
    (the client retries it), instead of one erasing the other's change without a word."""
    app, race = build(store, clock, concurrency="version_check")
    async with client_for(app) as client:
        await client.post("/flash/first")
        results = await overlap(client, race, "/take?tag=1", "/flash/second?tag=2")
        assert results["1"].json() == ["first"]
        assert results["2"].status_code == 409
        assert (await client.post("/flash/second")).status_code == 200
        assert (await client.post("/take")).json() == ["second"]
