"""SESSION_COOKIE_PARTITIONED (CHIPS): the ``Partitioned`` attribute on the session cookie and on the
logout cookie, through every door; refused without Secure, and a start-up warning without
SameSite=None."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

import logging
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from fastapi_sessions import SessionConfigError, SessionManager, SessionMiddleware, request_session
from fastapi_sessions.cookies import PARTITIONED_NOT_CROSS_SITE
from fastapi_sessions.stores import MemoryStore

from .conftest import SECRET, UserSession, make_settings
from .test_security import parse_set_cookie

pytestmark = pytest.mark.anyio
BASE_URL = "https://testserver"
NOT_CROSS_SITE = PARTITIONED_NOT_CROSS_SITE.split("%s")[0]
CROSS_SITE = {"cookie_partitioned": True, "cookie_samesite": "none"}


def typed_app(**settings: Any) -> FastAPI:
    sessions = SessionManager(UserSession, settings=make_settings(**settings), store=MemoryStore())
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/login")
    async def login(session: Session) -> None:
        session.user_id = 1

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    return app


def classic_app(**settings: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=MemoryStore(), secret_key=SECRET, **settings)

    @app.post("/login")
    async def login(request: Request) -> None:
        request.session["user_id"] = 1

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request_session(request).destroy()

    return app


def started(app: FastAPI) -> None:
    """Build ``app``'s middleware stack, as its first request does (the classic door is built then)."""
    app.build_middleware_stack()


@pytest.mark.parametrize("build", [typed_app, classic_app], ids=["typed", "classic"])
async def test_a_partitioned_cookie_and_its_logout_cookie_both_carry_the_attribute(build: Any) -> None:
    """With SESSION_COOKIE_PARTITIONED=true, the login cookie and the cookie that deletes it are
    Partitioned: a browser keeps partitioned and unpartitioned cookies apart, so a delete cookie
    without the attribute would leave the session cookie in place."""
    transport = httpx.ASGITransport(build(**CROSS_SITE))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        login = await c.post("/login")
        logout = await c.post("/logout")
    for response in (login, logout):
        (header,) = response.headers.get_list("set-cookie")
        _, _, attributes = parse_set_cookie(header)
        assert attributes["partitioned"] is True
        assert attributes["secure"] is True
        assert attributes["samesite"] == "None"
    assert "max-age" in parse_set_cookie(logout.headers["set-cookie"])[2]


async def test_the_cookie_is_not_partitioned_by_default() -> None:
    """Partitioned is opt-in: the default cookie does not carry it."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(typed_app()), base_url=BASE_URL) as c:
        login = await c.post("/login")
    assert "partitioned" not in parse_set_cookie(login.headers["set-cookie"])[2]


@pytest.mark.parametrize("build", [typed_app, classic_app], ids=["typed", "classic"])
def test_a_partitioned_cookie_that_is_not_secure_fails_at_start_up(build: Any) -> None:
    """Browsers drop a Partitioned cookie without Secure: the app does not start, and says which
    two settings to change."""
    with pytest.raises(SessionConfigError) as info:
        started(build(cookie_partitioned=True, cookie_secure=False))
    assert "SESSION_COOKIE_PARTITIONED" in str(info.value)
    assert "SESSION_COOKIE_SECURE" in str(info.value)


@pytest.mark.parametrize("samesite", ["lax", "strict"])
def test_a_partitioned_cookie_without_samesite_none_logs_a_warning_at_start_up(
    samesite: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A partitioned cookie exists to be sent cross-site, which takes SameSite=None: any other value
    starts, with one WARNING that names the setting to change."""
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        typed_app(cookie_partitioned=True, cookie_samesite=samesite)
    (record,) = [r for r in caplog.records if NOT_CROSS_SITE in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "SESSION_COOKIE_SAMESITE=none" in record.getMessage()


def test_a_partitioned_cross_site_cookie_starts_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        typed_app(**CROSS_SITE)
    assert not [r for r in caplog.records if NOT_CROSS_SITE in r.getMessage()]


async def test_the_sanic_door_sends_the_partitioned_attribute_too() -> None:
    """Sanic's door writes its cookies with the same writer."""
    pytest.importorskip("sanic")
    pytest.importorskip("sanic_testing")
    from sanic.request import Request as SanicRequest
    from sanic.response import HTTPResponse, text

    from fastapi_sessions.sanic import install

    from .sanic_support import Browser, new_app

    app = new_app()
    install(app, backend=MemoryStore(), secret_key=SECRET, **CROSS_SITE)

    @app.post("/login")
    async def login(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["user_id"] = 1
        return text("ok")

    response = await Browser(app).post("/login")
    assert parse_set_cookie(response.headers["set-cookie"])[2]["partitioned"] is True
