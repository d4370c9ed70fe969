"""The security guarantees of the core (memory store, no Redis), as listed in docs/security.md.

Each test proves a row of the table "What is guaranteed, and the test that proves it" there. Requests go
through a raw ASGI caller (``tests.test_bad_input.call``) so that exactly the headers written here reach
the app.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import ast
import base64
import hashlib
import logging
import math
import pathlib
import random
import secrets
import uuid
from collections import Counter
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

import pytest
from fastapi import Depends, HTTPException
from fastapi.responses import JSONResponse
from itsdangerous import TimestampSigner

import fastapi_sessions
from fastapi_sessions import SessionConfigError, SessionTooLargeError
from fastapi_sessions.signing import SessionSigner, new_session_id, salt
from fastapi_sessions.stores import MemoryStore, SessionMeta
from fastapi_sessions.testing import FakeClock, session_store_key

from .conftest import OLD_SECRET, SECRET, UserSession, make_settings
from .test_bad_input import (
    SECURITY_LOGGER,
    Env,
    RecordingStore,
    Reply,
    _assert_record_discarded,
    call,
    cookie_header,
    id_of,
    make_env,
    security_warnings,
)

pytestmark = pytest.mark.anyio

PACKAGE_DIR = pathlib.Path(fastapi_sessions.__file__).parent
URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def with_extra_routes(env: Env) -> Env:
    """Add the routes these tests need to an env's app: expiry, errors, cache headers."""
    manager, app, seen = env.manager, env.app, env.seen
    Session = Annotated[UserSession, Depends(manager.get_session)]

    @app.post("/remember/{seconds}")
    async def remember(seconds: int, session: Session) -> dict[str, bool]:
        manager.set_expiry(session, seconds)
        session.user_id = session.user_id or 1
        return {"ok": True}

    @app.post("/boom")
    async def boom(session: Session) -> None:
        session.cart.append("boom")
        raise RuntimeError("handler failed")

    @app.post("/unavailable")
    async def unavailable(session: Session) -> JSONResponse:
        session.cart.append("503")
        return JSONResponse({"detail": "down"}, status_code=503)

    @app.post("/bad-gateway")
    async def bad_gateway(session: Session) -> None:
        session.cart.append("502")
        raise HTTPException(status_code=502)

    @app.post("/cacheable")
    async def cacheable(session: Session) -> JSONResponse:
        session.prefs["c"] = "1"
        return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=600"})

    @app.get("/varied")
    async def varied(session: Session) -> JSONResponse:
        seen.append(session.model_dump())
        return JSONResponse({"ok": True}, headers={"Vary": "Accept-Encoding"})

    @app.post("/big/{size}")
    async def big(size: int, session: Session) -> dict[str, bool]:
        session.prefs["big"] = "x" * size
        return {"ok": True}

    @app.post("/switch/{user_id}")
    async def switch(user_id: int, session: Session) -> dict[str, bool]:
        """Log in, clearing the previous identity's data when the user changes."""
        if session.user_id is not None and session.user_id != user_id:
            manager.destroy(session)
        manager.regenerate(session)
        session.user_id = user_id
        return {"ok": True}

    @app.post("/lose-race")
    async def lose_race(session: Session) -> dict[str, bool]:
        """Another request destroys this session while this one is running."""
        for key in list(env.inner._data):
            await env.inner.delete(key)
        session.cart.append("late")
        return {"ok": True}

    return env


@pytest.fixture
def env(clock: FakeClock, store: MemoryStore, caplog: pytest.LogCaptureFixture) -> Env:
    caplog.set_level(logging.DEBUG, logger="fastapi_sessions")
    return with_extra_routes(make_env(clock, store))


def build(env: Env, **settings: Any) -> Env:
    return with_extra_routes(make_env(env.clock, env.inner, **settings))


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, Any]]:
    first, *rest = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attributes: dict[str, Any] = {}
    for part in rest:
        key, eq, val = part.partition("=")
        attributes[key.lower()] = val if eq else True
    return name, value, attributes


def with_cookie(cookie: str) -> list[tuple[bytes, bytes]]:
    return [cookie_header(f"session={cookie}")]


def bad_signature(cookie: str) -> str:
    """``cookie`` with the first character of its signature changed (6 signature bits altered)."""
    head, ts, sig = cookie.split(".")
    return f"{head}.{ts}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


def package_sources() -> dict[pathlib.Path, str]:
    return {path: path.read_text() for path in sorted(PACKAGE_DIR.rglob("*.py"))}


# -- session identifier ---------------------------------------------------------------------------


def test_session_ids_are_unique_url_safe_and_carry_at_least_128_random_bits() -> None:
    """100,000 new IDs are distinct, each 43 URL-safe characters (256 random bits), symbols evenly used."""
    ids = [new_session_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    for session_id in ids:
        assert len(session_id) == 43
        assert URLSAFE.issuperset(session_id)
    decoded = {base64.urlsafe_b64decode(i + "=") for i in ids[:1000]}
    assert {len(d) for d in decoded} == {32}, "256 random bits per ID"
    assert 43 * math.log2(len(URLSAFE)) >= 128
    # Every symbol of the alphabet is used about equally (positions 0-41 carry 6 full bits each).
    counts = Counter(char for session_id in ids for char in session_id[:42])
    mean = len(ids) * 42 / 64
    assert set(counts) == URLSAFE
    assert all(abs(n - mean) < 0.05 * mean for n in counts.values()), counts.most_common(3)


async def test_session_ids_come_from_secrets_only(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """New and regenerated IDs come from secrets.token_urlsafe, never from random or uuid."""
    minted: list[str] = []

    def fake_token_urlsafe(nbytes: int | None = None) -> str:
        assert nbytes is not None
        assert nbytes >= 16
        value = f"{len(minted):043d}"
        minted.append(value)
        return value

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("session IDs must come from `secrets` only")

    monkeypatch.setattr(secrets, "token_urlsafe", fake_token_urlsafe)
    for name in ("random", "getrandbits", "randbytes", "choice", "choices", "randint", "sample"):
        monkeypatch.setattr(random, name, forbidden)
    for name in ("uuid1", "uuid3", "uuid4", "uuid5"):
        monkeypatch.setattr(uuid, name, forbidden)
    created = await call(env.app, "POST", "/write")
    first = created.cookie()
    assert first is not None
    assert id_of(first) == minted[-1]
    regenerated = await call(env.app, "POST", "/login/1", with_cookie(first))
    second = regenerated.cookie()
    assert second is not None
    assert id_of(second) == minted[-1]
    assert len(minted) == 2


def test_package_never_imports_random_or_uuid() -> None:
    """No module of the package imports random or uuid (UUID4 has only 122 random bits)."""
    for path, source in package_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & {"random", "uuid"}, f"{path}: imports {names}"


async def test_ids_are_meaningless_and_the_cookie_holds_only_id_timestamp_and_signature(env: Env) -> None:
    """Same data, different IDs; the cookie holds the ID, a timestamp and a signature, nothing else."""
    first = (await call(env.app, "POST", "/write")).cookie()
    second = (await call(env.app, "POST", "/write")).cookie()
    assert first is not None
    assert second is not None
    assert id_of(first) != id_of(second), "identical data, different IDs"
    assert env.inner._data[session_store_key(id_of(first))].record().fields == (
        env.inner._data[session_store_key(id_of(second))].record().fields
    )
    signer = TimestampSigner(
        SECRET, salt=salt("session"), key_derivation="hmac", digest_method=hashlib.sha256
    )
    for cookie in (first, second):
        assert cookie.count(".") == 2, "the cookie holds the ID, the timestamp and the signature only"
        payload, signed_at = signer.unsign(cookie, return_timestamp=True)
        assert len(payload) == 43
        assert URLSAFE.issuperset(payload.decode())
        assert signed_at.timestamp() == int(env.clock.time())


async def test_a_validly_signed_unknown_id_is_never_adopted(env: Env) -> None:
    """A write under a signed ID the server never issued gets a fresh ID; the chosen one is not stored."""
    chosen = new_session_id()
    reply = await call(env.app, "POST", "/write", with_cookie(env.sign(chosen)))
    assert reply.status == 200
    issued = reply.cookie()
    assert issued is not None
    assert id_of(issued) != chosen
    assert session_store_key(chosen) not in env.inner._data
    assert len(env.inner) == 1


async def test_unknown_ids_and_logouts_without_a_session_create_no_records(env: Env) -> None:
    """Thousands of unknown signed IDs and cookie-less logouts write nothing to the store."""
    await env.seed()
    before = len(env.inner)
    env.store.reset()
    for _ in range(1000):
        reply = await call(env.app, "GET", "/read", with_cookie(env.sign(new_session_id())))
        assert reply.status == 200
    for _ in range(1000):
        reply = await call(env.app, "POST", "/logout")
        assert reply.status == 200
        assert reply.cookie() is None
    for _ in range(200):  # logout with an unknown but validly signed ID
        reply = await call(env.app, "POST", "/logout", with_cookie(env.sign(new_session_id())))
        assert reply.status == 200
    assert len(env.inner) == before
    assert env.store.calls["create"] == env.store.calls["update"] == env.store.calls["rename"] == 0


async def test_regenerate_gives_a_new_id_keeps_the_data_and_removes_the_old_key_at_once(env: Env) -> None:
    """regenerate() gives a new ID, keeps the data, moves the record in one store call; old cookie dead."""
    first = (await call(env.app, "POST", "/write")).cookie()
    assert first is not None
    old_key = session_store_key(id_of(first))
    before = dict(env.inner._data[old_key].record().fields)
    env.store.reset()
    reply = await call(env.app, "POST", "/login/5", with_cookie(first))
    second = reply.cookie()
    assert second is not None, "regenerate must emit a new cookie"
    assert id_of(second) != id_of(first)
    assert dict(env.store.calls) == {"load": 1, "rename": 1}, "one atomic store operation"
    assert old_key not in env.inner._data
    after = dict(env.inner._data[session_store_key(id_of(second))].record().fields)
    assert after == {**before, "user_id": b"5"}
    await call(env.app, "GET", "/read", with_cookie(second))
    assert env.seen[-1] == {"user_id": 5, "cart": [], "prefs": {"w": "1"}}
    await call(env.app, "GET", "/read", with_cookie(first))
    assert env.seen[-1] == env.anon, "the old cookie must give an anonymous session"


async def test_empty_or_short_ids_are_never_valid(env: Env) -> None:
    """Issued IDs are 43 characters, logout leaves no empty ID, a signed '' or short ID gives no session."""
    login = await call(env.app, "POST", "/login/1")
    cookie = login.cookie()
    assert cookie is not None
    assert len(id_of(cookie)) == 43
    regenerated = (await call(env.app, "POST", "/login/2", with_cookie(cookie))).cookie()
    assert regenerated is not None
    assert len(id_of(regenerated)) == 43
    logout = await call(env.app, "POST", "/logout", with_cookie(regenerated))
    assert logout.cookie() == '""', "destroy expires the cookie; it never carries an empty ID"
    signer = SessionSigner(
        [SECRET], max_age=env.manager.settings.max_age, clock=env.clock, namespace="session"
    )
    await env.inner.create(
        session_store_key(""), _record(env, {"user_id": b"666"}), ttl=env.manager.settings.max_age
    )
    env.store.reset()
    for payload in ("", "1", "abcdefg", "x" * 42):
        await call(env.app, "GET", "/read", with_cookie(signer.sign(payload)))
        assert env.seen[-1] == env.anon
    assert env.store.calls["load"] == 0


def _record(env: Env, fields: dict[str, bytes]) -> Any:
    from fastapi_sessions.stores import SessionRecord

    now = env.clock.time()
    return SessionRecord(fields, SessionMeta(now, now + env.manager.settings.max_age))


async def test_the_id_is_never_read_from_the_url_or_another_header(env: Env) -> None:
    """A valid cookie value in the query string, a custom header or Authorization is ignored."""
    _, cookie = await env.seed(user_id=8)
    attempts = [
        ({"query": f"session={cookie}".encode()}, []),
        ({"query": f"sessionid={cookie}&sid={cookie}".encode()}, []),
        ({}, [(b"x-session", cookie.encode())]),
        ({}, [(b"x-session-id", cookie.encode())]),
        ({}, [(b"authorization", f"Bearer {cookie}".encode())]),
        ({}, [(b"session", cookie.encode())]),
    ]
    for kwargs, headers in attempts:
        env.store.reset()
        reply = await call(env.app, "GET", "/read", headers, **kwargs)
        assert reply.status == 200
        assert env.seen[-1] == env.anon
        assert env.store.calls["load"] == 0
        reply = await call(env.app, "POST", "/write", headers, **kwargs)
        issued = reply.cookie()
        assert issued is not None
        assert id_of(issued) != id_of(cookie)


async def test_switching_user_gives_a_new_id_and_none_of_the_first_users_data(env: Env) -> None:
    """Logging in as B over A's session (destroy, then regenerate) leaves nothing of A, under a new ID."""
    as_a = (await call(env.app, "POST", "/switch/1")).cookie()
    assert as_a is not None
    with_cart = await call(env.app, "POST", "/write", with_cookie(as_a))
    assert with_cart.status == 200
    reply = await call(env.app, "POST", "/switch/2", with_cookie(as_a))
    as_b = reply.cookie()
    assert as_b is not None
    assert id_of(as_b) != id_of(as_a)
    assert session_store_key(id_of(as_a)) not in env.inner._data
    await call(env.app, "GET", "/read", with_cookie(as_b))
    assert env.seen[-1] == {"user_id": 2, "cart": [], "prefs": {}}, "no data of user A"
    await call(env.app, "GET", "/read", with_cookie(as_a))
    assert env.seen[-1] == env.anon


# -- cookie ---------------------------------------------------------------------------------------


async def test_default_cookie_is_path_root_secure_httponly_samesite_lax_and_nothing_else(env: Env) -> None:
    """The default Set-Cookie has exactly Path=/, Secure, HttpOnly, SameSite=Lax: no Domain, no Max-Age."""
    reply = await call(env.app, "POST", "/write")
    (header,) = reply.set_cookies
    _, value, attributes = parse_set_cookie(header)
    assert value
    assert attributes == {"path": "/", "secure": True, "httponly": True, "samesite": "Lax"}


def test_default_cookie_name_is_generic_and_the_host_prefix_is_one_setting_away() -> None:
    """The default name `session` names no framework; `__Host-session` works with every other default."""
    assert make_settings().cookie_name == "session"
    assert make_settings(cookie_name="__Host-session").cookie_name == "__Host-session"


@pytest.mark.parametrize(
    "overrides",
    [
        {"cookie_domain": "example.com"},
        {"cookie_path": "/app"},
        {"cookie_secure": False},
    ],
)
def test_host_prefix_with_domain_path_or_insecure_cookie_fails_at_startup(
    overrides: dict[str, Any],
) -> None:
    """A __Host- cookie name with a Domain, a Path other than / or Secure off is a SessionConfigError."""
    with pytest.raises(SessionConfigError):
        make_settings(cookie_name="__Host-session", **overrides)


async def _lifecycle(env: Env) -> list[Reply]:
    """Create, change, remember, regenerate, rotate-free re-issue, log out: every cookie kind."""
    replies = [await call(env.app, "POST", "/write")]
    cookie = replies[-1].cookie()
    assert cookie is not None
    replies.append(await call(env.app, "POST", "/remember/3600", with_cookie(cookie)))
    cookie = replies[-1].cookie() or cookie
    replies.append(await call(env.app, "POST", "/login/77", with_cookie(cookie)))
    cookie = replies[-1].cookie() or cookie
    replies.append(await call(env.app, "GET", "/read", with_cookie(cookie)))
    replies.append(await call(env.app, "POST", "/logout", with_cookie(cookie)))
    return replies


async def test_every_emitted_cookie_fits_in_4096_bytes(env: Env) -> None:
    """Every Set-Cookie of a full lifecycle, with a long domain and path, is at most 4,096 bytes."""
    custom = build(env, cookie_domain="sub.example.com", cookie_path="/some/app/path")
    emitted = [
        header for e in (env, custom) for reply in await _lifecycle(e) for header in reply.set_cookies
    ]
    assert len(emitted) >= 8
    for header in emitted:
        name, value, _ = parse_set_cookie(header)
        assert len(f"{name}={value}".encode()) <= 4096
        assert len(header.encode()) <= 4096


@pytest.mark.parametrize("size", [5 * 1024, 100 * 1024])
async def test_an_oversized_incoming_cookie_gives_no_session_and_no_store_call(env: Env, size: int) -> None:
    """A 5 KB or 100 KB cookie gives an anonymous session without any store call."""
    _, cookie = await env.seed()
    value = cookie + "A" * (size - len(cookie))
    env.store.reset()
    reply = await call(env.app, "GET", "/read", with_cookie(value))
    assert reply.status == 200
    assert env.seen[-1] == env.anon
    assert sum(env.store.calls.values()) == 0


async def test_the_logout_cookie_has_the_login_cookies_name_path_and_domain(env: Env) -> None:
    """Logout expires the cookie under the login cookie's name, Path, Domain and flags, with Max-Age=0."""
    custom = build(env, cookie_domain="example.com", cookie_path="/app")
    login = await call(custom.app, "POST", "/login/1")
    (set_header,) = login.set_cookies
    name, value, set_attributes = parse_set_cookie(set_header)
    logout = await call(custom.app, "POST", "/logout", with_cookie(value))
    (delete_header,) = logout.set_cookies
    delete_name, _, delete_attributes = parse_set_cookie(delete_header)
    assert delete_name == name
    assert delete_attributes["path"] == set_attributes["path"] == "/app"
    assert delete_attributes["domain"] == set_attributes["domain"] == "example.com"
    for flag in ("secure", "httponly", "samesite"):
        assert delete_attributes.get(flag) == set_attributes.get(flag)
    assert delete_attributes["max-age"] == "0"
    assert parsedate_to_datetime(delete_attributes["expires"]).timestamp() < env.clock.time()


async def test_no_set_cookie_when_there_is_nothing_to_persist(env: Env) -> None:
    """An untouched anonymous session, or a logout without one, sends no Set-Cookie and stores nothing."""
    for method, path in (("GET", "/read"), ("POST", "/logout"), ("GET", "/bare")):
        reply = await call(env.app, method, path)
        assert reply.status == 200
        assert reply.set_cookies == [], f"{method} {path} set a cookie"
    assert len(env.inner) == 0


async def test_vary_cookie_whenever_the_session_was_accessed(env: Env) -> None:
    """A response that used the session has Vary: Cookie (added to the handler's own); others have none."""
    cookie = (await call(env.app, "POST", "/write")).cookie()
    assert cookie is not None
    for method, path, headers in (
        ("GET", "/read", []),
        ("GET", "/read", with_cookie(cookie)),
        ("POST", "/logout", []),
        ("POST", "/write", with_cookie(cookie)),
    ):
        reply = await call(env.app, method, path, headers)
        tokens = {t.strip().lower() for v in reply.header_values("vary") for t in v.split(b",")}
        assert b"cookie" in tokens, f"{method} {path}: no Vary: Cookie"
    bare = await call(env.app, "GET", "/bare", with_cookie(cookie))
    assert bare.header_values("vary") == [], "an untouched session must not add Vary"
    varied = await call(env.app, "GET", "/varied", with_cookie(cookie))
    assert varied.header_values("vary") == [b"Accept-Encoding, Cookie"]


async def test_every_response_that_sets_the_cookie_is_not_cacheable(env: Env) -> None:
    """Every response that sets the cookie (create, regenerate, logout, key re-issue...) says no-store."""
    rotated_from = build(env, secret_key=OLD_SECRET)
    old = (await call(rotated_from.app, "POST", "/write")).cookie()
    assert old is not None
    rotated = build(env, secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET])
    replies = [*await _lifecycle(env), await call(rotated.app, "GET", "/read", with_cookie(old))]
    setting = [r for r in replies if r.set_cookies]
    assert len(setting) >= 5
    for reply in setting:
        values = b",".join(reply.header_values("cache-control")).lower()
        assert b"no-store" in values or b'no-cache="set-cookie"' in values, reply.set_cookies


async def test_a_set_cookie_response_is_not_cacheable_even_when_the_handler_allows_caching(
    env: Env,
) -> None:
    """A handler's Cache-Control: public does not make a response that sets the cookie cacheable."""
    reply = await call(env.app, "POST", "/cacheable")
    assert reply.set_cookies, "the handler wrote, so a cookie is set"
    values = b",".join(reply.header_values("cache-control")).lower()
    assert b"no-store" in values or b'no-cache="set-cookie"' in values, (
        f"a Set-Cookie response is cacheable: Cache-Control: {values!r}"
    )


async def test_cookie_ends_with_the_browser_by_default_and_its_max_age_is_capped(env: Env) -> None:
    """No Max-Age or Expires by default; the Max-Age set_expiry gives never exceeds SESSION_MAX_AGE."""
    reply = await call(env.app, "POST", "/write")
    _, value, attributes = parse_set_cookie(reply.set_cookies[0])
    assert "max-age" not in attributes
    assert "expires" not in attributes
    short = build(env, max_age=3600)
    reply = await call(short.app, "POST", "/remember/86400")
    _, _, attributes = parse_set_cookie(reply.set_cookies[0])
    assert 0 < int(attributes["max-age"]) <= 3600
    reply = await call(env.app, "POST", "/remember/10000000", with_cookie(value))
    _, _, attributes = parse_set_cookie(reply.set_cookies[0])
    assert int(attributes["max-age"]) <= env.manager.settings.max_age


# -- signing --------------------------------------------------------------------------------------


async def test_other_salt_future_or_too_old_signatures_are_rejected_before_any_store_lookup(
    env: Env,
) -> None:
    """Signed for another use, dated ahead or older than SESSION_MAX_AGE: no session, no store read."""
    session_id, _ = await env.seed(user_id=16)
    now, max_age = env.clock.time(), env.manager.settings.max_age
    other_salt = TimestampSigner(SECRET, salt=b"csrf", key_derivation="hmac", digest_method=hashlib.sha256)
    values = [
        other_salt.sign(session_id).decode(),
        SessionSigner([SECRET], max_age=max_age, clock=FakeClock(now + 3600), namespace="session").sign(
            session_id
        ),
        SessionSigner([SECRET], max_age=max_age, clock=FakeClock(now + 61), namespace="session").sign(
            session_id
        ),
        SessionSigner(
            [SECRET], max_age=max_age, clock=FakeClock(now - max_age - 1), namespace="session"
        ).sign(session_id),
    ]
    for value in values:
        env.store.reset()
        reply = await call(env.app, "GET", "/read", with_cookie(value))
        assert reply.status == 200
        assert env.seen[-1] == env.anon, value
        assert env.store.calls["load"] == 0, "the MAC and age are checked before any store lookup"


async def test_key_rotation_in_three_phases_keeps_users_logged_in(env: Env) -> None:
    """Old key; new key with the old as fallback (old cookies re-issued); new key only (old one refused)."""
    phase1 = build(env, secret_key=OLD_SECRET)
    c1 = (await call(phase1.app, "POST", "/login/18")).cookie()
    assert c1 is not None

    phase2 = build(env, secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET])
    reply = await call(phase2.app, "GET", "/read", with_cookie(c1))
    assert phase2.seen[-1]["user_id"] == 18, "[old, new]: an old-key cookie still works"
    c2 = reply.cookie()
    assert c2 is not None, "[old, new]: an old-key cookie is re-issued under the new key"
    assert id_of(c2) == id_of(c1)
    assert (
        SessionSigner([SECRET], max_age=10**6, clock=env.clock, namespace="session").verify(c2) is not None
    )
    fresh = (await call(phase2.app, "POST", "/login/19")).cookie()
    assert fresh is not None
    assert (
        SessionSigner([OLD_SECRET], max_age=10**6, clock=env.clock, namespace="session").verify(fresh)
        is None
    )

    phase3 = build(env, secret_key=SECRET)
    phase3.store.reset()
    await call(phase3.app, "GET", "/read", with_cookie(c1))
    assert phase3.seen[-1] == phase3.anon, "[new]: the removed key is rejected"
    assert phase3.store.calls["load"] == 0
    await call(phase3.app, "GET", "/read", with_cookie(c2))
    assert phase3.seen[-1]["user_id"] == 18
    await call(phase3.app, "GET", "/read", with_cookie(fresh))
    assert phase3.seen[-1]["user_id"] == 19


def test_signatures_are_never_compared_with_equality() -> None:
    """No == on a signature, MAC or digest in the package; itsdangerous verifies in constant time."""
    suspicious = ("sig", "mac", "digest", "hmac", "token")
    offenders = []
    for path, source in package_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                text = ast.unparse(node).lower()
                if any(word in text for word in suspicious):
                    offenders.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
    signing = (PACKAGE_DIR / "signing.py").read_text()
    assert ".unsign(" in signing, "verification goes through itsdangerous (hmac.compare_digest)"


# -- lifecycle and expiry -------------------------------------------------------------------------


async def test_logout_deletes_the_record_and_a_replayed_cookie_is_anonymous(env: Env) -> None:
    """After logout the record is gone; the old cookie is anonymous and, on a write, gets a new ID."""
    cookie = (await call(env.app, "POST", "/login/22")).cookie()
    assert cookie is not None
    key = session_store_key(id_of(cookie))
    assert key in env.inner._data
    logout = await call(env.app, "POST", "/logout", with_cookie(cookie))
    assert logout.cookie() == '""'
    assert key not in env.inner._data
    env.store.reset()
    await call(env.app, "GET", "/read", with_cookie(cookie))
    assert env.seen[-1] == env.anon
    assert env.store.writes() == 0
    reply = await call(env.app, "POST", "/write", with_cookie(cookie))
    issued = reply.cookie()
    assert issued is not None
    assert id_of(issued) != id_of(cookie)
    assert key not in env.inner._data


async def test_a_session_used_every_half_idle_window_still_ends_at_the_absolute_limit(env: Env) -> None:
    """Rolling refreshes never carry a session past SESSION_MAX_AGE from its creation."""
    short = build(env, max_age=100, idle_timeout=40)
    cookie = (await call(short.app, "POST", "/login/24")).cookie()
    assert cookie is not None
    key = session_store_key(id_of(cookie))
    elapsed = 0
    while elapsed + 20 < 100:
        short.clock.advance(20)
        elapsed += 20
        await call(short.app, "GET", "/read", with_cookie(cookie))
        assert short.seen[-1]["user_id"] == 24, f"alive at {elapsed}s"
    short.clock.advance(99 - elapsed)
    await call(short.app, "GET", "/read", with_cookie(cookie))
    assert short.seen[-1]["user_id"] == 24, "alive at 99s"
    short.clock.advance(2)
    # A cookie re-signed later (regenerate, set_expiry) verifies; the server limit still holds.
    for value in (cookie, short.sign(id_of(cookie))):
        await call(short.app, "GET", "/read", with_cookie(value))
        assert short.seen[-1] == short.anon, "dead at 101s, whatever the rolling refreshes"
    assert key not in short.inner._data


async def test_raising_created_at_or_expires_at_in_the_store_does_not_extend_the_life(
    env: Env,
) -> None:
    """A record whose created_at or expires_at was moved later still ends at the server's limit."""
    short = build(env, max_age=100)
    start = short.clock.time()
    for tamper in ("created_at", "expires_at"):
        session_id, _ = await short.seed(user_id=24)
        key = session_store_key(session_id)
        short.clock.advance(50)
        entry = short.inner._data[key]
        fields, meta, _ = entry.record()
        if tamper == "created_at":
            entry.pack(fields, meta._replace(created_at=short.clock.time()))
        else:
            entry.pack(fields, meta._replace(expires_at=meta.expires_at + 10**6))
        entry.deadline = short.clock.monotonic() + 10**6  # the store's own TTL would not save us
        short.clock.advance(51)
        await call(short.app, "GET", "/read", with_cookie(short.sign(session_id)))
        assert short.seen[-1] == short.anon, f"raised {tamper} extended the session"
    assert short.clock.time() > start


async def test_an_expired_session_is_anonymous_deleted_and_its_id_never_reused(env: Env) -> None:
    """After the idle timeout the cookie is anonymous, the record is deleted and a write gets a new ID."""
    idle = build(env, idle_timeout=60)
    cookie = (await call(idle.app, "POST", "/login/25")).cookie()
    assert cookie is not None
    key = session_store_key(id_of(cookie))
    idle.clock.advance(61)
    await call(idle.app, "GET", "/read", with_cookie(cookie))
    assert idle.seen[-1] == idle.anon
    assert key not in idle.inner._data
    reply = await call(idle.app, "POST", "/write", with_cookie(cookie))
    issued = reply.cookie()
    assert issued is not None
    assert id_of(issued) != id_of(cookie)
    assert key not in idle.inner._data


@pytest.mark.parametrize("path", ["/boom", "/unavailable", "/bad-gateway"])
async def test_no_changes_are_saved_when_the_handler_fails(env: Env, path: str) -> None:
    """A handler that raises or answers 5xx leaves the store and the cookie as they were."""
    _, cookie = await env.seed(fields={"user_id": b"27", "cart": b'["a"]'})
    snapshot = {k: (dict(e.record().fields), e.record().meta) for k, e in env.inner._data.items()}
    env.store.reset()
    reply = await call(env.app, "POST", path, with_cookie(cookie))
    assert reply.status >= 500 or isinstance(reply.error, RuntimeError)
    assert reply.set_cookies == []
    assert env.store.writes() == 0
    assert {k: (dict(e.record().fields), e.record().meta) for k, e in env.inner._data.items()} == snapshot
    reply = await call(env.app, "POST", path)  # a new session is not created either
    assert reply.set_cookies == []
    assert env.store.writes() == 0


# -- store and serialization ----------------------------------------------------------------------


def test_package_never_imports_pickle_or_other_unsafe_deserialisers() -> None:
    """No pickle, marshal, shelve, dill or yaml.load anywhere in the package."""
    banned_modules = {
        "pickle",
        "cPickle",
        "_pickle",
        "marshal",
        "shelve",
        "dill",
        "cloudpickle",
        "jsonpickle",
    }
    offenders = []
    for path, source in package_sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
                if names == {"yaml"} and any(a.name in ("load", "unsafe_load") for a in node.names):
                    offenders.append(f"{path.name}:{node.lineno}: from yaml import load")
            else:
                names = set()
            if names & banned_modules:
                offenders.append(f"{path.name}:{node.lineno}: imports {names & banned_modules}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("load", "unsafe_load", "load_all")
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
            ):
                offenders.append(f"{path.name}:{node.lineno}: yaml.{node.attr}")
    assert offenders == []


async def test_a_stored_record_that_fails_the_model_is_discarded_never_partially_used(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A record with a field of the wrong type is deleted and logged; the request gets a fresh session."""
    await _assert_record_discarded(env, caplog, {"user_id": b"30", "cart": b'{"not": "a list"}'})
    await _assert_record_discarded(env, caplog, {"user_id": b"30", "prefs": b"[1, 2]"})


@pytest.mark.parametrize("size", [1024 * 1024, 10 * 1024 * 1024])
async def test_an_oversized_session_is_refused_before_any_cookie_or_write(env: Env, size: int) -> None:
    """A 1 MB or 10 MB session fails with SessionTooLargeError; nothing is written and no cookie is set."""
    _, cookie = await env.seed(user_id=31)
    for headers in ([], with_cookie(cookie)):
        snapshot = {k: dict(e.record().fields) for k, e in env.inner._data.items()}
        env.store.reset()
        reply = await call(env.app, "POST", f"/big/{size}", headers)
        assert reply.set_cookies == []
        assert reply.status >= 500 or reply.status == 0
        assert isinstance(reply.error, SessionTooLargeError) or reply.status == 413
        assert env.store.writes() == 0
        assert {k: dict(e.record().fields) for k, e in env.inner._data.items()} == snapshot


async def test_an_oversized_stored_record_is_discarded_as_corrupt(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored record larger than SESSION_MAX_SIZE is discarded like a corrupt one."""
    await _assert_record_discarded(env, caplog, {"prefs": b'{"big":"' + b"x" * 1024 * 1024 + b'"}'})


# -- logging --------------------------------------------------------------------------------------


class FlakyStore(RecordingStore):
    """Fails the next ``load`` once when ``fail_next`` is set."""

    fail_next = False

    async def load(self, key: str, *, touch: float | None = None) -> Any:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError(f"store unreachable while loading {key}")
        return await super().load(key, touch=touch)


async def test_logs_never_contain_a_session_id_or_cookie(
    clock: FakeClock, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """No 12-character piece of an ID, cookie or signature is in any log line, every error path included."""
    caplog.set_level(logging.DEBUG)
    env = with_extra_routes(make_env(clock, store, idle_timeout=60))
    flaky = FlakyStore(store)
    env.manager.engine.store = flaky
    env.store = flaky
    secrets_seen: set[str] = set()

    def note(reply: Reply) -> str | None:
        value = reply.cookie()
        if value and value != '""':
            secrets_seen.add(value)
        return value

    cookie = note(await call(env.app, "POST", "/write"))
    assert cookie is not None
    await call(env.app, "GET", "/read", with_cookie(cookie))
    cookie = note(await call(env.app, "POST", "/remember/600", with_cookie(cookie))) or cookie
    cookie = note(await call(env.app, "POST", "/login/35", with_cookie(cookie))) or cookie
    # error paths
    unknown = env.sign(new_session_id())
    corrupt_id = new_session_id()
    await env.plant(corrupt_id, {"user_id": b'"nope"'})
    corrupt = env.sign(corrupt_id)
    secrets_seen.update({unknown, corrupt})
    await call(env.app, "GET", "/read", with_cookie(bad_signature(cookie)))
    await call(env.app, "GET", "/read", with_cookie(unknown))
    await call(env.app, "GET", "/read", with_cookie(corrupt))
    await call(env.app, "GET", "/read", [cookie_header(f"session={unknown}", f"session={cookie}")])
    flaky.fail_next = True
    down = await call(env.app, "GET", "/read", with_cookie(cookie))
    assert down.status == 503
    await call(env.app, "POST", "/big/200000", with_cookie(cookie))
    await call(env.app, "POST", "/boom", with_cookie(cookie))
    conflict = await call(env.app, "POST", "/lose-race", with_cookie(cookie))
    assert conflict.status == 409
    expired = note(await call(env.app, "POST", "/write"))
    assert expired is not None
    env.clock.advance(61)
    await call(env.app, "GET", "/read", with_cookie(expired))
    await call(env.app, "POST", "/logout", with_cookie(expired))

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    text = "\n".join(formatter.format(record) for record in caplog.records)
    assert "fastapi_sessions" in text, "the lifecycle above must have logged something"
    for secret in secrets_seen:
        for part in {secret, id_of(secret), secret.rsplit(".", 1)[1]}:
            windows = {part[i : i + 12] for i in range(len(part) - 11)}
            leaked = [w for w in windows if w in text]
            assert leaked == [], f"a log line contains part of a session ID or cookie: {leaked[:3]}"


async def test_suspicious_cookies_and_records_are_warnings_on_the_security_logger(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad signature, unknown ID, corrupt record, expiry, duplicate cookie: each a security WARNING."""
    idle = build(env, idle_timeout=60)
    _, good = await idle.seed(user_id=36)
    corrupt_id = new_session_id()
    await idle.plant(corrupt_id, {"cart": b"{"})
    expiring = (await call(idle.app, "POST", "/write")).cookie()
    assert expiring is not None
    idle.clock.advance(61)
    _, good = await idle.seed(user_id=36)
    events = {
        "bad signature": with_cookie(bad_signature(good)),
        "unknown id": with_cookie(idle.sign(new_session_id())),
        "corrupt record": with_cookie(idle.sign(corrupt_id)),
        "expired": with_cookie(expiring),
        "duplicate cookie": [cookie_header(f"session={good}", f"session={good}")],
    }
    for event, headers in events.items():
        caplog.clear()
        reply = await call(idle.app, "GET", "/read", headers)
        assert reply.status == 200
        assert security_warnings(caplog), f"{event}: no WARNING on {SECURITY_LOGGER}"


async def test_a_session_past_its_absolute_limit_is_a_security_warning(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A cookie re-signed after creation outlives SESSION_MAX_AGE: refused, with a security WARNING."""
    short = build(env, max_age=100)
    first = (await call(short.app, "POST", "/write")).cookie()
    assert first is not None
    short.clock.advance(90)
    regenerated = (await call(short.app, "POST", "/login/1", with_cookie(first))).cookie()
    assert regenerated is not None
    short.clock.advance(11)  # 101 s after creation; the cookie itself is 11 s old
    caplog.clear()
    await call(short.app, "GET", "/read", with_cookie(regenerated))
    assert short.seen[-1] == short.anon
    assert security_warnings(caplog), f"expiry: no WARNING on {SECURITY_LOGGER}"


async def test_counting_proxy_sees_every_store_call(env: Env) -> None:
    """Sanity of the harness the other tests rely on."""
    cookie = (await call(env.app, "POST", "/write")).cookie()
    assert cookie is not None
    await call(env.app, "POST", "/big/10", with_cookie(cookie))
    assert env.store.calls == Counter({"create": 1, "load": 1, "update": 1})
    assert isinstance(env.store, RecordingStore)
    assert UserSession().model_dump() == env.anon
