"""CSRF protection on the Sanic door (``fastapi_sessions.sanic_csrf``): the rules of the other doors,
read from Sanic's request, answered with the same 403 JSON body."""

from typing import Any

import pytest

pytest.importorskip("sanic")
pytest.importorskip("sanic_testing")

import httpx
from sanic import Sanic
from sanic.request import Request as SanicRequest
from sanic.response import HTTPResponse, json, text

from fastapi_sessions import SessionNotInstalledError, rotate_csrf_token
from fastapi_sessions.csrftokens import mask
from fastapi_sessions.sanic import install
from fastapi_sessions.sanic_csrf import csrf_token, protect
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock

from .conftest import SECRET
from .sanic_support import Browser, new_app

pytestmark = pytest.mark.anyio


def shop_app(clock: FakeClock, **options: Any) -> Sanic[Any, Any]:
    app = new_app()
    sessions = install(app, backend=MemoryStore(clock=clock), clock=clock, secret_key=SECRET)
    protect(app, **options)

    @app.get("/form")
    async def form(request: SanicRequest) -> HTTPResponse:
        return json({"token": csrf_token(request)})

    @app.post("/change")
    async def change(request: SanicRequest) -> HTTPResponse:
        return text("ok")

    @app.post("/login")
    async def login(request: SanicRequest) -> HTTPResponse:
        request.ctx.session.regenerate()
        request.ctx.session["user"] = "alice"
        return json({"token": rotate_csrf_token(sessions.session_of(request.ctx.session))})

    return app


@pytest.fixture
def browser(clock: FakeClock) -> Browser:
    return Browser(shop_app(clock))


async def token_of(browser: Browser) -> str:
    token: str = (await browser.get("/form")).json()["token"]
    return token


def detail(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/json"
    text: str = response.json()["detail"]
    assert text.startswith("CSRF check failed: ")
    return text


async def test_a_token_in_the_header_or_a_form_field_lets_a_post_through(browser: Browser) -> None:
    """Header, urlencoded form and multipart form all carry the token; Sanic reads forms itself."""
    token = await token_of(browser)
    assert (await browser.post("/change", headers={"X-CSRF-Token": token})).status_code == 200
    assert (await browser.post("/change", data={"csrf_token": token})).status_code == 200
    multipart = await browser.post("/change", data={"csrf_token": token}, files={"f": ("a", b"x")})
    assert multipart.status_code == 200


async def test_safe_methods_pass_and_unsafe_ones_without_a_token_get_a_403(browser: Browser) -> None:
    """GET is never checked; a POST without a token is answered 403 with what to send."""
    await token_of(browser)
    assert "no CSRF token was sent" in detail(await browser.post("/change"))
    assert "malformed" in detail(await browser.post("/change", headers={"X-CSRF-Token": "x" * 43}))
    wrong = await browser.post("/change", headers={"X-CSRF-Token": mask(bytes(32))})
    assert "does not belong to this session" in detail(wrong)


async def test_a_session_without_a_token_and_another_site_are_refused(clock: FakeClock) -> None:
    """No token issued yet: 403; a cross-site request: 403 even with a token, unless trusted."""
    browser = Browser(shop_app(clock, trusted_origins=["https://app.example.com"]))
    assert "has no CSRF token" in detail(await browser.post("/change", headers={"X-CSRF-Token": "x"}))
    token = await token_of(browser)
    cross = await browser.post("/change", headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"})
    assert "another site" in detail(cross)
    foreign = await browser.post(
        "/change", headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert "another site" in detail(foreign)
    trusted = await browser.post(
        "/change", headers={"X-CSRF-Token": token, "Origin": "https://app.example.com"}
    )
    assert trusted.status_code == 200


async def test_login_rotates_the_token(browser: Browser) -> None:
    """The anonymous form's token admits the login, and only the new token works afterwards."""
    anonymous = await token_of(browser)
    fresh = (await browser.post("/login", data={"csrf_token": anonymous})).json()["token"]
    assert "does not belong" in detail(await browser.post("/change", headers={"X-CSRF-Token": anonymous}))
    assert (await browser.post("/change", headers={"X-CSRF-Token": fresh})).status_code == 200


def test_protect_before_install_says_to_install_first() -> None:
    """The check needs the app's sessions: protect() without install() fails at start-up."""
    with pytest.raises(SessionNotInstalledError, match=r"install\(app\)"):
        protect(new_app())
