"""The Sanic door: ``request.ctx.session`` through Sanic's middleware, on the same session and engine.

The dict-like app is the article's (login, read, cart, logout) in Sanic; the typed app keeps a Pydantic
model and uses the handle's operations. Then the failure contract, the headers, and what happens after
the response started, as for the other doors.
"""

import asyncio
import gc
import logging
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("sanic")
pytest.importorskip("sanic_testing")

import anyio.lowlevel
import httpx
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sanic import Sanic
from sanic.exceptions import NotFound
from sanic.request import Request as SanicRequest
from sanic.response import HTTPResponse, json, text

from fastapi_sessions import (
    SessionConfigError,
    SessionDict,
    SessionMiddleware,
    SessionSettings,
    SessionTooLargeError,
    SessionUsageError,
)
from fastapi_sessions.sanic import SanicSessions, install
from fastapi_sessions.session import LATE_CHANGE
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import SECRET, go_down
from .sanic_support import ORIGIN, Browser, new_app, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


def shop_app(store: Any, clock: FakeClock | None = None, **options: Any) -> Sanic[Any, Any]:
    """The article's app in Sanic: request.ctx.session is a SessionDict."""
    app = new_app()
    options.setdefault("secret_key", SECRET)
    app.ctx.sessions = install(app, backend=store, clock=clock, **options)

    @app.get("/bare")
    async def bare(request: SanicRequest) -> HTTPResponse:
        return text("ok")

    @app.post("/login/<name>")
    async def login(request: SanicRequest, name: str) -> HTTPResponse:
        request.ctx.session.regenerate()
        request.ctx.session["username"] = name
        return json({"message": f"Logged in as {name}"})

    @app.get("/me")
    async def me(request: SanicRequest) -> HTTPResponse:
        session = request.ctx.session
        return json({"username": session.get("username"), "cart": session.get("cart", [])})

    @app.post("/cart/<item>")
    async def add(request: SanicRequest, item: str) -> HTTPResponse:
        cart: list[str] = request.ctx.session.setdefault("cart", [])
        cart.append(item)
        return json(cart)

    @app.post("/remember")
    async def remember(request: SanicRequest) -> HTTPResponse:
        request.ctx.session.set_expiry(timedelta(days=7))
        return text("ok")

    @app.post("/logout")
    async def logout(request: SanicRequest) -> HTTPResponse:
        request.ctx.session.clear()
        return json({"message": "Logged out"})

    return app


@pytest.fixture
def shop(store: RecordingStore, clock: FakeClock) -> Sanic[Any, Any]:
    return shop_app(store, clock)


@pytest.fixture
def browser(shop: Sanic[Any, Any]) -> Browser:
    return Browser(shop)


def sessions_of(app: Sanic[Any, Any]) -> SanicSessions[Any]:
    sessions: SanicSessions[Any] = app.ctx.sessions
    return sessions


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def session_cookie(response: httpx.Response) -> str | None:
    """The whole Set-Cookie header for the ``session`` cookie, or None."""
    return next((header for header in set_cookies(response) if header.startswith("session=")), None)


# -- the article's routes, dict-like ----------------------------------------------------------------


async def test_login_sets_a_secure_cookie_and_the_session_is_read_back(
    browser: Browser, store: RecordingStore
) -> None:
    response = await browser.post("/login/Alice")
    assert response.json() == {"message": "Logged in as Alice"}
    cookie = session_cookie(response)
    assert cookie is not None
    assert cookie.endswith("Path=/; Secure; HttpOnly; SameSite=Lax")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Cookie"
    assert (await browser.get("/me")).json() == {"username": "Alice", "cart": []}
    assert store.calls["create"] == 1


async def test_a_nested_change_is_saved(browser: Browser) -> None:
    await browser.post("/cart/apple")
    await browser.post("/cart/pear")
    assert (await browser.get("/me")).json()["cart"] == ["apple", "pear"]


async def test_clear_deletes_the_record_expires_the_cookie_and_a_replay_is_empty(
    browser: Browser, store: RecordingStore
) -> None:
    await browser.post("/login/Alice")
    old = browser.cookies["session"]
    response = await browser.post("/logout")
    assert "Max-Age=0" in (session_cookie(response) or "")
    assert len(store.inner) == 0, "the record is gone from the store"
    replay = await browser.replay("/me", old)
    assert replay.json() == {"username": None, "cart": []}
    assert session_cookie(replay) is None


async def test_login_regenerates_the_id_keeps_the_data_and_kills_the_old_id(browser: Browser) -> None:
    await browser.post("/cart/apple")
    before = browser.cookies["session"]
    await browser.post("/login/Alice")
    after = browser.cookies["session"]
    assert after.split(".")[0] != before.split(".")[0]
    assert (await browser.get("/me")).json() == {"username": "Alice", "cart": ["apple"]}
    assert (await browser.replay("/me", before)).json() == {"username": None, "cart": []}


async def test_set_expiry_makes_the_cookie_persistent(browser: Browser) -> None:
    await browser.post("/login/Alice")
    response = await browser.post("/remember")
    assert f"Max-Age={7 * 24 * 3600}" in (session_cookie(response) or "")


async def test_untouched_and_unchanged_requests_write_nothing_and_send_no_cookie(
    browser: Browser, store: RecordingStore
) -> None:
    untouched = await browser.get("/me")
    assert session_cookie(untouched) is None, "an untouched new session sets no cookie"
    await browser.post("/login/Alice")
    store.reset()
    for path in ("/me", "/bare"):
        response = await browser.get(path)
        assert response.status_code == 200
        assert set_cookies(response) == []
        assert "cache-control" not in response.headers
    assert store.writes() == 0
    assert store.calls["load"] == 2


async def test_a_request_without_the_cookie_costs_no_store_call(
    browser: Browser, store: RecordingStore
) -> None:
    for path in ("/me", "/bare"):
        response = await browser.get(path)
        assert response.status_code == 200
        assert set_cookies(response) == []
    assert store.calls == {}


async def test_every_response_of_the_door_varies_on_cookie(browser: Browser) -> None:
    """request.ctx.session is there for every route, so the door cannot tell which ones read it."""
    assert (await browser.get("/bare")).headers["vary"] == "Cookie"


# -- typed sessions ---------------------------------------------------------------------------------


class Cart(BaseModel):
    user: str | None = None
    items: list[str] = []


def typed_app(store: Any, clock: FakeClock) -> Sanic[Any, Any]:
    app = new_app()
    sessions = install(app, model=Cart, backend=store, clock=clock, secret_key=SECRET)
    app.ctx.sessions = sessions

    @app.post("/login/<name>")
    async def login(request: SanicRequest, name: str) -> HTTPResponse:
        session: Cart = request.ctx.session
        sessions.regenerate(session)
        session.user = name
        return json({"user": name})

    @app.post("/items/<item>")
    async def add(request: SanicRequest, item: str) -> HTTPResponse:
        session: Cart = request.ctx.session
        session.items.append(item)
        return json(session.items)

    @app.get("/me")
    async def me(request: SanicRequest) -> HTTPResponse:
        session: Cart = request.ctx.session
        return json(session.model_dump())

    @app.post("/remember")
    async def remember(request: SanicRequest) -> HTTPResponse:
        sessions.set_expiry(request.ctx.session, 3600)
        return text("ok")

    @app.post("/logout")
    async def logout(request: SanicRequest) -> HTTPResponse:
        sessions.destroy(request.ctx.session)
        return text("bye")

    return app


async def test_typed_login_regenerates_through_the_handle_and_keeps_the_cart(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = typed_app(store, clock)
    browser = Browser(app)
    assert (await browser.post("/items/tea")).json() == ["tea"]
    before = browser.cookies["session"]
    login = await browser.post("/login/ada")
    assert session_cookie(login) is not None
    assert browser.cookies["session"] != before
    assert (await browser.get("/me")).json() == {"user": "ada", "items": ["tea"]}
    assert (await browser.replay("/me", before)).json() == {"user": None, "items": []}
    assert isinstance(sessions_of(app).engine.codec.new(), Cart)


async def test_typed_set_expiry_and_destroy_through_the_handle(
    store: RecordingStore, clock: FakeClock
) -> None:
    browser = Browser(typed_app(store, clock))
    await browser.post("/login/ada")
    remembered = await browser.post("/remember")
    assert "Max-Age=3600" in (session_cookie(remembered) or "")
    cookie = browser.cookies["session"]
    logout = await browser.post("/logout")
    assert "Max-Age=0" in (session_cookie(logout) or "")
    assert len(store.inner) == 0
    assert (await browser.replay("/me", cookie)).json() == {"user": None, "items": []}


async def test_the_handle_refuses_a_session_of_a_finished_request(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = typed_app(store, clock)
    kept: list[Cart] = []

    @app.get("/keep")
    async def keep(request: SanicRequest) -> HTTPResponse:
        kept.append(request.ctx.session)
        return text("kept")

    await Browser(app).get("/keep")
    with pytest.raises(SessionUsageError, match=r"request\.ctx\.session of the current request"):
        sessions_of(app).regenerate(kept[0])


# -- failures ----------------------------------------------------------------------------------------


async def test_store_down_at_load_answers_503_with_retry_after_and_nothing_is_lost(
    browser: Browser, store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    await browser.post("/cart/apple")
    go_down(store)
    with caplog.at_level(logging.ERROR, logger="fastapi_sessions"):
        response = await browser.get("/me")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"detail": "Session store unavailable; try again shortly."}
    assert set_cookies(response) == []
    assert len([r for r in caplog.records if r.name == "fastapi_sessions"]) == 1, "logged once"
    store.failing = set()
    assert (await browser.get("/me")).json()["cart"] == ["apple"], "nothing was lost"


async def test_store_down_at_commit_answers_503_logged_once(
    browser: Browser, store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    await browser.post("/login/Alice")
    store.failing = {"update"}
    with caplog.at_level(logging.ERROR, logger="fastapi_sessions"):
        response = await browser.post("/cart/apple")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"
    assert set_cookies(response) == []
    assert [r.levelname for r in caplog.records if r.name == "fastapi_sessions"] == ["ERROR"]
    store.failing = set()
    assert (await browser.get("/me")).json() == {"username": "Alice", "cart": []}


async def test_a_session_destroyed_by_another_request_answers_409(
    shop: Sanic[Any, Any], browser: Browser, store: RecordingStore
) -> None:
    @shop.post("/race")
    async def race(request: SanicRequest) -> HTTPResponse:
        key = sessions_of(shop).session_of(request.ctx.session).key
        assert key is not None
        await store.inner.delete(key)  # another request logs the user out meanwhile
        request.ctx.session["username"] = "Mallory"
        return text("ok")

    await browser.post("/login/Alice")
    response = await browser.post("/race")
    assert response.status_code == 409
    assert response.json() == {"detail": "Session conflict; retry the request."}
    assert set_cookies(response) == []
    assert len(store.inner) == 0, "nothing brought the session back"


async def test_degrade_serves_a_read_only_empty_session(store: RecordingStore, clock: FakeClock) -> None:
    browser = Browser(shop_app(store, clock, on_store_error="degrade"))
    await browser.post("/login/Alice")
    go_down(store)
    response = await browser.get("/me")
    assert response.status_code == 200
    assert response.json() == {"username": None, "cart": []}
    assert set_cookies(response) == []
    refused = await browser.post("/cart/apple")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert (await browser.post("/logout")).status_code == 503
    store.failing = set()
    assert (await browser.get("/me")).json()["username"] == "Alice"


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "a.b.c", "x" * 5000, "", '"quoted"', "caf\u00e9".encode(), b"\xff\xfe"],
    ids=["garbage", "dots", "huge", "empty", "quoted", "utf-8", "not-utf-8"],
)
async def test_a_bad_cookie_gives_a_fresh_session_and_no_store_call(
    browser: Browser, store: RecordingStore, cookie: str | bytes
) -> None:
    response = await browser.replay("/me", cookie)
    assert response.status_code == 200
    assert response.json() == {"username": None, "cart": []}
    assert store.calls == {}


async def test_a_tampered_cookie_gives_a_fresh_session_never_a_500(browser: Browser) -> None:
    await browser.post("/login/Alice")
    session_id, rest = browser.cookies["session"].split(".", 1)
    forged = ("A" if session_id[0] != "A" else "B") + session_id[1:] + "." + rest
    response = await browser.replay("/me", forged)
    assert response.status_code == 200
    assert response.json() == {"username": None, "cart": []}


async def test_a_5xx_saves_nothing_and_a_4xx_saves(
    shop: Sanic[Any, Any], browser: Browser, store: RecordingStore
) -> None:
    @shop.post("/crash")
    async def crash(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["username"] = "crashed"
        raise RuntimeError("the handler failed")

    @shop.post("/missing")
    async def missing(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["username"] = "not found, but saved"
        raise NotFound("no such thing")

    await browser.post("/login/Alice")
    crashed = await browser.post("/crash")
    assert crashed.status_code == 500
    assert set_cookies(crashed) == []
    assert (await browser.get("/me")).json()["username"] == "Alice"
    assert (await browser.post("/missing")).status_code == 404
    assert (await browser.get("/me")).json()["username"] == "not found, but saved"


async def test_a_session_over_the_size_limit_is_answered_500_and_keeps_the_stored_data(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = shop_app(store, clock, max_size=1000)

    @app.post("/big")
    async def big(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["blob"] = "x" * 2000
        return text("stored?")

    browser = Browser(app)
    await browser.post("/login/Alice")
    response = await browser.post("/big")
    assert response.status_code == 500, "not the handler's 200: the change was not saved"
    assert set_cookies(response) == []
    assert (await browser.get("/me")).json()["username"] == "Alice"
    assert sessions_of(app).live == {}


async def test_the_apps_own_exception_handler_answers_a_commit_failure(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = shop_app(store, clock, max_size=1000)

    @app.exception(SessionTooLargeError)
    async def too_large(request: SanicRequest, exc: SessionTooLargeError) -> HTTPResponse:
        return json({"limit": exc.limit}, status=413)

    @app.post("/big")
    async def big(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["blob"] = "x" * 2000
        return text("stored?")

    response = await Browser(app).post("/big")
    assert (response.status_code, response.json()) == (413, {"limit": 1000})
    assert set_cookies(response) == []


# -- headers -----------------------------------------------------------------------------------------


async def test_the_apps_own_cookies_and_headers_are_kept(shop: Sanic[Any, Any], browser: Browser) -> None:
    @shop.post("/theme/<theme>")
    async def theme(request: SanicRequest, theme: str) -> HTTPResponse:
        request.ctx.session["theme"] = theme
        response = json({"theme": theme})
        response.add_cookie("theme", theme, httponly=True)
        response.add_cookie("seen", "1")
        response.headers["vary"] = "Accept-Encoding"
        response.headers["cache-control"] = "public, max-age=600"
        return response

    response = await browser.post("/theme/dark")
    names = [header.split("=", 1)[0] for header in set_cookies(response)]
    assert sorted(names) == ["seen", "session", "theme"]
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    assert response.headers["cache-control"] == 'public, max-age=600, no-cache="Set-Cookie"'
    assert browser.cookies["theme"] == "dark"


async def test_headers_of_the_app_that_are_safe_already_are_left_as_they_are(
    shop: Sanic[Any, Any], browser: Browser
) -> None:
    @shop.post("/private")
    async def private(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["n"] = 1
        return text("ok", headers={"vary": "Accept, Cookie", "cache-control": "private, max-age=60"})

    response = await browser.post("/private")
    assert session_cookie(response) is not None
    assert response.headers.get_list("vary") == ["Accept, Cookie"]
    assert response.headers.get_list("cache-control") == ["private, max-age=60"]


async def test_the_apps_middleware_runs_inside_the_door(shop: Sanic[Any, Any], browser: Browser) -> None:
    """Its request middleware can read the session; what its response middleware does is seen at
    commit: a change to the session is saved, and a Cache-Control it sets cannot cache our cookie."""

    @shop.on_request
    async def who(request: SanicRequest) -> None:
        request.ctx.who = request.ctx.session.get("username", "nobody")

    @shop.on_response
    async def stamp(request: SanicRequest, response: HTTPResponse) -> None:
        request.ctx.session["stamped"] = request.ctx.who
        response.headers["cache-control"] = "public, max-age=60"

    @shop.get("/stamp")
    async def stamp_route(request: SanicRequest) -> HTTPResponse:
        return json(dict(request.ctx.session))

    await browser.post("/login/Alice")  # stamped "nobody": the middleware ran before the login
    await browser.get("/stamp")
    assert (await browser.get("/stamp")).json() == {"username": "Alice", "stamped": "Alice"}
    browser.cookies.clear()
    new_visitor = await browser.get("/stamp")
    assert session_cookie(new_visitor) is not None, "the middleware's change made a session"
    assert new_visitor.headers["cache-control"] == 'public, max-age=60, no-cache="Set-Cookie"'


# -- after the response started, and the registry ------------------------------------------------------


async def test_a_change_in_a_streaming_body_is_not_saved_and_is_reported(
    shop: Sanic[Any, Any], browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    refused: list[type[Exception]] = []

    @shop.get("/stream")
    async def stream(request: SanicRequest) -> None:
        response = await request.respond(content_type="text/plain")
        await response.send(request.ctx.session.get("username") or "nobody")
        request.ctx.session["username"] = "late"
        try:
            request.ctx.session.regenerate()
        except SessionUsageError as exc:
            refused.append(type(exc))
        await response.eof()

    await browser.post("/login/Alice")
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        response = await browser.get("/stream")
    assert response.text == "Alice"
    assert refused == [SessionUsageError], "too late to regenerate"
    assert LATE_CHANGE in caplog.messages
    assert (await browser.get("/me")).json()["username"] == "Alice"


async def test_a_commit_failure_while_streaming_answers_503_without_the_handlers_body(
    shop: Sanic[Any, Any], browser: Browser, store: RecordingStore
) -> None:
    @shop.post("/stream")
    async def stream(request: SanicRequest) -> None:
        request.ctx.session["username"] = "streamer"
        response = await request.respond(content_type="text/plain")
        await response.send("the handler's body")
        await response.eof()

    await browser.post("/login/Alice")
    store.failing = {"update"}
    response = await browser.post("/stream")
    assert response.status_code == 503
    assert response.json() == {"detail": "Session store unavailable; try again shortly."}


async def test_a_response_middleware_that_replaces_the_response_is_reported(
    shop: Sanic[Any, Any], browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    @shop.on_response
    async def replace(request: SanicRequest, response: HTTPResponse) -> HTTPResponse | None:
        return text("replaced") if request.path in ("/cart/apple", "/me") else None

    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        response = await browser.post("/cart/apple")
    assert response.text == "replaced"
    assert any("NOT saved" in message for message in caplog.messages)
    assert sessions_of(shop).live == {}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await browser.get("/me")  # replaced too, but nothing was lost
    assert caplog.messages == []


async def test_a_websocket_reads_the_session_and_a_change_there_is_reported(
    shop: Sanic[Any, Any], browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """Sanic answers the handshake without response middleware: the session is read-only there."""
    seen: list[Any] = []

    @shop.websocket("/ws")
    async def ws(request: SanicRequest, socket: Any) -> None:
        seen.append(request.ctx.session.get("username"))
        request.ctx.session["username"] = "socket"
        try:
            request.ctx.session.destroy()
        except SessionUsageError as exc:
            seen.append(type(exc))

    await browser.post("/login/Alice")
    cookie = browser.cookies["session"]
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await browser.client.websocket("/ws", headers={"cookie": f"session={cookie}"})
    assert seen == ["Alice", SessionUsageError], "read, and too late to destroy"
    assert LATE_CHANGE in caplog.messages
    assert sessions_of(shop).live == {}
    assert (await browser.get("/me")).json()["username"] == "Alice"


async def test_the_registry_is_empty_after_every_kind_of_request(
    shop: Sanic[Any, Any], browser: Browser, store: RecordingStore
) -> None:
    @shop.post("/crash")
    async def crash(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["n"] = 1
        raise RuntimeError("the handler failed")

    @shop.get("/stream")
    async def stream(request: SanicRequest) -> None:
        response = await request.respond(content_type="text/plain")
        await response.send("streamed")
        await response.eof()

    live = sessions_of(shop).live
    steps = [("POST", "/login/Alice"), ("GET", "/me"), ("GET", "/bare"), ("POST", "/cart/a")]
    steps += [("POST", "/crash"), ("GET", "/stream"), ("GET", "/no/such/route"), ("POST", "/logout")]
    for method, path in steps:
        await browser.request(method, path)
        assert live == {}, f"{method} {path} left its session registered"
    await browser.post("/login/Alice")
    go_down(store)
    assert (await browser.get("/me")).status_code == 503
    store.failing = {"update"}
    assert (await browser.post("/cart/b")).status_code == 503
    assert live == {}


async def test_a_cancelled_request_lets_go_of_its_session_when_it_is_collected(
    shop: Sanic[Any, Any], browser: Browser
) -> None:
    """A cancelled request reaches neither the response middleware nor the end-of-request signal:
    the finalizer on the request is what unregisters its session."""

    @shop.get("/cancelled")
    async def cancelled(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["n"] = 1
        raise asyncio.CancelledError  # as when the client goes away mid-request

    live = sessions_of(shop).live
    # In a task of its own, as a server runs a connection: Sanic keeps the current request in a
    # context variable, which would otherwise keep it alive in this test's context.
    task = asyncio.ensure_future(browser.client.request("GET", ORIGIN + "/cancelled", gather_request=False))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(live) == 1, "no signal came"
    del task
    await anyio.lowlevel.checkpoint()  # the loop runs the callbacks the ended task left (no waiting)
    gc.collect()  # the request sits in reference cycles (its traceback among them)
    assert live == {}


# -- set-up -------------------------------------------------------------------------------------------


def test_installing_twice_on_one_app_is_refused(store: RecordingStore) -> None:
    app = new_app()
    install(app, backend=store, secret_key=SECRET)
    with pytest.raises(SessionConfigError, match="Call install\\(app\\) once"):
        install(app, backend=store, secret_key=SECRET, cookie_name="other")


def test_the_options_are_the_middlewares_and_an_unknown_one_is_refused(store: RecordingStore) -> None:
    sessions = install(
        new_app(),
        backend=store,
        secret_key=SECRET,
        cookie_https_only=False,
        session_cookie="sid",
        max_age=3600,
        same_site="strict",
    )
    settings = sessions.settings
    assert (settings.cookie_secure, settings.cookie_name, settings.max_age) == (False, "sid", 3600)
    assert settings.cookie_samesite == "strict"
    assert sessions.store is store
    with pytest.raises(SessionConfigError, match="unknown option 'cookie_secured'"):
        install(new_app(), backend=store, secret_key=SECRET, cookie_secured=False)
    with pytest.raises(SessionConfigError, match="pass one or the other"):
        install(new_app(), settings=SessionSettings(secret_key=SECRET), max_age=60)


def test_a_model_without_defaults_is_refused_at_install() -> None:
    class Strict(BaseModel):
        user: str

    with pytest.raises(SessionConfigError, match="give these fields a default: user"):
        install(new_app(), model=Strict, secret_key=SECRET)


async def test_plain_http_works_with_the_secure_flag_turned_off(
    store: RecordingStore, clock: FakeClock
) -> None:
    browser = Browser(shop_app(store, clock, cookie_secure=False), origin="http://mockserver")
    login = await browser.post("/login/Alice")
    assert "Secure" not in (session_cookie(login) or "")
    assert (await browser.get("/me")).json()["username"] == "Alice"


async def test_a_store_made_from_the_store_url_is_closed_when_the_server_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    app = new_app()
    sessions = install(app)
    owned = sessions.store
    assert isinstance(owned, MemoryStore)

    @app.post("/set")
    async def set_(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["n"] = 1
        return text("set")

    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(owned, "aclose", aclose)
    async with serving(app) as client:
        assert (await client.post("/set")).status_code == 200
        assert (await client.post("/set")).status_code == 200
        assert closed == [], "open while the server runs"
    assert closed == [True], "closed when it stopped"


async def test_a_store_passed_in_is_never_closed(store: RecordingStore, clock: FakeClock) -> None:
    app = shop_app(store, clock)
    async with serving(app) as client:
        await client.post("/login/Alice")
    await sessions_of(app).close_owned_store()
    assert store.calls["aclose"] == 0
    assert len(store.inner) == 1


# -- next to another door -------------------------------------------------------------------------------


async def test_a_sanic_cookie_under_another_doors_name_opens_nothing(
    store: RecordingStore, clock: FakeClock
) -> None:
    """Sanic and a FastAPI app share a store and a key; each cookie opens only its own door."""
    sanic_app = shop_app(store, clock)
    fastapi_app = FastAPI()
    fastapi_app.add_middleware(
        SessionMiddleware, backend=store, clock=clock, secret_key=SECRET, cookie_name="admin"
    )

    @fastapi_app.post("/login/{name}")
    async def admin_login(name: str, request: Request) -> None:
        request.session["username"] = name

    @fastapi_app.get("/me")
    async def admin_me(request: Request) -> dict[str, Any]:
        return {"username": request.session.get("username")}

    browser = Browser(sanic_app)
    await browser.post("/login/Alice")
    public = browser.cookies["session"]
    transport = httpx.ASGITransport(fastapi_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as admin:
        await admin.post("/login/root")
        private = admin.cookies["admin"]
        admin.cookies.clear()
        sanic_cookie = await admin.get("/me", headers={"cookie": f"admin={public}"})
        assert sanic_cookie.json() == {"username": None}
        own_cookie = await admin.get("/me", headers={"cookie": f"admin={private}"})
        assert own_cookie.json() == {"username": "root"}
    assert (await browser.replay("/me", private)).json() == {"username": None, "cart": []}
    assert (await browser.replay("/me", public)).json()["username"] == "Alice"


def test_the_core_never_imports_sanic() -> None:
    import subprocess
    import sys

    code = "import sys, fastapi_sessions, fastapi_sessions.stores; sys.exit('sanic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_session_dict_is_what_the_dict_door_serves(store: RecordingStore) -> None:
    sessions = install(new_app(), backend=store, secret_key=SECRET)
    assert isinstance(sessions.engine.codec.new(), SessionDict)


# -- a real Redis ----------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_the_shop_on_a_real_redis(redis_server_url: str, redis_prefix: str) -> None:
    from fastapi_sessions.stores.redis import RedisStore

    store = RedisStore.from_url(redis_server_url, prefix=redis_prefix)
    try:
        browser = Browser(shop_app(store))
        await browser.post("/cart/apple")
        await browser.post("/login/Alice")
        assert (await browser.get("/me")).json() == {"username": "Alice", "cart": ["apple"]}
        cookie = browser.cookies["session"]
        await browser.post("/logout")
        assert (await browser.replay("/me", cookie)).json() == {"username": None, "cart": []}
    finally:
        await store.aclose()


async def test_the_sanic_door_rotates_the_id_and_the_previous_one_works_only_in_the_grace_window(
    store: RecordingStore, clock: FakeClock
) -> None:
    browser = Browser(shop_app(store, clock, rotate_interval=600, rotate_grace=30))
    await browser.post("/cart/apple")
    old = browser.cookies["session"]
    clock.advance(600)
    assert (await browser.get("/me")).json()["cart"] == ["apple"]
    new = browser.cookies["session"]
    assert new.split(".")[0] != old.split(".")[0]
    replay = await browser.replay("/me", old)
    assert replay.json()["cart"] == ["apple"]
    assert session_cookie(replay) is None
    clock.advance(30)
    assert (await browser.replay("/me", old)).json()["cart"] == []
    assert (await browser.replay("/me", new)).json()["cart"] == ["apple"]


# -- users and their sessions -------------------------------------------------------------------


async def test_the_sanic_door_logs_in_lists_and_revokes(clock: FakeClock) -> None:
    app = new_app()
    sessions = install(
        app, backend=MemoryStore(clock=clock), clock=clock, secret_key=SECRET, record_ip=True
    )

    @app.post("/login/<name>")
    async def login(request: SanicRequest, name: str) -> HTTPResponse:
        sessions.login(request.ctx.session, name, request)
        return text("ok")

    @app.post("/login-as-typed/<name>")
    async def login_as_typed(request: SanicRequest, name: str) -> HTTPResponse:
        # The typed door's spelling works on Sanic too (a Sanic request has .ip, not .client).
        sessions.users.login(request.ctx.session, name, request)  # type: ignore[arg-type]
        return text("ok")

    @app.get("/sessions/<name>")
    async def listing(request: SanicRequest, name: str) -> HTTPResponse:
        found = await sessions.users.list_sessions(name, current=request.ctx.session)
        return json([{"ua": s.user_agent, "ip": s.ip, "current": s.current} for s in found])

    @app.post("/revoke-all/<name>")
    async def revoke_all(request: SanicRequest, name: str) -> HTTPResponse:
        return json(await sessions.users.revoke_all(name))

    browser = Browser(app)
    response = await browser.post("/login/alice", headers={"user-agent": "Sanic phone"})
    assert session_cookie(response) is not None
    (listed,) = (await browser.get("/sessions/alice")).json()
    assert listed["ua"] == "Sanic phone"
    assert listed["current"] is True
    assert listed["ip"], "SESSION_RECORD_IP records request.ip"
    assert (await browser.post("/revoke-all/alice")).json() == 1
    assert (await browser.get("/sessions/alice")).json() == []
    response = await browser.post("/login-as-typed/bob", headers={"user-agent": "Sanic laptop"})
    assert response.status_code == 200
    (listed,) = (await browser.get("/sessions/bob")).json()
    assert (listed["ua"], listed["current"]) == ("Sanic laptop", True)
    assert listed["ip"]
