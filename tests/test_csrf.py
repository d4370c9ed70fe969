"""CSRF protection bound to the session (``fastapi_sessions.csrf``), on both doors and both stores.

A per-session secret in the session's own state, masked afresh for every response; unsafe methods
must send a masked copy back (header or form field) and must not come from another site; every
failure is a 403 JSON answer that says what to do, never a 422 or a 500, and never shows a token.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import ast
import base64
import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Form, Request, WebSocket
from pydantic import BaseModel
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_sessions import (
    CsrfProtect,
    SessionManager,
    SessionMiddleware,
    SessionSettings,
    SessionStore,
    csrf_token,
    csrfcheck,
    request_session,
    rotate_csrf_token,
)
from fastapi_sessions import csrf as csrf_module
from fastapi_sessions.csrftokens import SECRET_BYTES, TOKEN_LENGTH, mask, new_secret, read_secret, unmask
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import UserSession, make_settings

pytestmark = pytest.mark.anyio
BASE_URL = "https://testserver"
STORE_DEADLINE = 60.0
"""The Redis store's deadline here: a hang guard only."""
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


class Note(BaseModel):
    text: str


def typed_app(
    store: SessionStore, clock: FakeClock, settings: SessionSettings | None = None, **options: Any
) -> FastAPI:
    """A typed-door app with every route of a form site and of an SPA, all under the CSRF check."""
    settings = settings or make_settings()
    sessions = SessionManager(UserSession, settings=settings, store=store, clock=clock)
    csrf = CsrfProtect(sessions, **options)
    app = FastAPI(dependencies=[Depends(csrf)])
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    Token = Annotated[str, Depends(csrf.token)]

    @app.get("/form")
    async def form(token: Token) -> dict[str, str]:
        return {"token": token}

    @app.post("/login")
    async def login(session: Session) -> dict[str, str]:
        sessions.regenerate(session)
        session.user_id = 7
        return {"token": rotate_csrf_token(sessions.session_of(session))}

    @app.post("/login-helper")
    async def login_helper(session: Session, request: Request) -> None:
        sessions.users.login(session, "7", request)

    @app.post("/regenerate")
    async def regenerate(session: Session) -> None:
        sessions.regenerate(session)

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    add_shared_routes(app)
    return app


def classic_app(
    store: SessionStore, clock: FakeClock, settings: SessionSettings | None = None, **options: Any
) -> FastAPI:
    """The same app on the classic door: ``request.session`` and ``csrf_token(request)``."""
    csrf = CsrfProtect(**options)
    app = FastAPI(dependencies=[Depends(csrf)])
    settings = settings or make_settings()
    app.add_middleware(SessionMiddleware, settings=settings, backend=store, clock=clock)

    @app.get("/form")
    async def form(request: Request) -> dict[str, str]:
        return {"token": csrf_token(request)}

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        session = request_session(request)
        session.regenerate()
        session["user_id"] = 7
        return {"token": rotate_csrf_token(session.live())}

    @app.post("/regenerate")
    async def regenerate(request: Request) -> None:
        request_session(request).regenerate()

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request_session(request).destroy()

    @app.get("/token-dependency")
    async def token_dependency(token: Annotated[str, Depends(csrf.token)]) -> dict[str, str]:
        return {"token": token}

    add_shared_routes(app)
    return app


def add_shared_routes(app: FastAPI) -> None:
    """Routes that do not touch the session: what they read of the request must still be there."""

    @app.api_route("/change", methods=["GET", "HEAD", "OPTIONS", *UNSAFE])
    async def change() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/form-fields")
    async def form_fields(
        note: Annotated[str, Form()], csrf_token: Annotated[str, Form()]
    ) -> dict[str, str]:
        return {"note": note}

    @app.post("/raw-body")
    async def raw_body(request: Request) -> dict[str, str]:
        return {"body": (await request.body()).decode()}

    @app.post("/json")
    async def json_body(note: Note) -> dict[str, str]:
        return {"note": note.text}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()


@dataclass
class Site:
    client: httpx.AsyncClient
    app: FastAPI
    door: str

    async def token(self) -> str:
        response = await self.client.get("/form")
        assert response.status_code == 200
        token: str = response.json()["token"]
        return token


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    url: str = request.getfixturevalue("redis_server_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    redis_store = RedisStore.from_url(url, prefix=prefix, timeout=STORE_DEADLINE)
    yield redis_store
    await redis_store.aclose()


@pytest.fixture(params=["typed", "classic"])
def door(request: pytest.FixtureRequest) -> str:
    door: str = request.param
    return door


async def open_site(door: str, store: SessionStore, clock: FakeClock, **options: Any) -> Site:
    app = (typed_app if door == "typed" else classic_app)(store, clock, **options)
    return Site(httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL), app, door)


@pytest.fixture
async def site(door: str, store: SessionStore, clock: FakeClock) -> AsyncIterator[Site]:
    site = await open_site(door, store, clock)
    async with site.client:
        yield site


def detail(response: httpx.Response) -> str:
    """The detail of a CSRF refusal, which must be a 403 JSON answer."""
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/json"
    text: str = response.json()["detail"]
    assert text.startswith("CSRF check failed: ")
    return text


# -- the tokens ----------------------------------------------------------------------------------


def test_a_secret_is_256_random_bits_and_each_mask_differs_but_unmasks_to_it() -> None:
    """Masks are fresh per response (BREACH) and carry the secret; the secret never is the token."""
    secret = read_secret(new_secret())
    assert secret is not None
    assert len(secret) == SECRET_BYTES == 32
    tokens = {mask(secret) for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) == TOKEN_LENGTH and unmask(token) == secret for token in tokens)
    assert read_secret(new_secret()) != secret


# -- issuing -------------------------------------------------------------------------------------


async def test_a_token_in_the_header_or_the_form_field_lets_unsafe_requests_through(site: Site) -> None:
    """The token of the form page works from the X-CSRF-Token header and from the csrf_token field."""
    token = await site.token()
    for method in UNSAFE:
        response = await site.client.request(method, "/change", headers={"X-CSRF-Token": token})
        assert response.status_code == 200, (method, response.text)
    response = await site.client.post("/change", data={"csrf_token": token})
    assert response.status_code == 200, response.text


async def test_each_response_gets_a_new_mask_of_the_same_secret(site: Site) -> None:
    """Two pages give two different tokens (nothing stable for BREACH to find), and both work."""
    first, second = await site.token(), await site.token()
    assert first != second
    for token in (first, second):
        assert (await site.client.post("/change", headers={"X-CSRF-Token": token})).status_code == 200


async def test_a_token_for_a_visitor_without_a_session_creates_the_session(site: Site) -> None:
    """The login form of an anonymous visitor is protected: asking for a token starts a session."""
    response = await site.client.get("/form")
    assert "set-cookie" in response.headers
    again = await site.client.get("/form")
    assert "set-cookie" not in again.headers  # the secret is stored once, then only masked


async def test_the_classic_door_also_gives_the_token_through_the_dependency(
    store: SessionStore, clock: FakeClock
) -> None:
    """``Depends(csrf.token)`` works with ``request.session`` as with the typed door."""
    site = await open_site("classic", store, clock)
    async with site.client:
        token = (await site.client.get("/token-dependency")).json()["token"]
        assert (await site.client.post("/change", headers={"X-CSRF-Token": token})).status_code == 200


# -- what is checked, and what is not ------------------------------------------------------------


async def test_safe_methods_are_never_checked_nor_load_the_session(door: str, clock: FakeClock) -> None:
    """GET, HEAD and OPTIONS pass without a token, and the check costs them no store call."""
    store = RecordingStore(MemoryStore(clock=clock))
    site = await open_site(door, store, clock)
    async with site.client:
        await site.token()
        calls = dict(store.calls)
        for method in ("GET", "HEAD", "OPTIONS"):
            assert (await site.client.request(method, "/change")).status_code == 200
        if door == "typed":  # the classic door loads every request with a cookie, CSRF or not
            assert dict(store.calls) == calls


@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_methods_without_a_token_get_a_403_saying_how_to_send_one(
    site: Site, method: str
) -> None:
    """POST, PUT, PATCH and DELETE without a token: 403, naming the header and the form field."""
    await site.token()
    text = detail(await site.client.request(method, "/change"))
    assert "no CSRF token was sent" in text
    assert "X-CSRF-Token header" in text
    assert "csrf_token field" in text


async def test_a_post_on_a_session_that_has_no_token_says_to_load_the_page_first(site: Site) -> None:
    """No session, or one never given a token: 403 explaining where the token comes from."""
    response = await site.client.post("/change", headers={"X-CSRF-Token": mask(bytes(32))})
    assert "has no CSRF token" in detail(response)


async def test_a_refusal_is_a_403_even_when_the_body_fails_validation(site: Site) -> None:
    """A route with a body model still answers 403 (not 422) to a request that has no token."""
    await site.token()
    assert "no CSRF token was sent" in detail(await site.client.post("/json", json={}))


# -- malformed and foreign tokens ----------------------------------------------------------------


def replayed_secret(token: str) -> str:
    """The unmasked secret behind a token, as an attacker who saw it would send it."""
    secret = unmask(token)
    assert secret is not None
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


MALFORMED = {
    "empty": lambda token: "",
    "too-short": lambda token: token[:-1],
    "too-long": lambda token: token + "A",
    "not-base64": lambda token: token[:-1] + "!",
    "padded": lambda token: token[:-2] + "==",
    "unmasked-secret": replayed_secret,
}


@pytest.mark.parametrize("spoil", list(MALFORMED), ids=list(MALFORMED))
async def test_a_malformed_token_gets_a_403(site: Site, spoil: str) -> None:
    """Empty, wrong length, not base64url, or the bare secret replayed: each a 403, never a 500."""
    token = await site.token()
    sent = MALFORMED[spoil](token)
    for response in (
        await site.client.post("/change", headers={"X-CSRF-Token": sent}),
        await site.client.post("/change", data={"csrf_token": sent}),
    ):
        text = detail(response)
        assert ("no CSRF token was sent" if spoil == "empty" else "malformed") in text


async def test_a_token_from_another_session_gets_a_403(site: Site) -> None:
    """A token is bound to its session: one taken from another visitor's page is refused."""
    await site.token()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(site.app), base_url=BASE_URL) as other:
        theirs = (await other.get("/form")).json()["token"]
    text = detail(await site.client.post("/change", headers={"X-CSRF-Token": theirs}))
    assert "does not belong to this session" in text


async def test_a_non_ascii_token_gets_a_403_not_a_500(site: Site) -> None:
    """A form field with characters outside base64url is malformed, whatever the encoding."""
    token = await site.token()
    text = detail(await site.client.post("/change", data={"csrf_token": token[:-1] + "é"}))
    assert "malformed" in text


# -- other sites ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver"},
        {"Origin": "https://testserver.evil.example"},
    ],
    ids=["sec-fetch-site", "foreign-origin", "null-origin", "http-origin-on-https", "lookalike-origin"],
)
async def test_a_request_from_another_site_fails_even_with_a_valid_token(
    site: Site, headers: dict[str, str]
) -> None:
    """The browser's word that a request is cross-site outweighs a token (a leaked one, say)."""
    token = await site.token()
    response = await site.client.post("/change", headers={"X-CSRF-Token": token, **headers})
    assert "another site" in detail(response)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {},
    ],
    ids=["same-origin", "same-site", "typed-by-the-user", "no-browser-headers"],
)
async def test_same_origin_pages_and_non_browser_clients_pass_with_a_token(
    site: Site, headers: dict[str, str]
) -> None:
    """An SPA on the same origin, a subdomain's page, and curl are not refused for their headers."""
    token = await site.token()
    response = await site.client.post("/change", headers={"X-CSRF-Token": token, **headers})
    assert response.status_code == 200, response.text


async def test_a_trusted_origin_may_post_with_a_token(
    door: str, store: SessionStore, clock: FakeClock
) -> None:
    """``trusted_origins`` lets another origin's pages send unsafe requests (still with a token)."""
    site = await open_site(door, store, clock, trusted_origins=["https://App.example.com/"])
    async with site.client:
        token = await site.token()
        headers = {"X-CSRF-Token": token, "Origin": "https://app.example.com"}
        assert (await site.client.post("/change", headers=headers)).status_code == 200
        assert "no CSRF token" in detail(
            await site.client.post("/change", headers={"Origin": "https://app.example.com"})
        )


# -- the route still reads its body --------------------------------------------------------------


async def test_reading_the_form_field_leaves_the_body_and_the_form_to_the_route(site: Site) -> None:
    """The check reads the form, and the route's Form() parameters and request.body() still work."""
    token = await site.token()
    fields = {"note": "hi", "csrf_token": token}
    assert (await site.client.post("/form-fields", data=fields)).json() == {"note": "hi"}
    multipart = await site.client.post("/form-fields", data=fields, files={"f": ("a.txt", b"x")})
    assert multipart.json() == {"note": "hi"}
    raw = await site.client.post("/raw-body", data=fields)
    assert raw.json()["body"] == f"note=hi&csrf_token={token}"
    assert (
        await site.client.post("/json", json={"text": "hi"}, headers={"X-CSRF-Token": token})
    ).json() == {"note": "hi"}


async def test_without_python_multipart_urlencoded_forms_still_work_and_multipart_says_what_to_do(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The urlencoded body is parsed by the library itself; a multipart form is refused with advice."""
    monkeypatch.setattr(csrf_module, "HAS_MULTIPART", False)
    token = await site.token()
    raw = await site.client.post("/raw-body", data={"a": "1", "csrf_token": token})
    assert raw.json()["body"] == f"a=1&csrf_token={token}"
    assert "no CSRF token was sent" in detail(await site.client.post("/raw-body", data={"a": "1"}))
    multipart = await site.client.post("/raw-body", data={"csrf_token": token}, files={"f": ("a", b"x")})
    assert "pip install python-multipart" in detail(multipart)


# -- login and logout ----------------------------------------------------------------------------


async def test_login_works_with_the_anonymous_token_and_rotates_it(site: Site) -> None:
    """Login CSRF: the anonymous form's token admits the login; afterwards only the new token works."""
    anonymous = await site.token()
    login = await site.client.post("/login", data={"csrf_token": anonymous})
    assert login.status_code == 200, login.text
    fresh = login.json()["token"]
    assert "does not belong to this session" in detail(
        await site.client.post("/change", headers={"X-CSRF-Token": anonymous})
    )
    assert (await site.client.post("/change", headers={"X-CSRF-Token": fresh})).status_code == 200


async def test_the_login_helper_ends_the_pre_login_token(store: SessionStore, clock: FakeClock) -> None:
    """``sessions.users.login`` drops the CSRF secret with the old ID: a token seen before the login
    is refused after it, and the next page gets a token that works."""
    site = await open_site("typed", store, clock)
    async with site.client:
        anonymous = await site.token()
        login = await site.client.post("/login-helper", headers={"X-CSRF-Token": anonymous})
        assert login.status_code == 200, login.text
        refused = await site.client.post("/change", headers={"X-CSRF-Token": anonymous})
        assert refused.status_code == 403
        fresh = await site.token()
        assert (await site.client.post("/change", headers={"X-CSRF-Token": fresh})).status_code == 200


async def test_regenerate_alone_keeps_the_token(site: Site) -> None:
    """The secret lives in the session's state, which follows the session to its new ID."""
    token = await site.token()
    old_cookie = site.client.cookies["session"]
    assert (await site.client.post("/regenerate", headers={"X-CSRF-Token": token})).status_code == 200
    assert site.client.cookies["session"] != old_cookie
    assert (await site.client.post("/change", headers={"X-CSRF-Token": token})).status_code == 200


async def test_logout_ends_the_token(site: Site) -> None:
    """After destroy the session has no secret: the old token is refused until a page gives a new one."""
    token = await site.token()
    assert (await site.client.post("/logout", headers={"X-CSRF-Token": token})).status_code == 200
    assert "has no CSRF token" in detail(await site.client.post("/change", headers={"X-CSRF-Token": token}))
    fresh = await site.token()
    assert (await site.client.post("/change", headers={"X-CSRF-Token": fresh})).status_code == 200


# -- never in logs -------------------------------------------------------------------------------


async def test_tokens_and_secrets_never_appear_in_logs_or_answers(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures are logged on the security logger, without the token sent or the session's secret."""
    caplog.set_level(logging.DEBUG)
    token = await site.token()
    secret = replayed_secret(token)
    sent = [token[:-1], secret, token[:-1] + "!", mask(bytes(32))]
    answers = [await site.client.post("/change", headers={"X-CSRF-Token": value}) for value in sent]
    answers.append(await site.client.post("/change", headers={"X-CSRF-Token": token, "Origin": "null"}))
    assert all(answer.status_code == 403 for answer in answers)
    failures = [r for r in caplog.records if r.name == "fastapi_sessions.security" and "CSRF" in r.message]
    assert len(failures) == len(answers)
    texts = [caplog.text, *(answer.text for answer in answers)]
    for value in [token, secret, *sent]:
        assert not any(value in text for text in texts)


def test_tokens_are_compared_in_constant_time() -> None:
    """The check compares the unmasked token with the secret through hmac.compare_digest only."""
    tree = ast.parse(inspect.getsource(csrfcheck))
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "hmac.compare_digest" in calls
    equalities = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
    ]
    assert not [text for text in equalities if "secret" in text or "unmasked" in text or "sent" in text]


async def test_during_a_store_outage_an_unsafe_request_gets_a_503_not_a_403(
    door: str, clock: FakeClock
) -> None:
    """A degraded session cannot prove a token either way: the answer says retry (503), not forged."""
    store = RecordingStore(MemoryStore(clock=clock))
    app = (typed_app if door == "typed" else classic_app)(
        store, clock, make_settings(on_store_error="degrade")
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        token = (await client.get("/form")).json()["token"]
        store.failing = {"load", "create", "update", "rename", "delete"}
        response = await client.post("/change", headers={"X-CSRF-Token": token})
        assert response.status_code == 503, response.text
        assert "retry-after" in response.headers
        store.failing = set()
        assert (await client.post("/change", headers={"X-CSRF-Token": token})).status_code == 200


async def test_the_token_survives_automatic_id_rotation_and_works_from_the_previous_id(
    door: str, store: SessionStore, clock: FakeClock
) -> None:
    """Rotation keeps the state, so a page's token outlives a rotation, also on a request that still
    carries the previous ID during the grace window."""
    # A grace window of an hour: on Redis it runs on real time, and only a hang would outlast it.
    settings = make_settings(rotate_interval=7200, rotate_grace=3600)
    app = (typed_app if door == "typed" else classic_app)(store, clock, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE_URL) as client:
        token = (await client.get("/form")).json()["token"]
        previous = client.cookies["session"]
        clock.advance(7200)
        rotated = await client.get("/form")
        assert client.cookies["session"] != previous, "the read was due for rotation"
        assert (await client.post("/change", headers={"X-CSRF-Token": token})).status_code == 200
        fresh = rotated.json()["token"]
        late = {"X-CSRF-Token": fresh, "Cookie": f"session={previous}"}
        client.cookies.clear()
        assert (await client.post("/change", headers=late)).status_code == 200


@pytest.mark.parametrize("door", ["typed", "classic"])
def test_a_websocket_handshake_from_another_site_is_closed_before_the_endpoint(
    door: str, clock: FakeClock
) -> None:
    """Cross-site WebSocket hijacking: a handshake whose Origin is another site's is closed with code
    1008 (policy violation); the app's own pages, and clients that send no Origin, connect."""
    app = (typed_app if door == "typed" else classic_app)(MemoryStore(clock=clock), clock)
    with TestClient(app, base_url="https://testserver") as client:
        evil = {"origin": "https://evil.example"}
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("wss://testserver/ws", headers=evil),
        ):
            pass
        assert closed.value.code == 1008
        for headers in ({"origin": "https://testserver"}, {}):
            with client.websocket_connect("wss://testserver/ws", headers=headers) as ws:
                assert ws.receive_text() == "hello"
