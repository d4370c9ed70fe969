"""Route guards: a 401 without a logged-in session, the session cookie as an OpenAPI security scheme,
and per-route freshness (a login at most N seconds old, a session used within N seconds), on both
doors and every store, with time from the FakeClock.

"Logged in" is ``state["login"]`` (the shared contract). The login helper that writes it is built
separately; these tests write it with ``Session.set_state`` directly, as that helper does.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import RedirectResponse
from starlette.testclient import WebSocketDenialResponse

from fastapi_sessions import (
    RequireLogin,
    SessionConfigError,
    SessionDict,
    SessionLoginRequired,
    SessionManager,
    SessionMiddleware,
    SessionUsageError,
    request_session,
    require_login,
    session_users,
)
from fastapi_sessions.guards import scheme_name
from fastapi_sessions.session import Session as LiveSession
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import TestClient, UserSession, go_down, make_settings
from .guards_support import STORES, open_store

pytestmark = pytest.mark.anyio
BASE_URL = "https://testserver"
LOGIN_WITHIN = 300.0
USED_WITHIN = 120.0


def log_in(session: LiveSession[Any], clock: FakeClock) -> None:
    """What the login helper writes (built in parallel; written directly here)."""
    session.regenerate()
    session.set_state("login", {"user": "ada", "at": clock.time(), "ua": None, "ip": None})


def typed_app(store: RecordingStore, clock: FakeClock, **settings: Any) -> FastAPI:
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    LoggedIn = Annotated[UserSession, Depends(sessions.require_login)]
    Admin = Annotated[UserSession, Depends(sessions.require_fresh(login_within=LOGIN_WITHIN))]
    Payment = Annotated[UserSession, Depends(sessions.require_fresh(used_within=USED_WITHIN))]

    @app.post("/login")
    async def login(session: Session) -> None:
        log_in(sessions.session_of(session), clock)

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    @app.post("/corrupt-login")
    async def corrupt_login(session: Session) -> None:
        sessions.session_of(session).set_state("login", {"user": "ada", "at": "yesterday"})

    @app.get("/plain")
    async def plain(session: Session) -> int | None:
        return session.user_id

    @app.get("/me")
    async def me(session: LoggedIn) -> str:
        return type(session).__name__

    @app.get("/admin")
    async def admin(session: Admin) -> str:
        return "admin"

    @app.get("/pay")
    async def pay(session: Payment) -> str:
        return "pay"

    @app.get("/open")
    async def open_route() -> str:
        return "open"

    return app


def classic_app(store: RecordingStore, clock: FakeClock, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, settings=make_settings(**settings), clock=clock)
    cookie_name = settings.get("cookie_name", "session")
    LoggedIn = Annotated[SessionDict, Depends(RequireLogin(cookie_name=cookie_name))]
    Admin = Annotated[
        SessionDict, Depends(RequireLogin(cookie_name=cookie_name, login_within=LOGIN_WITHIN))
    ]
    Payment = Annotated[
        SessionDict, Depends(RequireLogin(cookie_name=cookie_name, used_within=USED_WITHIN))
    ]

    @app.post("/login")
    async def login(request: Request) -> None:
        log_in(request_session(request).live(), clock)

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request_session(request).destroy()

    @app.post("/corrupt-login")
    async def corrupt_login(request: Request) -> None:
        request_session(request).live().set_state("login", {"user": "ada", "at": "yesterday"})

    @app.get("/plain")
    async def plain(request: Request) -> int | None:
        user_id: int | None = request.session.get("user_id")
        return user_id

    @app.get("/me")
    async def me(session: LoggedIn) -> str:
        return type(session).__name__

    @app.get("/admin")
    async def admin(session: Admin) -> str:
        return "admin"

    @app.get("/pay")
    async def pay(session: Payment) -> str:
        return "pay"

    @app.get("/open")
    async def open_route() -> str:
        return "open"

    return app


Build = Callable[..., FastAPI]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RecordingStore]:
    async with open_store(request, clock) as store:
        yield store


@pytest.fixture(params=[typed_app, classic_app], ids=["typed", "classic"])
def build(request: pytest.FixtureRequest) -> Build:
    door: Build = request.param
    return door


@pytest.fixture
async def client(build: Build, store: RecordingStore, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(build(store, clock))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def problem(response: httpx.Response) -> str:
    """The ``error`` of a guard's 401, checking the rest of its shape."""
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert set(detail) == {"error", "message"}
    error: str = detail["error"]
    assert response.headers["www-authenticate"] == f'APIKey error="{error}"'
    return error


# -- required sessions -----------------------------------------------------------------------------


async def test_a_guarded_route_answers_401_without_a_logged_in_session(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    """No cookie, or a session nobody logged in to: 401 login_required, and nothing is written."""
    assert problem(await client.get("/me")) == "login_required"
    await client.get("/plain")
    response = await client.get("/me")
    assert problem(response) == "login_required"
    assert "set-cookie" not in response.headers
    assert store.writes() == 0


async def test_a_logged_in_session_passes_and_the_route_gets_the_session(
    client: httpx.AsyncClient, build: Build
) -> None:
    """After login the guard answers the door's session: the model, or request.session."""
    await client.post("/login")
    response = await client.get("/me")
    assert response.status_code == 200
    assert response.json() == ("UserSession" if build is typed_app else "SessionDict")


async def test_after_logout_the_guarded_route_answers_401_again(client: httpx.AsyncClient) -> None:
    await client.post("/login")
    old = client.cookies["session"]
    await client.post("/logout")
    assert problem(await client.get("/me")) == "login_required"
    client.cookies.set("session", old)
    assert problem(await client.get("/me")) == "login_required"


async def test_a_guard_reads_without_writing(client: httpx.AsyncClient, store: RecordingStore) -> None:
    """Passing a login guard (or a login_within one) costs a read, never a write."""
    await client.post("/login")
    store.reset()
    for path in ("/me", "/admin", "/plain"):
        assert (await client.get(path)).status_code == 200
    assert store.writes() == 0


@pytest.mark.parametrize("store", ["memory"], indirect=True)
@pytest.mark.parametrize("cookie_name", ["session", "__Host-sid"])
async def test_openapi_shows_the_session_cookie_as_the_security_scheme_of_guarded_routes(
    build: Build, store: RecordingStore, clock: FakeClock, cookie_name: str
) -> None:
    """/docs marks the guarded routes: an apiKey scheme in the cookie of the configured name; the
    routes without a guard carry no security requirement."""
    schema = build(store, clock, cookie_name=cookie_name).openapi()
    scheme = cookie_name  # both are valid OpenAPI component names as they are
    assert schema["components"]["securitySchemes"] == {
        scheme: {
            "type": "apiKey",
            "in": "cookie",
            "name": cookie_name,
            "description": "The session cookie, set when you log in.",
        }
    }
    for path in ("/me", "/admin", "/pay"):
        assert schema["paths"][path]["get"]["security"] == [{scheme: []}]
    for path in ("/plain", "/open"):
        assert "security" not in schema["paths"][path]["get"]


@pytest.mark.parametrize("store", ["memory"], indirect=True)
async def test_an_exception_handler_turns_the_401_into_a_login_redirect(
    build: Build, store: RecordingStore, clock: FakeClock
) -> None:
    """The documented recipe: a handler for SessionLoginRequired redirects browsers to the login page."""
    app = build(store, clock)

    @app.exception_handler(SessionLoginRequired)
    async def to_login(request: Request, exc: SessionLoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={request.url.path}&why={exc.problem}", status_code=303)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        response = await client.get("/me")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/me&why=login_required"


@pytest.mark.parametrize("store", ["memory"], indirect=True)
async def test_require_login_with_another_cookie_name_than_the_middleware_fails_naming_both(
    store: RecordingStore, clock: FakeClock
) -> None:
    """The classic guard cannot read the middleware's settings when the schema is built; a request
    that finds them apart says how to fix the guard."""
    app = classic_app(store, clock, cookie_name="sid")

    @app.get("/default")
    async def default(session: Annotated[SessionDict, Depends(require_login)]) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        with pytest.raises(SessionConfigError, match=r"RequireLogin\(cookie_name='sid'\)"):
            await client.get("/default")


async def test_with_the_store_down_and_degrade_a_guarded_route_answers_503_not_401(
    build: Build, store: RecordingStore, clock: FakeClock
) -> None:
    """A degraded session cannot say whether it is logged in: the guard answers 503 with Retry-After
    rather than a 401 that would send a logged-in user to a login page that cannot work either."""
    app = build(store, clock, on_store_error="degrade")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        await client.post("/login")
        go_down(store)
        response = await client.get("/me")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_a_guarded_websocket_is_refused_at_the_handshake_with_the_same_401(clock: FakeClock) -> None:
    """A WebSocket route behind a guard never accepts an anonymous connection: the handshake gets the
    401 (a denial response, where the server supports them)."""
    store = MemoryStore(clock=clock)
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)

    @app.websocket("/ws")
    async def feed(
        websocket: WebSocket, session: Annotated[UserSession, Depends(sessions.require_login)]
    ) -> None:
        await websocket.accept()
        await websocket.close()

    with TestClient(app, base_url=BASE_URL) as client, pytest.raises(WebSocketDenialResponse) as denied:
        client.websocket_connect("wss://testserver/ws").__enter__()
    assert denied.value.status_code == 401
    assert denied.value.json()["detail"]["error"] == "login_required"


# -- freshness -------------------------------------------------------------------------------------


async def test_a_login_older_than_login_within_must_reauthenticate(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """login_within: the login's age by the door's clock; past it, 401 reauthentication_required
    (not login_required: the user is known), and a new login passes again."""
    await client.post("/login")
    clock.advance(LOGIN_WITHIN)
    assert (await client.get("/admin")).status_code == 200
    clock.advance(1)
    assert problem(await client.get("/admin")) == "reauthentication_required"
    assert (await client.get("/me")).status_code == 200  # the session itself is fine
    await client.post("/login")
    assert (await client.get("/admin")).status_code == 200


async def test_a_login_without_a_usable_time_is_never_fresh(client: httpx.AsyncClient) -> None:
    """A login whose time is not a number passes require_login, never login_within."""
    await client.post("/corrupt-login")
    assert (await client.get("/me")).status_code == 200
    assert problem(await client.get("/admin")) == "reauthentication_required"


async def test_a_session_unused_longer_than_used_within_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """used_within: counted from the login or the last request the guard let through; other routes
    do not count (they write nothing); past the window, 401 session_idle."""
    await client.post("/login")
    clock.advance(USED_WITHIN - 1)
    assert (await client.get("/pay")).status_code == 200
    clock.advance(USED_WITHIN - 1)
    assert (await client.get("/pay")).status_code == 200
    clock.advance(USED_WITHIN / 2)
    assert (await client.get("/plain")).status_code == 200
    clock.advance(USED_WITHIN / 2 + 1)
    assert problem(await client.get("/pay")) == "session_idle"
    assert (await client.get("/me")).status_code == 200
    await client.post("/login")
    assert (await client.get("/pay")).status_code == 200


async def test_used_within_records_a_use_at_most_once_per_tenth_of_the_window(
    client: httpx.AsyncClient, store: RecordingStore, clock: FakeClock
) -> None:
    """A busy guarded page is not a write per request: the time is written once it is a tenth of
    the window old, so a session is refused between 0.9 and 1 window after its last guarded use."""
    await client.post("/login")
    store.reset()
    for _ in range(5):
        clock.advance(USED_WITHIN / 100)
        assert (await client.get("/pay")).status_code == 200
    assert store.writes() == 0
    clock.advance(USED_WITHIN / 10)
    assert (await client.get("/pay")).status_code == 200
    assert store.calls["update"] == 1
    clock.advance(USED_WITHIN)
    assert (await client.get("/pay")).status_code == 200
    clock.advance(USED_WITHIN + 1)
    assert problem(await client.get("/pay")) == "session_idle"


def test_a_cookie_name_becomes_a_valid_openapi_scheme_name() -> None:
    """Cookie names may hold characters an OpenAPI component name may not: they become '_'."""
    assert scheme_name("session") == "session"
    assert scheme_name("my!sess$ion") == "my_sess_ion"


async def test_freshness_limits_take_a_timedelta(store: RecordingStore, clock: FakeClock) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    guard = sessions.require_fresh(login_within=timedelta(minutes=5), used_within=timedelta(minutes=2))
    assert (guard.login_within, guard.used_within) == (300.0, 120.0)
    assert sessions.require_login is sessions.require_login  # one dependency, for FastAPI's cache


def test_a_freshness_limit_must_be_a_positive_duration() -> None:
    with pytest.raises(SessionUsageError, match="login_within needs a positive number"):
        RequireLogin(login_within=0)
    with pytest.raises(SessionUsageError, match="used_within needs a positive number"):
        RequireLogin(used_within=float("nan"))


@pytest.mark.parametrize("door", ["typed", "classic"])
async def test_the_login_helper_logs_in_for_the_guards(
    door: str, store: RecordingStore, clock: FakeClock
) -> None:
    """With the real login helper (sessions.users.login / session_users(request).login): the guard
    lets the session through, and login_within counts from the helper's login time. (On the store
    itself: the helper needs its user index, which RecordingStore does not forward.)"""
    inner = store.inner
    if door == "typed":
        sessions = SessionManager(UserSession, settings=make_settings(), store=inner, clock=clock)
        app = FastAPI()
        sessions.install(app)

        @app.post("/login")
        async def typed_login(
            request: Request, session: Annotated[UserSession, Depends(sessions.get_session)]
        ) -> None:
            sessions.users.login(session, "ada", request)

        guard: Any = sessions.require_fresh(login_within=LOGIN_WITHIN)
    else:
        app = FastAPI()
        app.add_middleware(SessionMiddleware, backend=inner, settings=make_settings(), clock=clock)

        @app.post("/login")
        async def classic_login(request: Request) -> None:
            session_users(request).login(request_session(request), "ada", request)

        guard = RequireLogin(login_within=LOGIN_WITHIN)

    @app.get("/admin")
    async def admin(session: Annotated[Any, Depends(guard)]) -> str:
        return "admin"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        assert problem(await client.get("/admin")) == "login_required"
        await client.post("/login")
        assert (await client.get("/admin")).status_code == 200
        clock.advance(LOGIN_WITHIN + 1)
        assert problem(await client.get("/admin")) == "reauthentication_required"


# -- Sanic -----------------------------------------------------------------------------------------


async def test_the_sanic_door_guards_a_handler_with_the_same_401(
    store: RecordingStore, clock: FakeClock
) -> None:
    """SanicSessions.require_login(session, ...) at the top of a handler: the same checks, and the
    same 401 body and header as the FastAPI doors."""
    pytest.importorskip("sanic")
    pytest.importorskip("sanic_testing")
    from sanic.request import Request as SanicRequest
    from sanic.response import HTTPResponse, text

    from fastapi_sessions.sanic import install

    from .sanic_support import Browser, new_app

    app = new_app()
    sessions = install(app, backend=store, settings=make_settings(), clock=clock)

    @app.post("/login")
    async def login(request: SanicRequest) -> HTTPResponse:
        log_in(sessions.session_of(request.ctx.session), clock)
        return text("ok")

    @app.get("/admin")
    async def admin(request: SanicRequest) -> HTTPResponse:
        sessions.require_login(request.ctx.session, login_within=LOGIN_WITHIN)
        return text("admin")

    browser = Browser(app)
    assert problem(await browser.get("/admin")) == "login_required"
    await browser.post("/login")
    assert (await browser.get("/admin")).status_code == 200
    clock.advance(LOGIN_WITHIN + 1)
    assert problem(await browser.get("/admin")) == "reauthentication_required"
