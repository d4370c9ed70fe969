"""The classic door: ``SessionMiddleware`` and ``request.session`` on the engine of the typed door.

The routes are the article's: set ``request.session["username"]``, read with ``.get``, log out with
``.clear()``; plus the operations in this style (regenerate, set_expiry) and the failure contract.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request, WebSocket
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_sessions import (
    SessionConfigError,
    SessionDict,
    SessionManager,
    SessionMiddleware,
    SessionNotInstalledError,
    SessionSettings,
    SessionTooLargeError,
    SessionUsageError,
    request_session,
)
from fastapi_sessions.session import LATE_CHANGE
from fastapi_sessions.settings import KEY_HINT
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import OLD_SECRET, SECRET, TestClient, go_down

pytestmark = pytest.mark.anyio

Build = Callable[..., FastAPI]


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


def article_app(store: Any, clock: FakeClock | None = None, **options: Any) -> FastAPI:
    """The article's app, with the imports renamed and a real key."""
    app = FastAPI()
    options.setdefault("secret_key", SECRET)
    app.add_middleware(SessionMiddleware, backend=store, clock=clock, **options)

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/login/{name}")
    async def login(name: str, request: Request) -> dict[str, str]:
        request_session(request).regenerate()
        request.session["username"] = name
        return {"message": f"Logged in as {name}"}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"username": request.session.get("username"), "cart": request.session.get("cart", [])}

    @app.post("/cart/{item}")
    async def add(item: str, request: Request) -> list[str]:
        cart: list[str] = request.session.setdefault("cart", [])
        cart.append(item)
        return cart

    @app.post("/remember")
    async def remember(request: Request) -> None:
        request_session(request).set_expiry(timedelta(days=7))

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, str]:
        request.session.clear()
        return {"message": "Logged out"}

    @app.post("/later")
    async def later(request: Request, tasks: BackgroundTasks) -> None:
        def change() -> None:
            request.session["username"] = "late"

        tasks.add_task(change)

    @app.post("/big")
    async def big(request: Request) -> None:
        request.session["blob"] = "x" * 100_000

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        websocket.session["visits"] = websocket.session.get("visits", 0) + 1
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        await websocket.close()

    return app


@pytest.fixture
def build(store: RecordingStore, clock: FakeClock) -> Build:
    def make(**options: Any) -> FastAPI:
        return article_app(store, clock, **options)

    return make


@pytest.fixture
async def client(build: Build) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(build()), base_url="https://t") as c:
        yield c


def set_cookie(response: httpx.Response) -> str | None:
    return response.headers.get("set-cookie")


# -- the article's three routes ---------------------------------------------------------------


async def test_login_sets_the_cookie_and_the_session_is_read_back(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.post("/login/Alice")
    assert response.json() == {"message": "Logged in as Alice"}
    cookie = set_cookie(response)
    assert cookie is not None
    assert cookie.endswith("Path=/; Secure; HttpOnly; SameSite=Lax")
    assert (await client.get("/me")).json() == {"username": "Alice", "cart": []}
    assert store.calls["create"] == 1


async def test_clear_deletes_the_record_and_expires_the_cookie(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/Alice")
    old = client.cookies["session"]
    response = await client.post("/logout")
    assert "Max-Age=0" in (set_cookie(response) or "")
    assert len(store.inner) == 0, "the record is gone from the store"
    client.cookies.clear()
    replay = await client.get("/me", headers={"cookie": f"session={old}"})
    assert replay.json() == {"username": None, "cart": []}


async def test_nested_change_is_saved(client: httpx.AsyncClient) -> None:
    await client.post("/cart/apple")
    await client.post("/cart/pear")
    assert (await client.get("/me")).json()["cart"] == ["apple", "pear"]


async def test_unchanged_session_writes_nothing_and_sends_no_cookie(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/Alice")
    store.reset()
    response = await client.get("/me")
    assert set_cookie(response) is None
    assert store.writes() == 0
    assert store.calls["load"] == 1


async def test_a_request_without_the_cookie_costs_no_store_call(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.get("/me")
    assert response.json() == {"username": None, "cart": []}
    assert store.calls == {}
    assert set_cookie(response) is None


async def test_vary_cookie_only_when_the_route_used_the_session(client: httpx.AsyncClient) -> None:
    await client.post("/login/Alice")
    assert "vary" not in (await client.get("/bare")).headers
    assert (await client.get("/me")).headers["vary"] == "Cookie"


async def test_regenerate_gives_a_new_cookie_keeps_the_data_and_kills_the_old_id(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/cart/apple")
    before = client.cookies["session"]
    await client.post("/login/Alice")
    after = client.cookies["session"]
    assert after.split(".")[0] != before.split(".")[0]
    assert (await client.get("/me")).json() == {"username": "Alice", "cart": ["apple"]}
    client.cookies.clear()
    stale = await client.get("/me", headers={"cookie": f"session={before}"})
    assert stale.json() == {"username": None, "cart": []}


async def test_set_expiry_makes_the_cookie_persistent(client: httpx.AsyncClient) -> None:
    await client.post("/login/Alice")
    response = await client.post("/remember")
    assert f"Max-Age={7 * 24 * 3600}" in (set_cookie(response) or "")


async def test_change_in_a_background_task_is_reported(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/login/Alice")
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await client.post("/later")
    assert LATE_CHANGE in caplog.messages
    assert (await client.get("/me")).json()["username"] == "Alice"


async def test_a_dict_kept_from_a_finished_request_refuses_operations(build: Build) -> None:
    kept: list[SessionDict] = []
    app = build()

    @app.get("/keep")
    async def keep(request: Request) -> None:
        kept.append(request_session(request))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.get("/keep")
    with pytest.raises(SessionUsageError, match="request that has ended"):
        kept[0].regenerate()


# -- JSON only, size ---------------------------------------------------------------------------


def test_assigning_a_value_that_is_not_json_raises_at_once() -> None:
    session = SessionDict({})
    with pytest.raises(TypeError, match=r"session\['when'\] is a datetime"):
        session["when"] = datetime(2026, 1, 1)
    with pytest.raises(TypeError, match="JSON keys are str"):
        session["prefs"] = {1: "a"}
    with pytest.raises(TypeError, match="Session keys are str"):
        session[1] = "a"  # type: ignore[index]
    with pytest.raises(TypeError, match="JSON cannot hold"):
        session.update(ratio=float("nan"))
    with pytest.raises(TypeError, match="is a set"):
        session.setdefault("tags", {"a"})
    assert session == {}


async def test_a_nested_value_that_is_not_json_fails_the_request_and_saves_nothing(
    build: Build, store: RecordingStore
) -> None:
    app = build()

    @app.post("/bad")
    async def bad(request: Request) -> None:
        request.session.setdefault("log", []).append(datetime(2026, 1, 1))

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        with pytest.raises(TypeError, match=r"session\['log'\]\[0\] is a datetime"):
            await c.post("/bad")
    assert store.writes() == 0


async def test_too_large_session_fails_and_keeps_the_stored_data(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/Alice")
    with pytest.raises(SessionTooLargeError):
        await client.post("/big")
    assert (await client.get("/me")).json()["username"] == "Alice"


# -- failures ---------------------------------------------------------------------------------


async def test_store_down_answers_503_and_keeps_the_cookie(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/Alice")
    go_down(store)
    response = await client.get("/me")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert set_cookie(response) is None
    store.failing = set()
    assert (await client.get("/me")).json()["username"] == "Alice", "nothing was lost"


async def test_store_failing_at_commit_answers_503(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/Alice")
    store.failing = {"update"}
    response = await client.post("/cart/apple")
    assert response.status_code == 503
    assert set_cookie(response) is None


async def test_degrade_serves_a_read_only_empty_session(build: Build, store: RecordingStore) -> None:
    app = build(on_store_error="degrade")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/login/Alice")
        go_down(store)
        response = await c.get("/me")
        assert response.status_code == 200
        assert response.json() == {"username": None, "cart": []}
        assert (await c.post("/cart/apple")).status_code == 503
        assert (await c.post("/logout")).status_code == 503


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "a.b.c", "x" * 5000, "", '"quoted"'],
    ids=["garbage", "dots", "huge", "empty", "quoted"],
)
async def test_a_bad_cookie_gives_a_fresh_session_and_no_store_call(
    client: httpx.AsyncClient, store: RecordingStore, cookie: str
) -> None:
    response = await client.get("/me", headers={"cookie": f"session={cookie}"})
    assert response.status_code == 200
    assert response.json() == {"username": None, "cart": []}
    assert store.calls == {}


async def test_a_cookie_signed_with_a_fallback_key_is_reissued_under_the_current_one(
    store: RecordingStore, clock: FakeClock
) -> None:
    old = article_app(store, clock, secret_key=OLD_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(old), base_url="https://t") as c:
        await c.post("/login/Alice")
        cookie = c.cookies["session"]
    new = article_app(store, clock, secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(new), base_url="https://t") as c:
        response = await c.get("/me", headers={"cookie": f"session={cookie}"})
    assert response.json()["username"] == "Alice"
    assert set_cookie(response) is not None, "re-signed with the current key"


# -- configuration ------------------------------------------------------------------------------


def test_the_articles_placeholder_key_refuses_to_start_and_says_how_to_make_one() -> None:
    with pytest.raises(SessionConfigError) as caught:
        SessionMiddleware(FastAPI(), secret_key="your-super-secret-key")
    assert KEY_HINT in str(caught.value)
    with pytest.raises(SessionConfigError, match="well-known example value"):
        SessionMiddleware(FastAPI(), secret_key="your-super-secret-key-here-000000000")


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(SessionConfigError, match="unknown option 'cookie_secured'"):
        SessionMiddleware(FastAPI(), secret_key=SECRET, cookie_secured=False)


def test_settings_and_options_together_are_refused() -> None:
    settings = SessionSettings(secret_key=SECRET)
    with pytest.raises(SessionConfigError, match="pass one or the other"):
        SessionMiddleware(FastAPI(), settings=settings, max_age=60)


def test_starlette_and_article_option_names_map_to_the_settings() -> None:
    middleware = SessionMiddleware(
        FastAPI(),
        secret_key=SECRET,
        session_cookie="sid",
        https_only=False,
        same_site="strict",
        path="/app",
        domain="example.com",
        max_age=3600,
    )
    settings = middleware.settings
    assert (settings.cookie_name, settings.cookie_secure, settings.cookie_samesite) == (
        "sid",
        False,
        "strict",
    )
    assert (settings.cookie_path, settings.cookie_domain, settings.max_age) == ("/app", "example.com", 3600)
    article = SessionMiddleware(FastAPI(), secret_key=SECRET, cookie_https_only=False)
    assert article.settings.cookie_secure is False
    with pytest.raises(SessionConfigError, match="cookie_secure twice"):
        SessionMiddleware(FastAPI(), secret_key=SECRET, cookie_https_only=False, cookie_secure=True)


def test_add_middleware_alone_takes_everything_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_COOKIE_NAME", "envsid")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "false")
    app = FastAPI()
    app.add_middleware(SessionMiddleware)

    @app.get("/set")
    async def set_(request: Request) -> None:
        request.session["n"] = 1

    with TestClient(app) as client:  # plain http: the environment turned Secure off
        response = client.get("/set")
        assert response.headers["set-cookie"].startswith("envsid=")


def test_plain_starlette_with_middleware_in_the_constructor() -> None:
    async def count(request: Any) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse(request.session["n"])

    app = Starlette(
        routes=[Route("/", count)],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, cookie_secure=False)],
    )
    with TestClient(app) as client:
        assert [client.get("/").json() for _ in range(3)] == [1, 2, 3]


def test_websocket_reads_and_saves_before_accept(build: Build) -> None:
    with TestClient(build(cookie_secure=False)) as client:
        client.post("/login/Alice")
        cookie = {"cookie": f"session={client.cookies['session']}"}
        with client.websocket_connect("/ws", headers=cookie) as ws:
            assert ws.receive_json() == {"username": "Alice", "visits": 1}
        with client.websocket_connect("/ws", headers=cookie) as ws:
            assert ws.receive_json() == {"username": "Alice", "visits": 2}


# -- paths ---------------------------------------------------------------------------------------


async def test_paths_limits_loading_and_says_why_elsewhere(build: Build, store: RecordingStore) -> None:
    app = build(paths=["/login", "/me"])

    @app.get("/static/x")
    async def static() -> str:
        return "static"

    @app.get("/elsewhere")
    async def elsewhere(request: Request) -> Any:
        return request.session.get("username")

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        await c.post("/login/Alice")
        store.reset()
        assert (await c.get("/static/x")).json() == "static"
        assert store.calls == {}, "no store call outside the paths, even with the cookie"
        with pytest.raises(SessionUsageError, match=r"paths=\['/login', '/me'\]"):
            await c.get("/elsewhere")
        assert (await c.get("/me")).json()["username"] == "Alice"


def test_paths_must_be_prefixes() -> None:
    with pytest.raises(SessionConfigError, match="path prefixes"):
        SessionMiddleware(FastAPI(), secret_key=SECRET, paths="/app")


async def test_request_session_without_the_middleware_says_to_add_it() -> None:
    app = FastAPI()

    @app.get("/")
    async def home(request: Request) -> None:
        request_session(request)

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        with pytest.raises(SessionNotInstalledError, match="add_middleware"):
            await c.get("/")


# -- next to the typed door ------------------------------------------------------------------


class Admin(BaseModel):
    username: str | None = None


async def test_a_middleware_cookie_opens_no_typed_session_and_the_reverse(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = article_app(store, clock)
    admin = SessionManager(
        Admin,
        settings=SessionSettings(secret_key=SECRET, cookie_name="admin"),
        store=store,
        clock=clock,
    )
    admin.install(app)

    @app.post("/admin/login/{name}")
    async def admin_login(name: str, session: Annotated[Admin, Depends(admin.get_session)]) -> None:
        session.username = name

    @app.get("/admin")
    async def admin_page(session: Annotated[Admin, Depends(admin.get_session)]) -> Admin:
        return session

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/login/Alice")
        await c.post("/admin/login/root")
        public, private = c.cookies["session"], c.cookies["admin"]
        c.cookies.clear()
        swapped = {"cookie": f"admin={public}; session={private}"}
        assert (await c.get("/admin", headers=swapped)).json() == {"username": None}
        assert (await c.get("/me", headers=swapped)).json() == {"username": None, "cart": []}
        both = {"cookie": f"admin={private}; session={public}"}
        assert (await c.get("/admin", headers=both)).json() == {"username": "root"}
        assert (await c.get("/me", headers=both)).json()["username"] == "Alice"


async def test_a_typed_manager_and_the_middleware_on_one_cookie_name_are_refused(
    store: RecordingStore, clock: FakeClock
) -> None:
    app = article_app(store, clock)
    typed = SessionManager(Admin, settings=SessionSettings(secret_key=SECRET), store=store, clock=clock)
    typed.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        with pytest.raises(SessionConfigError, match="cookie name 'session'"):
            await c.get("/me")


# -- a real Redis --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_the_article_app_on_a_real_redis(redis_server_url: str, redis_prefix: str) -> None:
    from fastapi_sessions.stores.redis import RedisStore

    store = RedisStore.from_url(redis_server_url, prefix=redis_prefix)
    try:
        app = article_app(store)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
            await c.post("/cart/apple")
            await c.post("/login/Alice")
            assert (await c.get("/me")).json() == {"username": "Alice", "cart": ["apple"]}
            await c.post("/logout")
            assert (await c.get("/me")).json() == {"username": None, "cart": []}
    finally:
        await store.aclose()


async def test_a_change_from_1_to_true_is_saved(build: Build) -> None:
    """Python calls 1 and True equal; the stored JSON must still change from 1 to true."""
    app = build()

    @app.post("/flag/{value}")
    async def flag(value: str, request: Request) -> None:
        request.session["flag"] = {"int": 1, "bool": True, "float": 1.0}[value]

    @app.get("/flag")
    async def read_flag(request: Request) -> Any:
        return request.session["flag"]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/flag/int")
        await c.post("/flag/bool")
        assert (await c.get("/flag")).content == b"true"
        await c.post("/flag/float")
        assert (await c.get("/flag")).content == b"1.0"
