"""``seed_session``: a test starts with a session in place (a logged-in user), made by the app's own
door, for both doors, Starlette's ``TestClient`` and ``httpx.AsyncClient``, memory and Redis."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from starlette.requests import Request

from fastapi_sessions import SessionManager, SessionMiddleware, request_session
from fastapi_sessions.exceptions import SessionNotInstalledError, SessionUsageError, SessionValueError
from fastapi_sessions.stores import MemoryStore, SessionStore
from fastapi_sessions.testing import RecordingStore, seed_session

from .conftest import SECRET, TestClient, UserSession, make_settings

HTTPS = "https://testserver"


def typed_app(store: SessionStore, **settings: Any) -> tuple[FastAPI, SessionManager[UserSession]]:
    """The quickstart's routes on the typed door, with "remember me"."""
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=store)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/me")
    async def me(session: Session) -> UserSession:
        return session

    @app.post("/cart/{item}")
    async def add(item: str, session: Session) -> list[str]:
        session.cart.append(item)
        return session.cart

    @app.post("/sudo")
    async def sudo(session: Session) -> UserSession:
        sessions.regenerate(session)
        session.prefs["sudo"] = "yes"
        return session

    @app.post("/remember")
    async def remember(session: Session) -> UserSession:
        sessions.set_expiry(session, 3600)
        return session

    @app.post("/logout")
    async def logout(session: Session) -> RedirectResponse:
        sessions.destroy(session)
        return RedirectResponse("/me", status_code=303)

    return app, sessions


def classic_app(store: SessionStore, **settings: Any) -> FastAPI:
    """The same routes on request.session."""
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, secret_key=SECRET, **settings)

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return dict(request_session(request))

    @app.post("/cart/{item}")
    async def add(item: str, request: Request) -> list[str]:
        session = request_session(request)
        session["cart"] = [*session.get("cart", []), item]
        return list(session["cart"])

    @app.post("/sudo")
    async def sudo(request: Request) -> dict[str, Any]:
        session = request_session(request)
        session.regenerate()
        session["sudo"] = True
        return dict(session)

    @app.post("/remember")
    async def remember(request: Request) -> dict[str, Any]:
        request_session(request).set_expiry(3600)
        return dict(request_session(request))

    @app.post("/logout")
    async def logout(request: Request) -> RedirectResponse:
        request_session(request).destroy()
        return RedirectResponse("/me", status_code=303)

    return app


def cookie_sent(response: httpx.Response) -> str:
    return response.headers.get("set-cookie", "")


# -- the typed door ------------------------------------------------------------------------------


def test_typed_session_seeded_into_a_test_client_is_the_next_requests_session() -> None:
    app, sessions = typed_app(MemoryStore())
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, sessions, UserSession(user_id=7, cart=["apple"]))
        assert client.get("/me").json() == {"user_id": 7, "cart": ["apple"], "prefs": {}}
        assert client.post("/cart/pear").json() == ["apple", "pear"]


def test_a_seeded_typed_session_can_be_regenerated_remembered_and_destroyed() -> None:
    """The supported replacement for overriding get_session: the routes' operations all work."""
    app, sessions = typed_app(MemoryStore())
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, sessions, UserSession(user_id=7))
        old = client.cookies["session"]
        assert client.post("/sudo").json()["prefs"] == {"sudo": "yes"}
        assert client.cookies["session"] != old, "regenerate gave a new ID"
        assert "Max-Age=3600" in cookie_sent(client.post("/remember"))
        assert client.post("/logout").json() == {"user_id": None, "cart": [], "prefs": {}}


def test_overriding_get_session_fails_at_regenerate_with_a_message_naming_seed_session() -> None:
    app, sessions = typed_app(MemoryStore())
    app.dependency_overrides[sessions.get_session] = lambda: UserSession(user_id=7)
    with TestClient(app, base_url=HTTPS) as client:
        assert client.get("/me").json()["user_id"] == 7, "plain reads work under an override"
        for route in ("/sudo", "/remember", "/logout"):
            with pytest.raises(
                SessionUsageError, match=r"dependency_overrides.*seed_session\(client, sessions"
            ):
                client.post(route)


def test_a_test_client_used_without_with_is_seeded_too() -> None:
    app, sessions = typed_app(MemoryStore())
    client = TestClient(app, base_url=HTTPS)
    seed_session(client, sessions, UserSession(user_id=7))
    assert client.get("/me").json()["user_id"] == 7


def test_a_session_seeded_at_its_defaults_is_still_stored() -> None:
    store = RecordingStore(MemoryStore())
    app, sessions = typed_app(store)
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, sessions, UserSession())
        assert store.calls["create"] == 1
        client.get("/me")
        assert store.calls["load"] == 1, "the request loaded the seeded session"
        assert cookie_sent(client.get("/me")) == "", "and found it: no new session"


@pytest.mark.anyio
async def test_typed_session_seeded_into_an_async_client() -> None:
    app, sessions = typed_app(MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=HTTPS) as client:
        await seed_session(client, sessions, UserSession(user_id=7))
        assert (await client.get("/me")).json()["user_id"] == 7
        assert (await client.post("/sudo")).json()["prefs"] == {"sudo": "yes"}


def test_the_typed_door_is_found_in_the_app_too() -> None:
    app, _ = typed_app(MemoryStore())
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, app, UserSession(user_id=7))
        assert client.get("/me").json()["user_id"] == 7


# -- the classic door ----------------------------------------------------------------------------


def test_classic_session_seeded_into_a_test_client_is_the_next_requests_session() -> None:
    app = classic_app(MemoryStore())
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, app, {"user": "alice", "cart": ["apple"]})
        assert client.get("/me").json() == {"user": "alice", "cart": ["apple"]}
        assert client.post("/cart/pear").json() == ["apple", "pear"]
        assert client.post("/sudo").json()["sudo"] is True
        assert "Max-Age=3600" in cookie_sent(client.post("/remember"))
        assert client.post("/logout").json() == {}


def test_a_classic_app_is_seeded_before_its_first_request() -> None:
    """Before the first request no middleware is built: seed_session builds it, as Starlette would."""
    app = classic_app(MemoryStore())
    client = TestClient(app, base_url=HTTPS)
    seed_session(client, app, {"user": "alice"})
    assert client.get("/me").json() == {"user": "alice"}


@pytest.mark.anyio
async def test_classic_session_seeded_into_an_async_client() -> None:
    app = classic_app(MemoryStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=HTTPS) as client:
        await seed_session(client, app, {"user": "alice"})
        assert (await client.get("/me")).json() == {"user": "alice"}
        assert (await client.post("/sudo")).json() == {"user": "alice", "sudo": True}


def test_classic_values_are_checked_as_request_session_checks_them() -> None:
    app = classic_app(MemoryStore())
    with (
        TestClient(app, base_url=HTTPS) as client,
        pytest.raises(SessionValueError, match="is nan, which JSON cannot hold"),
    ):
        seed_session(client, app, {"score": float("nan")})


def test_the_cookie_name_picks_one_of_several_doors() -> None:
    app = classic_app(MemoryStore())
    app.add_middleware(SessionMiddleware, backend=MemoryStore(), secret_key=SECRET, cookie_name="admin")
    with TestClient(app, base_url=HTTPS) as client:
        with pytest.raises(
            SessionUsageError, match=r"2 session doors \(cookie names \['admin', 'session'\]\)"
        ):
            seed_session(client, app, {"user": "alice"})
        seed_session(client, app, {"user": "alice"}, cookie_name="session")
        assert client.get("/me").json() == {"user": "alice"}


# -- mistakes, explained -------------------------------------------------------------------------


def test_seeding_a_secure_cookie_into_an_http_client_says_to_use_https() -> None:
    app, sessions = typed_app(MemoryStore())
    with TestClient(app) as client, pytest.raises(SessionUsageError, match='base_url="https://testserver"'):
        seed_session(client, sessions, UserSession(user_id=7))


def test_an_http_client_is_seeded_when_the_cookie_is_not_secure() -> None:
    app, sessions = typed_app(MemoryStore(), cookie_secure=False)
    with TestClient(app) as client:
        seed_session(client, sessions, UserSession(user_id=7))
        assert client.get("/me").json()["user_id"] == 7


def test_seeding_the_wrong_kind_of_data_names_the_right_one() -> None:
    typed, sessions = typed_app(MemoryStore())
    classic = classic_app(MemoryStore())
    wrong_kind = pytest.raises(SessionUsageError, match=r"UserSession\(\.\.\.\), not a dict")
    with TestClient(typed, base_url=HTTPS) as client, wrong_kind:
        seed_session(client, sessions, {"user_id": 7})
    wrong_kind = pytest.raises(SessionUsageError, match="a dict of JSON values, not a UserSession")
    with TestClient(classic, base_url=HTTPS) as client, wrong_kind:
        seed_session(client, classic, UserSession())


def test_an_app_without_a_session_door_is_refused() -> None:
    app = FastAPI()
    with (
        TestClient(app, base_url=HTTPS) as client,
        pytest.raises(SessionNotInstalledError, match="SessionMiddleware"),
    ):
        seed_session(client, app, {"user": "alice"})
    with pytest.raises(SessionUsageError, match="the SessionManager or the app"):
        seed_session(TestClient(app, base_url=HTTPS), object(), {})  # type: ignore[call-overload]


# -- on Redis ------------------------------------------------------------------------------------


@pytest.fixture
def redis_store(redis_server_url: str, redis_prefix: str) -> SessionStore:
    """A RedisStore with this test's prefix; its connections are made on the loop that first uses it."""
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    return RedisStore.from_url(redis_server_url, prefix=redis_prefix)


@pytest.fixture
async def async_redis_store(redis_store: SessionStore) -> AsyncIterator[SessionStore]:
    yield redis_store
    await redis_store.aclose()


@pytest.mark.redis
def test_a_typed_session_seeded_on_redis_through_a_test_client(redis_store: SessionStore) -> None:
    """Seeding runs on the client's event loop, where the app's Redis connections live."""
    app, sessions = typed_app(redis_store)
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, sessions, UserSession(user_id=7))
        assert client.get("/me").json()["user_id"] == 7
        assert client.post("/sudo").json()["prefs"] == {"sudo": "yes"}
        client.portal.call(redis_store.aclose)  # type: ignore[union-attr]


@pytest.mark.redis
def test_a_classic_session_seeded_on_redis_through_a_test_client(redis_store: SessionStore) -> None:
    app = classic_app(redis_store)
    with TestClient(app, base_url=HTTPS) as client:
        seed_session(client, app, {"user": "alice"})
        assert client.get("/me").json() == {"user": "alice"}
        assert client.post("/logout").json() == {}
        client.portal.call(redis_store.aclose)  # type: ignore[union-attr]


@pytest.mark.redis
@pytest.mark.anyio
async def test_typed_and_classic_sessions_seeded_on_redis_through_an_async_client(
    async_redis_store: SessionStore,
) -> None:
    typed, sessions = typed_app(async_redis_store)
    classic = classic_app(async_redis_store, cookie_name="classic")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(typed), base_url=HTTPS) as client:
        await seed_session(client, sessions, UserSession(user_id=7))
        assert (await client.get("/me")).json()["user_id"] == 7
        assert (await client.post("/logout")).status_code == 303
        assert (await client.get("/me")).json()["user_id"] is None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(classic), base_url=HTTPS) as client:
        await seed_session(client, classic, {"user": "alice"})
        assert (await client.get("/me")).json() == {"user": "alice"}
