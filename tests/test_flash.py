"""Flash messages: added in one request, read once in a later one, on both doors and every store.

Reading takes them (a read that finds some is a write, one that finds none writes nothing), a request
that does not read them leaves them, at most 32 wait, and a message left at logout lives in the new
session.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse

from fastapi_sessions import (
    Flash,
    SessionManager,
    SessionMiddleware,
    SessionUsageError,
    flash,
    get_flashed_messages,
    request_session,
)
from fastapi_sessions.flashes import MAX_FLASHES, add_flash
from fastapi_sessions.state import state_field
from fastapi_sessions.stores import SessionChange, WriteResult
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import UserSession, make_settings
from .guards_support import STORES, open_store

pytestmark = pytest.mark.anyio
BASE_URL = "https://testserver"
Pairs = list[list[str]]


def typed_app(store: RecordingStore, clock: FakeClock) -> FastAPI:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    def pairs(flashes: list[Flash]) -> Pairs:
        return [[f.category, f.message] for f in flashes]

    @app.post("/save")
    async def save(session: Session) -> RedirectResponse:
        sessions.flash(session, "Saved", "success")
        return RedirectResponse("/page", status_code=303)

    @app.post("/many/{count}")
    async def many(count: int, session: Session) -> None:
        for n in range(count):
            sessions.flash(session, str(n))

    @app.get("/page")
    async def page(session: Session) -> Pairs:
        return pairs(sessions.flashes(session))

    @app.get("/quiet")
    async def quiet(session: Session) -> int | None:
        return session.user_id

    @app.get("/twice")
    async def twice(session: Session) -> list[Pairs]:
        first = sessions.flashes(session)
        sessions.flash(session, "later")
        return [pairs(first), pairs(sessions.flashes(session))]

    @app.post("/login")
    async def login(session: Session) -> None:
        session.user_id = 7

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)
        sessions.flash(session, "You have been logged out")

    @app.post("/bad-category")
    async def bad_category(session: Session) -> None:
        sessions.flash(session, "x", "urgent")  # type: ignore[arg-type]

    return app


def classic_app(store: RecordingStore, clock: FakeClock) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, settings=make_settings(), clock=clock)

    @app.post("/save")
    async def save(request: Request) -> RedirectResponse:
        flash(request, "Saved", "success")
        return RedirectResponse("/page", status_code=303)

    @app.post("/many/{count}")
    async def many(count: int, request: Request) -> None:
        for n in range(count):
            flash(request, str(n))

    @app.get("/page")
    async def page(request: Request) -> Pairs:
        return [list(pair) for pair in get_flashed_messages(request, with_categories=True)]

    @app.get("/quiet")
    async def quiet(request: Request) -> int | None:
        user_id: int | None = request.session.get("user_id")
        return user_id

    @app.get("/twice")
    async def twice(request: Request) -> list[Pairs]:
        first = get_flashed_messages(request, with_categories=True)
        flash(request, "later")
        second = get_flashed_messages(request, with_categories=True)
        return [[list(p) for p in first], [list(p) for p in second]]

    @app.post("/login")
    async def login(request: Request) -> None:
        request.session["user_id"] = 7

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request_session(request).destroy()
        flash(request, "You have been logged out")

    @app.post("/bad-category")
    async def bad_category(request: Request) -> None:
        flash(request, "x", "urgent")  # type: ignore[arg-type]

    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RecordingStore]:
    async with open_store(request, clock) as store:
        yield store


@pytest.fixture(params=[typed_app, classic_app], ids=["typed", "classic"])
async def client(
    request: pytest.FixtureRequest, store: RecordingStore, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    build: Callable[[RecordingStore, FakeClock], FastAPI] = request.param
    transport = httpx.ASGITransport(build(store, clock))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


async def test_a_flash_survives_the_redirect_and_is_shown_once(client: httpx.AsyncClient) -> None:
    """Added before a redirect, shown by the page it redirects to, gone on the next visit."""
    response = await client.post("/save", follow_redirects=True)
    assert response.json() == [["success", "Saved"]]
    assert (await client.get("/page")).json() == []


async def test_a_request_that_does_not_read_the_flashes_leaves_them(client: httpx.AsyncClient) -> None:
    """Only a read takes them: a request in between that uses the session but not its flashes (an
    image, an API call) leaves them for the page."""
    await client.post("/save")
    await client.get("/quiet")
    await client.get("/quiet")
    assert (await client.get("/page")).json() == [["success", "Saved"]]


async def test_a_read_that_takes_flashes_writes_and_a_read_that_finds_none_does_not(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    """Taking messages is saved (so they are not shown twice); looking for none writes nothing, and
    a visitor without a session gets none and no session."""
    assert (await client.get("/page")).json() == []
    assert store.writes() == 0
    assert "set-cookie" not in (await client.get("/page")).headers
    await client.post("/login")
    store.reset()
    assert (await client.get("/page")).json() == []
    assert store.writes() == 0
    await client.post("/save")
    store.reset()
    assert (await client.get("/page")).json() == [["success", "Saved"]]
    assert store.calls["update"] == 1
    store.reset()
    assert (await client.get("/page")).json() == []
    assert store.writes() == 0


async def test_at_most_32_flashes_wait_and_the_oldest_are_dropped(client: httpx.AsyncClient) -> None:
    """MAX_FLASHES caps what a session holds, over one request or many: the newest are kept."""
    assert MAX_FLASHES == 32
    await client.post("/many/30")
    await client.post("/many/10")
    shown = [message for _, message in (await client.get("/page")).json()]
    assert shown == [str(n) for n in range(8, 30)] + [str(n) for n in range(10)]


async def test_a_flash_left_at_logout_lives_in_a_new_session(client: httpx.AsyncClient) -> None:
    """destroy() then flash: the old session is gone, the message starts a new one under a new ID."""
    await client.post("/login")
    old = client.cookies["session"]
    response = await client.post("/logout")
    assert "set-cookie" in response.headers
    assert client.cookies["session"] != old
    assert (await client.get("/quiet")).json() is None
    assert (await client.get("/page")).json() == [["info", "You have been logged out"]]
    client.cookies.set("session", old)
    assert (await client.get("/page")).json() == []


async def test_reading_twice_in_a_request_gives_the_same_flashes_and_new_ones_wait(
    client: httpx.AsyncClient,
) -> None:
    """A layout and its page may both ask: the second call gets what the first took; a message added
    in between is for the next request."""
    await client.post("/save")
    first, second = (await client.get("/twice")).json()
    assert first == second == [["success", "Saved"]]
    assert (await client.get("/page")).json() == [["info", "later"]]


async def test_an_unknown_category_is_refused(client: httpx.AsyncClient) -> None:
    """The category is one of info, success, warning, error: a typo fails loudly, naming them."""
    with pytest.raises(SessionUsageError, match="'info', 'success', 'warning', 'error'"):
        await client.post("/bad-category")


@pytest.mark.parametrize("store", ["memory"], indirect=True)
async def test_corrupt_stored_flashes_are_skipped_never_an_error(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    """An entry that is not a message costs that entry only; the good ones are shown."""
    await client.post("/login")
    (key,) = {key for method, key in store.keys if method == "create"}
    stored = (
        b'[{"message": "ok", "category": "info"}, {"message": 1}, "x", '
        b'{"message": "m", "category": "loud"}]'
    )
    change = SessionChange({state_field("flash"): stored}, frozenset(), None, None)
    assert await store.inner.update(key, change, ttl=600) is WriteResult.OK
    assert (await client.get("/page")).json() == [["info", "ok"]]
    assert (await client.get("/page")).json() == []


async def test_get_flashed_messages_filters_and_gives_plain_messages_as_flask_does(
    store: RecordingStore, clock: FakeClock
) -> None:
    """Without with_categories the messages are plain strings; category_filter keeps some categories
    and, as in Flask, takes the others all the same."""
    app = classic_app(store, clock)

    @app.post("/mixed")
    async def mixed(request: Request) -> None:
        flash(request, "a", "error")
        flash(request, "b")

    @app.get("/errors")
    async def errors(request: Request) -> list[str]:
        return get_flashed_messages(request, category_filter=["error"])

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        await client.post("/mixed")
        assert (await client.get("/errors")).json() == ["a"]
        assert (await client.get("/page")).json() == []


async def test_add_flash_refuses_a_message_that_is_not_text(
    store: RecordingStore, clock: FakeClock
) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)

    @app.post("/bad")
    async def bad(session: Annotated[UserSession, Depends(sessions.get_session)]) -> None:
        add_flash(sessions.session_of(session), 42)  # type: ignore[arg-type]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        with pytest.raises(SessionUsageError, match="is a str, not a int"):
            await client.post("/bad")


def test_flashes_have_a_default_category() -> None:
    assert Flash("Saved") == Flash("Saved", "info")


async def test_the_sanic_door_flashes_too(clock: FakeClock, store: RecordingStore) -> None:
    """SanicSessions.flash and .flashes: the same messages, on request.ctx.session."""
    pytest.importorskip("sanic")
    pytest.importorskip("sanic_testing")
    from sanic.request import Request as SanicRequest
    from sanic.response import HTTPResponse, json

    from fastapi_sessions.sanic import install

    from .sanic_support import Browser, new_app

    app = new_app()
    sessions = install(app, backend=store, settings=make_settings(), clock=clock)

    @app.post("/save")
    async def save(request: SanicRequest) -> HTTPResponse:
        sessions.flash(request.ctx.session, "Saved", "success")
        return json(None)

    @app.get("/page")
    async def page(request: SanicRequest) -> HTTPResponse:
        return json([[f.category, f.message] for f in sessions.flashes(request.ctx.session)])

    browser = Browser(app)
    await browser.post("/save")
    assert (await browser.get("/page")).json() == [["success", "Saved"]]
    assert (await browser.get("/page")).json() == []
