"""Bad input of every kind: the cookie header and value, the signature and timestamp, store contents.

Every request is sent as raw ASGI headers (no cookie jar, no header normalisation). For each bad
cookie: the handler answers 2xx and sees an anonymous session; a failed signature costs no store read;
nothing is written unless the handler writes, and then under a fresh ID; a WARNING goes to
``fastapi_sessions.security``; the input is never echoed back.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import base64
import gzip
import hashlib
import hmac
import json
import logging
import math
import pathlib
import pickle  # only to *build* a malicious payload; nothing here ever unpickles
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import pytest
from fastapi import Depends, FastAPI, Request
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict

from fastapi_sessions import (
    SessionDict,
    SessionManager,
    SessionMiddleware,
    SessionSettings,
    SessionValueError,
)
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.codec import ModelCodec
from fastapi_sessions.signing import SessionSigner, new_session_id, salt
from fastapi_sessions.stores import MemoryStore, SessionMeta, SessionRecord
from fastapi_sessions.stores.packed import Entry
from fastapi_sessions.testing import FakeClock, RecordingStore, session_cookie, session_store_key
from fastapi_sessions.values import MAX_DEPTH

from .backend_support import DictBackend
from .conftest import OLD_SECRET, SECRET, UserSession, make_settings

pytestmark = pytest.mark.anyio

SECURITY_LOGGER = "fastapi_sessions.security"
OTHER_SECRET = "an0ther-app's-k3y-0123456789-ABCDEFGHIJKLMNOP"
COOKIE = "session"
Headers = list[tuple[bytes, bytes]]


# -- raw ASGI client -----------------------------------------------------------------------------


@dataclass
class Reply:
    """What an ASGI app sent back for one request."""

    status: int
    headers: Headers
    body: bytes
    error: BaseException | None = None

    def header_values(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def set_cookies(self) -> list[str]:
        return [value.decode("latin-1") for value in self.header_values("set-cookie")]

    def cookie(self, name: str = COOKIE) -> str | None:
        """The value our Set-Cookie carries for ``name``, or None."""
        for header in self.set_cookies:
            key, _, rest = header.partition("=")
            if key == name:
                return rest.split(";", 1)[0]
        return None

    def raw(self) -> bytes:
        """Everything the client receives: status line stand-in, headers and body."""
        return b"\n".join([*(k + b": " + v for k, v in self.headers), self.body])


async def call(
    app: Any,
    method: str,
    path: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    query: bytes = b"",
) -> Reply:
    """Send one HTTP request to ``app`` with exactly these raw headers; never raises."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("203.0.113.9", 50000),
        "server": ("testserver", 443),
        "state": {},
    }
    done = anyio.Event()
    request_sent = False
    status = 0
    response_headers: Headers = []
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.extend((bytes(k), bytes(v)) for k, v in message.get("headers", ()))
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    error: BaseException | None = None
    try:
        await app(scope, receive, send)
    except Exception as exc:  # the app crashed: a test asserts on it
        error = exc
    done.set()
    return Reply(status, response_headers, bytes(body), error)


def cookie_header(*pairs: str | bytes) -> tuple[bytes, bytes]:
    """One raw ``Cookie`` header joining ``pairs`` with '; '."""
    parts = [p if isinstance(p, bytes) else p.encode("latin-1") for p in pairs]
    return (b"cookie", b"; ".join(parts))


# -- a store that counts, and the app ------------------------------------------------------------


def build_app(manager: SessionManager[Any], model: type[BaseModel] = UserSession) -> tuple[FastAPI, list]:
    """Routes that record what the handler saw: /read (read-only), /write, /login/{id}, /logout."""
    seen: list[dict[str, Any]] = []
    app = FastAPI()
    manager.install(app)
    Session = Annotated[model, Depends(manager.get_session)]

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: Session) -> dict[str, bool]:
        seen.append(session.model_dump())
        return {"ok": True}

    @app.post("/write")
    async def write(session: Session) -> dict[str, bool]:
        seen.append(session.model_dump())
        session.prefs["w"] = "1"
        return {"ok": True}

    @app.post("/login/{user_id}")
    async def login(user_id: int, session: Session) -> dict[str, bool]:
        seen.append(session.model_dump())
        manager.regenerate(session)
        session.user_id = user_id
        return {"ok": True}

    @app.post("/logout")
    async def logout(session: Session) -> dict[str, bool]:
        seen.append(session.model_dump())
        manager.destroy(session)
        return {"ok": True}

    return app, seen


@dataclass
class Env:
    clock: FakeClock
    inner: MemoryStore
    store: RecordingStore
    manager: SessionManager[Any]
    app: FastAPI
    seen: list[dict[str, Any]]
    anon: dict[str, Any]
    seeded: dict[str, str] = field(default_factory=dict)  # session id -> cookie value

    def sign(self, session_id: str) -> str:
        return session_cookie(self.manager, session_id)

    async def seed(self, user_id: int = 1, fields: dict[str, bytes] | None = None) -> tuple[str, str]:
        """A live session in the store; returns ``(session_id, cookie_value)``."""
        session_id = new_session_id()
        await self.plant(session_id, fields or {"user_id": str(user_id).encode()})
        cookie = self.sign(session_id)
        self.seeded[session_id] = cookie
        return session_id, cookie

    async def plant(
        self, session_id: str, fields: dict[str, bytes], meta: SessionMeta | None = None
    ) -> str:
        """Write ``fields`` (and ``meta``) straight into the store's memory, past the checks of its
        own writes, as if the store held them (a store that another program writes, such as Redis)."""
        now = self.clock.time()
        max_age = self.manager.settings.max_age
        key = session_store_key(session_id)
        good = SessionMeta(now, now + max_age)
        await self.inner.create(key, SessionRecord({}, good), ttl=max_age)
        entry = self.inner._data[key]
        entry.pack(fields, meta or good)
        if meta is not None:  # tampered metadata while the store's own TTL remains (e.g. Redis)
            entry.deadline = self.clock.monotonic() + 100 * max_age
        return key

    def new_env(self, **settings: Any) -> "Env":
        return make_env(self.clock, self.inner, model=self.manager.model, **settings)


def make_env(
    clock: FakeClock, inner: MemoryStore, model: type[BaseModel] = UserSession, **settings: Any
) -> Env:
    store = RecordingStore(inner)
    manager = SessionManager(model, settings=make_settings(**settings), store=store, clock=clock)
    app, seen = build_app(manager, model)
    return Env(clock, inner, store, manager, app, seen, model().model_dump())


@pytest.fixture
def env(clock: FakeClock, store: MemoryStore, caplog: pytest.LogCaptureFixture) -> Env:
    caplog.set_level(logging.DEBUG, logger="fastapi_sessions")
    return make_env(clock, store)


def security_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SECURITY_LOGGER and r.levelno >= logging.WARNING]


def id_of(cookie_value: str) -> str:
    return cookie_value.split(".", 1)[0]


def assert_not_echoed(reply: Reply, presented: Sequence[str]) -> None:
    raw = reply.raw()
    for value in presented:
        encoded = value.encode("utf-8", "surrogateescape") if value else b""
        if len(encoded) >= 8:
            assert encoded not in raw, "the presented cookie value was echoed in the response"
    for _, value in reply.headers:
        assert b"\r" not in value
        assert b"\n" not in value


async def assert_rejected(
    env: Env,
    caplog: pytest.LogCaptureFixture,
    headers: Headers,
    presented: Sequence[str] = (),
    *,
    warns: bool = True,
    signature_fails: bool = True,
) -> None:
    """The outcome every bad request must have (module docstring), on a read-only and a writing route."""
    presented_ids = {id_of(v) for v in presented} | set(env.seeded)
    before = len(env.inner)

    # read-only route
    env.store.reset()
    caplog.clear()
    reply = await call(env.app, "GET", "/read", headers)
    assert reply.error is None, f"the app crashed: {reply.error!r}"
    assert 200 <= reply.status < 300, reply.status
    assert env.seen[-1] == env.anon, "the handler must see an anonymous session"
    if signature_fails:
        assert env.store.calls["load"] == 0, "no store read for a cookie that fails its signature"
    assert env.store.writes() == 0, f"a read-only request wrote to the store: {env.store.keys}"
    assert reply.cookie() is None or reply.cookie() == '""', "no session cookie issued on a read"
    assert len(env.inner) == before
    if warns:
        assert security_warnings(caplog), f"no WARNING on {SECURITY_LOGGER}"
    else:
        assert not security_warnings(caplog)
    assert_not_echoed(reply, presented)

    # writing route
    env.store.reset()
    caplog.clear()
    reply = await call(env.app, "POST", "/write", headers)
    assert reply.error is None, f"the app crashed: {reply.error!r}"
    assert 200 <= reply.status < 300, reply.status
    assert env.seen[-1] == env.anon, "the handler must see an anonymous session"
    if signature_fails:
        assert env.store.calls["load"] == 0, "no store read for a cookie that fails its signature"
    assert env.store.calls["create"] == 1
    assert env.store.calls["update"] == env.store.calls["rename"] == 0
    issued = reply.cookie()
    assert issued is not None, "a write must set a cookie"
    verified = env.manager.engine.signer.verify(issued)
    assert verified is not None
    assert verified.session_id not in presented_ids, "a write must get a freshly generated ID"
    for session_id in {id_of(v) for v in presented} - set(env.seeded):
        assert session_store_key(session_id) not in env.inner._data, "a presented ID was adopted"
    assert_not_echoed(reply, presented)
    if warns:
        assert security_warnings(caplog)


# -- cookie header and value ----------------------------------------------------------------------


async def test_control_a_valid_cookie_is_accepted(env: Env) -> None:
    """The baseline every rejection below is measured against."""
    _, cookie = await env.seed(user_id=42)
    reply = await call(env.app, "GET", "/read", [cookie_header(f"session={cookie}")])
    assert reply.status == 200
    assert env.seen[-1]["user_id"] == 42
    assert env.store.calls["load"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="missing"),
        pytest.param([(b"cookie", b"")], id="empty-header"),
        pytest.param([(b"cookie", b"session")], id="name-without-equals"),
        pytest.param([(b"cookie", b"=garbage-value-0123")], id="empty-name"),
        pytest.param([(b"cookie", b"n" * 4096 + b"=x")], id="4kb-foreign-name"),
        pytest.param([(b"cookie", b"; ; ;")], id="only-separators"),
    ],
)
async def test_no_session_cookie_at_all(
    env: Env, caplog: pytest.LogCaptureFixture, headers: Headers
) -> None:
    # Nothing under our name was sent, so there is nothing to warn about.
    await assert_rejected(env, caplog, headers, [], warns=False)


async def test_empty_name_with_a_valid_value_is_not_our_cookie(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    _, cookie = await env.seed()
    await assert_rejected(env, caplog, [cookie_header(f"={cookie}")], [cookie], warns=False)


async def test_empty_value(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    await assert_rejected(env, caplog, [cookie_header("session=")])


GARBAGE_VALUES: dict[str, bytes] = {
    "octal-escape": b'"a\\073b"',
    "lone-quote": b'"',
    "backslash": b"a\\b",
    "comma": b"a,b",
    "dotdot-path": b"../x",
    "slash-path": b"a/b/c",
    "backslash-path": b"a\\b\\c",
    "glob-star": b"*",
    "glob-mixed": b"?[a-z]*",
    "prefix-other": b"session:other",
    "non-ascii-e-acute": "caf\u00e9".encode(),
    "emoji": "\U0001f36a".encode(),
    "latin1-invalid-utf8": b"\xe9\xff\xfe\xc3",
    "nul": b"\x00",
    "del": b"\x7f",
    "bare-uuid": str(uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF)).encode(),
    "one": b"1",
    "overlong-1240": b"k" * 1240,
    "size-4097": b"a" * 4097,
    "size-8k": b"b" * 8192,
    "size-100k": b"c" * 100_000,
}


@pytest.mark.parametrize("value", GARBAGE_VALUES.values(), ids=GARBAGE_VALUES.keys())
async def test_garbage_value(env: Env, caplog: pytest.LogCaptureFixture, value: bytes) -> None:
    await assert_rejected(env, caplog, [(b"cookie", b"session=" + value)], [value.decode("latin-1")])
    if value == b'"a\\073b"':
        assert b"a;b" not in (await call(env.app, "GET", "/read", [(b"cookie", b"session=" + value)])).raw()


def _other_app_cookies() -> dict[str, str]:
    flask = URLSafeTimedSerializer(OTHER_SECRET, salt="cookie-session").dumps({"user_id": 1})
    flask_same_key = URLSafeTimedSerializer(SECRET, salt="cookie-session").dumps({"user_id": 1})
    payload = base64.b64encode(json.dumps({"user_id": 1}).encode())
    starlette = TimestampSigner(OTHER_SECRET).sign(payload).decode()
    starlette_same_key = TimestampSigner(SECRET).sign(payload).decode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "1", "exp": 4_000_000_000}).encode())
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    jwt = f"{head}.{body}.{b64(mac)}"
    return {
        "flask": flask,
        "flask-same-key": flask_same_key,
        "starlette": starlette,
        "starlette-same-key": starlette_same_key,
        "jwt-hs256-same-key": jwt,
    }


OTHER_APP_COOKIES = _other_app_cookies()


@pytest.mark.parametrize("value", OTHER_APP_COOKIES.values(), ids=OTHER_APP_COOKIES.keys())
async def test_another_apps_cookie_under_our_name(
    env: Env, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    assert value.startswith("eyJ") or "." in value
    await assert_rejected(env, caplog, [cookie_header(f"session={value}")], [value])


def _mangle(kind: str, cookie: str) -> bytes:
    """A valid cookie value with one charset, quoting or padding defect."""
    head, ts, sig = cookie.split(".")
    return {
        "quoted": f'"{cookie}"',
        "padded": f" {cookie} ",
        "leading-space": f" {cookie}",
        "leading-tab": f"\t{cookie}",
        "crlf-inside": f"{head}.{ts}\r\n.{sig}",
        "crlf-header-injection": f"{cookie}\r\nX-Injected: 1",
        "tab-inside": f"{head}\t.{ts}.{sig}",
        "nul-appended": f"{cookie}\x00",
        "nul-inside": f"{head}\x00.{ts}.{sig}",
        "del-appended": f"{cookie}\x7f",
        "non-ascii-appended": f"{cookie}\u00e9",
        "percent-encoded": cookie.replace(".", "%2E").replace("-", "%2D"),
        "base64-pad-1": f"{cookie}=",
        "base64-pad-2": f"{cookie}==",
        "base64-pad-3": f"{cookie}===",
        "comma-appended": f"{cookie},x",
        "quote-appended": f'{cookie}"',
    }[kind].encode("utf-8")


MANGLES = [
    "quoted",
    "padded",
    "leading-space",
    "leading-tab",
    "crlf-inside",
    "crlf-header-injection",
    "tab-inside",
    "nul-appended",
    "nul-inside",
    "del-appended",
    "non-ascii-appended",
    "percent-encoded",
    "base64-pad-1",
    "base64-pad-2",
    "base64-pad-3",
    "comma-appended",
    "quote-appended",
]


@pytest.mark.parametrize("kind", MANGLES)
async def test_mangled_valid_cookie(env: Env, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    """A live session's cookie, altered in transit: it is not that session any more."""
    _, cookie = await env.seed(user_id=7)
    value = _mangle(kind, cookie)
    await assert_rejected(env, caplog, [(b"cookie", b"session=" + value)], [value.decode("utf-8")])


async def test_unsigned_raw_id_of_a_live_session(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    session_id, _ = await env.seed()
    await assert_rejected(env, caplog, [cookie_header(f"session={session_id}")], [session_id])


async def test_thousand_cookies_under_our_name(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    values = [f"junk{i:04d}-{'x' * 8}" for i in range(1000)]
    await assert_rejected(env, caplog, [cookie_header(*(f"session={v}" for v in values))], values[:4])


async def test_thousand_foreign_cookies_then_a_garbage_one(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    pairs = [f"c{i}=v{i}" for i in range(1000)] + ["session=garbage-at-the-end"]
    await assert_rejected(env, caplog, [cookie_header(*pairs)], ["garbage-at-the-end"])


# -- the same name more than once -----------------------------------------------------------------


def _duplicates(layout: str, first: str, second: str) -> Headers:
    if layout == "one-header":
        return [cookie_header(f"session={first}", "other=1", f"session={second}")]
    return [cookie_header(f"session={first}"), (b"x-other", b"1"), cookie_header(f"session={second}")]


@pytest.mark.parametrize("layout", ["one-header", "two-headers"])
@pytest.mark.parametrize(
    ("order", "winner"),
    [
        (("A", "garbage"), "A"),
        (("garbage", "A"), "A"),
        (("A", "B"), "A"),
        (("B", "A"), "B"),
        (("unknown", "A"), "A"),
        (("A", "unknown"), "A"),
        (("garbage", "garbage"), None),
        (("unknown", "garbage"), None),
    ],
    ids=lambda v: "+".join(v) if isinstance(v, tuple) else str(v),
)
async def test_duplicate_cookie_names(
    env: Env,
    caplog: pytest.LogCaptureFixture,
    layout: str,
    order: tuple[str, str],
    winner: str | None,
) -> None:
    """The first value that verifies *and* exists in the store wins; the duplicate is logged."""
    _, a = await env.seed(user_id=101)
    _, b = await env.seed(user_id=202)
    unknown = env.sign(new_session_id())
    values = {"A": a, "B": b, "garbage": "eyJnYXJiYWdlIjp0cnVlfQ.garbage.garbage", "unknown": unknown}
    headers = _duplicates(layout, values[order[0]], values[order[1]])
    if winner is None:
        await assert_rejected(
            env, caplog, headers, [values[o] for o in order], signature_fails="unknown" not in order
        )
        return
    env.store.reset()
    caplog.clear()
    reply = await call(env.app, "GET", "/read", headers)
    assert reply.error is None
    assert reply.status == 200
    assert env.seen[-1]["user_id"] == {"A": 101, "B": 202}[winner]
    assert env.store.writes() == 0
    assert reply.cookie() is None
    assert any("cookies named" in r.getMessage() for r in security_warnings(caplog)), (
        "the duplicate must be logged"
    )
    assert_not_echoed(reply, [values[o] for o in order])


@pytest.mark.parametrize("layout", ["one-header", "two-headers"])
async def test_a_valid_cookie_after_many_garbage_ones_of_the_same_name_is_found(
    env: Env, caplog: pytest.LogCaptureFixture, layout: str
) -> None:
    """Values that cannot be ours (wrong length or shape) are skipped at no cost, however many come
    first; the valid one after them is still found, with one store read."""
    _, good = await env.seed(user_id=77)
    garbage = [f"junk{i:04d}-{'x' * 8}" for i in range(10)] + ["eyJnYXJiYWdlIjp0cnVlfQ.garbage.garbage"]
    if layout == "one-header":
        headers = [cookie_header(*(f"session={v}" for v in [*garbage, good]))]
    else:
        headers = [cookie_header(f"session={v}") for v in [*garbage, good]]
    caplog.clear()
    reply = await call(env.app, "GET", "/read", headers)
    assert reply.status == 200
    assert env.seen[-1]["user_id"] == 77, "the valid cookie after the garbage ones must be found"
    assert env.store.calls["load"] == 1
    assert env.store.writes() == 0
    messages = [r.getMessage() for r in security_warnings(caplog)]
    assert any("cookies named" in m for m in messages), "the duplicates are logged"
    assert sum("format we never issue" in m for m in messages) == 1, "garbage is logged once, not per value"


async def test_only_the_first_four_cookies_of_our_shape_cost_an_hmac_or_a_store_read(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Values of our shape each cost an HMAC and maybe a store read, so at most four are tried;
    garbage between them is not counted."""
    _, good = await env.seed(user_id=77)
    unknown = [env.sign(new_session_id()) for _ in range(3)]  # signed, but no session: a store read each
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBA")  # our shape, bad signature
    values = [unknown[0], "garbage", unknown[1], "x" * 300, unknown[2], good]
    reply = await call(env.app, "GET", "/read", [cookie_header(*(f"session={v}" for v in values))])
    assert env.seen[-1]["user_id"] == 77, "three tried, garbage skipped, the fourth is the good one"
    assert env.store.calls["load"] == 4

    env.store.reset()
    caplog.clear()
    values = [forged, *unknown, good]  # four values of our shape before the good one
    reply = await call(env.app, "GET", "/read", [cookie_header(*(f"session={v}" for v in values))])
    assert reply.status == 200
    assert env.seen[-1] == env.anon, "a fifth value of our shape is not tried"
    assert env.store.calls["load"] == 3, "the forged value cost an HMAC, not a store read"
    assert env.store.writes() == 0
    assert any("first 4 session cookies" in r.getMessage() for r in security_warnings(caplog))


# -- signature and timestamp ----------------------------------------------------------------------


def _flip_char(text: str, index: int, bit: int = 1) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = text[index]
    flipped = alphabet[alphabet.index(char) ^ bit] if char in alphabet else chr(ord(char) ^ bit)
    return text[:index] + flipped + text[index + 1 :]


def _flip_sig_byte(sig: str, byte: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[byte] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _b64int(n: int) -> str:
    return (
        base64.urlsafe_b64encode(n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")).rstrip(b"=").decode()
    )


def _signer(keys: list[str], clock: FakeClock, max_age: int = 14 * 24 * 3600) -> SessionSigner:
    return SessionSigner(keys, max_age=max_age, clock=clock, namespace="session")


async def _tampered(kind: str, env: Env) -> str:
    """A bad cookie value of ``kind``, built from live sessions of ``env``."""
    id_a, a = await env.seed(user_id=1)
    _, b = await env.seed(user_id=2)
    head, ts, sig = a.split(".")
    now = env.clock.time()
    max_age = env.manager.settings.max_age
    fresh = new_session_id()
    plain = Signer(SECRET, salt=salt("session"), key_derivation="hmac", digest_method=hashlib.sha256)
    if kind == "flip-id-first":
        return f"{_flip_char(head, 0)}.{ts}.{sig}"
    if kind == "flip-id-last":
        return f"{_flip_char(head, len(head) - 1)}.{ts}.{sig}"
    if kind == "flip-timestamp":
        return f"{head}.{_flip_char(ts, 2)}.{sig}"
    if kind == "flip-signature-first-byte":
        return f"{head}.{ts}.{_flip_sig_byte(sig, 0)}"
    if kind == "flip-signature-last-byte":
        return f"{head}.{ts}.{_flip_sig_byte(sig, 31)}"
    if kind == "truncated-signature":
        return f"{head}.{ts}.{sig[:-4]}"
    if kind == "signature-removed-trailing-dot":
        return f"{head}.{ts}."
    if kind == "signature-removed":
        return f"{head}.{ts}"
    if kind == "id-only":
        return head
    if kind == "extra-segment-after":
        return f"{a}.extra"
    if kind == "extra-segment-before":
        return f"x.{a}"
    if kind == "empty-segment":
        return f"{head}..{ts}.{sig}"
    if kind == "splice-id-a-sig-b":
        return f"{head}.{ts}.{b.split('.')[2]}"
    if kind == "splice-id-b-rest-a":
        return f"{b.split('.')[0]}.{ts}.{sig}"
    if kind == "wrong-key":
        return _signer([OTHER_SECRET], env.clock).sign(id_a)
    if kind == "rotated-out-key":
        return _signer([OLD_SECRET], env.clock).sign(id_a)
    if kind == "same-key-other-salt":
        signer = TimestampSigner(SECRET, salt=b"csrf", key_derivation="hmac", digest_method=hashlib.sha256)
        return signer.sign(id_a).decode()
    if kind == "same-key-itsdangerous-defaults":  # SHA-1 and django-concat, same salt
        return TimestampSigner(SECRET, salt=salt("session")).sign(id_a).decode()
    if kind == "same-key-sha512":
        signer = TimestampSigner(
            SECRET, salt=salt("session"), key_derivation="hmac", digest_method=hashlib.sha512
        )
        return signer.sign(id_a).decode()
    if kind == "same-key-concat-derivation":
        signer = TimestampSigner(
            SECRET, salt=salt("session"), key_derivation="concat", digest_method=hashlib.sha256
        )
        return signer.sign(id_a).decode()
    if kind == "timestamp-older-than-max-age":
        return _signer([SECRET], FakeClock(now - max_age - 1)).sign(id_a)
    if kind == "timestamp-future-1h":
        return _signer([SECRET], FakeClock(now + 3600)).sign(id_a)
    if kind == "timestamp-zero":
        return plain.sign(f"{id_a}.{_b64int(0)}").decode()
    if kind == "timestamp-empty":
        return _signer([SECRET], FakeClock(0)).sign(id_a)
    if kind == "timestamp-huge":
        return plain.sign(f"{id_a}.{_b64int(2**70)}").decode()
    if kind == "timestamp-malformed":
        return plain.sign(f"{id_a}.!!!!").decode()
    if kind == "timestamp-negative-text":
        return plain.sign(f"{id_a}.-1").decode()
    if kind == "payload-empty":
        return _signer([SECRET], env.clock).sign("")
    if kind == "payload-nul":
        return _signer([SECRET], env.clock).sign("\x00")
    if kind == "payload-nul-id-length":
        return _signer([SECRET], env.clock).sign("a" * 42 + "\x00")
    if kind == "payload-600-chars":
        return _signer([SECRET], env.clock).sign("A" * 600)
    if kind == "payload-non-ascii":
        return _signer([SECRET], env.clock).sign("\u00e9" * 43)
    if kind == "payload-short":
        return _signer([SECRET], env.clock).sign("1")
    if kind == "payload-id-plus-one":
        return _signer([SECRET], env.clock).sign(fresh + "A")
    if kind == "payload-id-with-slash":
        return _signer([SECRET], env.clock).sign(fresh[:-1] + "/")
    if kind == "payload-id-with-dot":
        return _signer([SECRET], env.clock).sign(fresh[:-1] + ".")
    raise AssertionError(kind)


TAMPERED = [
    "flip-id-first",
    "flip-id-last",
    "flip-timestamp",
    "flip-signature-first-byte",
    "flip-signature-last-byte",
    "truncated-signature",
    "signature-removed-trailing-dot",
    "signature-removed",
    "id-only",
    "extra-segment-after",
    "extra-segment-before",
    "empty-segment",
    "splice-id-a-sig-b",
    "splice-id-b-rest-a",
    "wrong-key",
    "rotated-out-key",
    "same-key-other-salt",
    "same-key-itsdangerous-defaults",
    "same-key-sha512",
    "same-key-concat-derivation",
    "timestamp-older-than-max-age",
    "timestamp-future-1h",
    "timestamp-zero",
    "timestamp-empty",
    "timestamp-huge",
    "timestamp-malformed",
    "timestamp-negative-text",
    "payload-empty",
    "payload-nul",
    "payload-nul-id-length",
    "payload-600-chars",
    "payload-non-ascii",
    "payload-short",
    "payload-id-plus-one",
    "payload-id-with-slash",
    "payload-id-with-dot",
]


@pytest.mark.parametrize("kind", TAMPERED)
async def test_bad_signature_or_timestamp(env: Env, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    value = await _tampered(kind, env)
    raw = value.encode("utf-8")
    await assert_rejected(env, caplog, [(b"cookie", b"session=" + raw)], [value])


async def test_every_single_bit_flip_of_the_cookie_text_is_rejected(env: Env) -> None:
    """Flip each bit of each base64 character (6 bits per character) of a valid cookie value.

    Catches a signature that verifies under more than one spelling (non-canonical base64).
    """
    _, cookie = await env.seed()
    signer = _signer([SECRET], env.clock)
    accepted = []
    for index, char in enumerate(cookie):
        if char == ".":
            continue
        for bit in (1, 2, 4, 8, 16, 32):
            variant = _flip_char(cookie, index, bit)
            if signer.verify(variant) is not None:
                accepted.append((index, bit, variant[-3:]))
    assert accepted == [], f"altered cookie values that still verify: {accepted}"


async def test_old_key_still_in_fallbacks_is_accepted_and_reissued_on_a_read(env: Env) -> None:
    session_id, _ = await env.seed(user_id=5)
    old_cookie = _signer([OLD_SECRET], env.clock).sign(session_id)
    rotated = env.new_env(secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET])
    reply = await call(rotated.app, "GET", "/read", [cookie_header(f"session={old_cookie}")])
    assert reply.status == 200
    assert rotated.seen[-1]["user_id"] == 5, "an old key still listed must be accepted"
    reissued = reply.cookie()
    assert reissued is not None, "a read-only request must still re-issue under the new key"
    assert reissued != old_cookie
    assert _signer([SECRET], env.clock).verify(reissued) is not None, "re-issued under the new key"
    assert _signer([OLD_SECRET], env.clock).verify(reissued) is None
    assert id_of(reissued) == session_id
    assert rotated.store.writes() == 0, "re-signing needs no store write"
    assert b"no-store" in b",".join(reply.header_values("cache-control"))


async def test_valid_signature_on_a_nonexistent_id_is_never_adopted(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    chosen = new_session_id()  # attacker-chosen, validly signed, never issued
    value = env.sign(chosen)
    await assert_rejected(env, caplog, [cookie_header(f"session={value}")], [value], signature_fails=False)
    assert session_store_key(chosen) not in env.inner._data, "strict mode: never store the presented ID"


async def test_valid_signature_on_a_destroyed_sessions_id(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    login = await call(env.app, "POST", "/login/9")
    cookie = login.cookie()
    assert cookie is not None
    logout = await call(env.app, "POST", "/logout", [cookie_header(f"session={cookie}")])
    assert logout.status == 200
    await assert_rejected(
        env, caplog, [cookie_header(f"session={cookie}")], [cookie], signature_fails=False
    )
    assert session_store_key(id_of(cookie)) not in env.inner._data


async def test_valid_signature_on_the_pre_regeneration_id(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    first = (await call(env.app, "POST", "/write")).cookie()
    assert first is not None
    second = (await call(env.app, "POST", "/login/3", [cookie_header(f"session={first}")])).cookie()
    assert second is not None
    assert id_of(second) != id_of(first)
    await assert_rejected(env, caplog, [cookie_header(f"session={first}")], [first], signature_fails=False)
    assert session_store_key(id_of(first)) not in env.inner._data


# -- store contents -------------------------------------------------------------------------------


class StrictSession(BaseModel):
    """A model that forbids unknown fields and has an enum-like field."""

    model_config = ConfigDict(extra="forbid")

    user_id: int | None = None
    cart: list[str] = []
    prefs: dict[str, str] = {}
    role: Literal["user", "admin"] = "user"


class _Exploit:
    """Unpickling this creates ``path``: proof that a payload ran."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.path,))


def _corpus(marker: pathlib.Path) -> dict[str, dict[str, bytes]]:
    payload = pickle.dumps(_Exploit(marker))
    return {
        "empty-bytes": {"user_id": b""},
        "null-for-list": {"cart": b"null"},
        "list-for-int": {"user_id": b"[]"},
        "str-for-list": {"cart": b'"str"'},
        "int-for-list": {"cart": b"123"},
        "truncated-json": {"cart": b'["a","b'},
        "invalid-utf8": {"cart": b'["\xff\xfe"]'},
        "bom-json": {"cart": b'\xef\xbb\xbf["a"]'},
        "gzip": {"cart": gzip.compress(b'["a"]')},
        "msgpack": {"cart": b"\x91\xa1a"},
        "wrong-type": {"user_id": b'"abc"'},
        "extra-field": {"user_id": b"1", "is_admin": b"true"},
        "enum-out-of-range": {"role": b'"root"'},
        "other-schema": {"uid": b"1", "roles": b'["admin"]'},
        "one-good-one-bad-field": {"user_id": b"7", "cart": b"123"},
        "pickle": {"user_id": payload, "cart": payload},
        "nesting-100k": {"cart": b"[" * 100_000 + b"]" * 100_000},
        "string-10mb": {"cart": b'["' + b"a" * (10 * 1024 * 1024) + b'"]'},
    }


@pytest.fixture
def strict_env(clock: FakeClock, store: MemoryStore, caplog: pytest.LogCaptureFixture) -> Env:
    caplog.set_level(logging.DEBUG, logger="fastapi_sessions")
    return make_env(clock, store, model=StrictSession)


CORPUS_NAMES = list(_corpus(pathlib.Path("unused")))


async def _assert_record_discarded(
    env: Env, caplog: pytest.LogCaptureFixture, fields: dict[str, bytes], meta: SessionMeta | None = None
) -> None:
    for route, method in (("/read", "GET"), ("/write", "POST")):
        session_id = new_session_id()
        key = await env.plant(session_id, fields, meta)
        cookie = env.sign(session_id)
        env.store.reset()
        caplog.clear()
        reply = await call(env.app, method, route, [cookie_header(f"session={cookie}")])
        assert reply.error is None, f"the app crashed: {reply.error!r}"
        assert 200 <= reply.status < 300, reply.status
        assert env.seen[-1] == env.anon, "a bad record must give an anonymous session"
        assert security_warnings(caplog), f"no WARNING on {SECURITY_LOGGER}"
        assert key not in env.inner._data, "the bad record must be deleted"
        assert ("delete", key) in env.store.keys
        assert_not_echoed(reply, [cookie])
        if method == "POST":
            issued = reply.cookie()
            assert issued is not None
            assert id_of(issued) != session_id, "a write after a bad record gets a fresh ID"
            assert env.store.calls["create"] == 1
            assert env.store.calls["update"] == env.store.calls["rename"] == 0
        else:
            assert [k for k in env.store.keys if k[0] != "load"] == [("delete", key)]


@pytest.mark.parametrize("name", CORPUS_NAMES)
async def test_bad_store_contents(
    strict_env: Env,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    marker = tmp_path / "pwned"
    fields = _corpus(marker)[name]
    decoded: list[int] = []
    original = ModelCodec.decode

    def spy(self: Any, stored: Any) -> Any:
        decoded.append(len(stored))
        return original(self, stored)

    monkeypatch.setattr(ModelCodec, "decode", spy)
    await _assert_record_discarded(strict_env, caplog, fields)
    assert not marker.exists(), "the pickle payload ran"
    if name in ("string-10mb", "nesting-100k"):
        assert decoded == [], "an oversized record must be refused by size, before any parsing"


async def test_a_discarded_records_log_line_names_the_failing_fields_never_their_values(
    strict_env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator must see which field broke (after a model change, say), but not what it held."""
    fields = {"user_id": b'"tok-6a1f-not-a-number"', "cart": b'["ok"]', "role": b'"root"'}
    await _assert_record_discarded(strict_env, caplog, fields)
    line = security_warnings(caplog)[-1].getMessage()
    assert "'role' (literal_error), 'user_id' (int_parsing)" in line, line
    assert "tok-6a1f" not in line
    assert "root" not in line


async def test_deep_nesting_within_the_size_limit_is_corrupt_not_a_crash(
    strict_env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env = strict_env.new_env(max_size=1_000_000)
    fields = {"cart": b"[" * 100_000 + b"]" * 100_000}
    await _assert_record_discarded(env, caplog, fields)
    fields = {"prefs": b'{"a":' * 50_000 + b"1" + b"}" * 50_000}
    await _assert_record_discarded(env, caplog, fields)


async def test_created_at_in_the_future(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    now = env.clock.time()
    meta = SessionMeta(now + 3600, now + 3600 + env.manager.settings.max_age)
    await _assert_record_discarded(env, caplog, {"user_id": b"1"}, meta)


async def test_expires_at_in_the_past_while_the_store_ttl_remains(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    now = env.clock.time()
    meta = SessionMeta(now - 100, now - 1)
    await _assert_record_discarded(env, caplog, {"user_id": b"1"}, meta)


async def test_expires_at_beyond_max_age_never_extends_the_life(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env = env.new_env(max_age=100)
    now = env.clock.time()
    session_id = new_session_id()
    key = await env.plant(session_id, {"user_id": b"1"}, SessionMeta(now, now + 1_000_000))
    first_cookie = env.sign(session_id)
    reply = await call(env.app, "GET", "/read", [cookie_header(f"session={first_cookie}")])
    assert reply.status == 200  # clamped or rejected: both are fine while within SESSION_MAX_AGE
    env.clock.advance(101)  # past SESSION_MAX_AGE, far before the forged expires_at
    # The original cookie is older than max_age; a cookie re-signed later (regenerate, set_expiry,
    # key rotation all re-sign with a fresh timestamp) still verifies: neither may reach the session.
    for cookie in (first_cookie, env.sign(session_id)):
        caplog.clear()
        env.store.reset()
        reply = await call(env.app, "GET", "/read", [cookie_header(f"session={cookie}")])
        assert reply.error is None
        assert reply.status == 200
        assert env.seen[-1] == env.anon, "a forged expires_at must not outlive SESSION_MAX_AGE"
        assert security_warnings(caplog), f"no WARNING on {SECURITY_LOGGER}"
    assert key not in env.inner._data, "the dead record must be deleted"


# -- on every door and every shipped store --------------------------------------------------------


class ValueSession(BaseModel):
    """The typed door's model for the tests below; the classic door stores the same keys."""

    user_id: int | None = None
    cart: list[str] = []
    name: str = ""
    score: float = 0.0
    tree: Any = None


@dataclass
class Rig:
    """One door (a typed ``SessionManager``, or ``SessionMiddleware``'s dict) on one shipped store
    (``MemoryStore``, ``RedisStore``, a ``Backend`` through its adapter), with a way to put a record
    in that store past our own writers, as a program with access to the store could."""

    door: str
    kind: str
    clock: FakeClock
    store: RecordingStore
    app: Any
    seen: list[dict[str, Any]]
    sign: Callable[[str], str]
    put: Callable[[str, dict[str, bytes], SessionMeta], Awaitable[None]]
    exists: Callable[[str], Awaitable[bool]]
    change: Callable[[Any], None] = lambda data: None
    """What ``POST /change`` does to the session's data (the model, or the dict)."""

    def meta(self, **changes: float) -> SessionMeta:
        now = self.clock.time()
        return SessionMeta(now, now + 3600)._replace(**changes)

    async def plant(self, fields: dict[str, bytes], meta: SessionMeta | None = None) -> tuple[str, str]:
        """A record under a fresh ID; returns its store key and a valid cookie for it."""
        session_id = new_session_id()
        key = session_store_key(session_id)
        await self.put(key, fields, meta or self.meta())
        return key, self.sign(session_id)

    async def get(self, cookie: str) -> Reply:
        return await call(self.app, "GET", "/read", [cookie_header(f"session={cookie}")])

    async def post(self, change: Callable[[Any], None], cookie: str | None = None) -> Reply:
        self.change = change
        headers = [] if cookie is None else [cookie_header(f"session={cookie}")]
        return await call(self.app, "POST", "/change", headers)

    def assign(self, name: str, value: Any) -> Callable[[Any], None]:
        """A change that sets ``name`` to ``value`` the way this door's users do."""
        if self.door == "typed":
            return lambda data: setattr(data, name, value)
        return lambda data: data.__setitem__(name, value)


def _typed_door(rig: Rig, model: type[BaseModel], settings: SessionSettings) -> FastAPI:
    manager = SessionManager(model, settings=settings, store=rig.store, clock=rig.clock)
    rig.sign = lambda session_id: session_cookie(manager, session_id)
    app = FastAPI()
    manager.install(app)
    Session = Annotated[model, Depends(manager.get_session)]

    @app.get("/read")
    async def read(session: Session) -> dict[str, bool]:
        rig.seen.append(session.model_dump())
        return {"ok": True}

    @app.post("/change")
    async def change(session: Session) -> dict[str, bool]:
        rig.change(session)
        return {"ok": True}

    return app


def _classic_door(rig: Rig, settings: SessionSettings) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=rig.store, settings=settings, clock=rig.clock)
    signer = SessionSigner([SECRET], max_age=settings.max_age, clock=rig.clock, namespace="session")
    rig.sign = signer.sign

    @app.get("/read")
    async def read(request: Request) -> dict[str, bool]:
        rig.seen.append({**ValueSession().model_dump(), **request.session})
        return {"ok": True}

    @app.post("/change")
    async def change(request: Request) -> dict[str, bool]:
        rig.change(request.session)
        return {"ok": True}

    return app


def _backend_value(value: bytes) -> Any:
    """A field as a backend's dict holds it: the JSON value, or the text if it is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return value.decode("utf-8", "replace")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), "backend"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["typed", "classic"])
def door(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def make_rig(
    request: pytest.FixtureRequest,
    door: str,
    kind: str,
    model: type[BaseModel] = ValueSession,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """A rig for ``door`` on a store of ``kind``; ``settings`` override the test settings."""
    clock = FakeClock()
    rig = Rig(door, kind, clock, None, None, [], str, None, None)  # type: ignore[arg-type]
    cleanup: list[Callable[[], Awaitable[None]]] = []
    if kind == "memory":
        memory = MemoryStore(clock=clock)
        inner: Any = memory

        async def put(key: str, fields: dict[str, bytes], meta: SessionMeta) -> None:
            # Straight into the store's memory, past MemoryStore's own checks.
            entry = Entry(clock.monotonic() + 3600, SessionRecord(dict(fields), meta))
            memory._insert(key, entry, memory._probation)

        async def exists(key: str) -> bool:
            return key in memory._data

    elif kind == "redis":
        pytest.importorskip("redis")
        from redis.asyncio import Redis

        from fastapi_sessions.stores.redis import RedisStore

        url: str = request.getfixturevalue("redis_server_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        inner = RedisStore.from_url(url, prefix=prefix)
        raw = Redis.from_url(url)
        cleanup += [inner.aclose, raw.aclose]

        async def put(key: str, fields: dict[str, bytes], meta: SessionMeta) -> None:
            stored = {b"=" + name.encode(): value for name, value in fields.items()}
            stored |= {b"c": repr(meta.created_at), b"e": repr(meta.expires_at), b"p": b"0", b"v": b"0"}
            await raw.hset(prefix + key, mapping=stored)  # type: ignore[arg-type]
            await raw.expire(prefix + key, 3600)

        async def exists(key: str) -> bool:
            return bool(await raw.exists(prefix + key))

    else:
        backend = DictBackend(clock)
        inner = BackendStore(backend, clock=clock)

        async def put(key: str, fields: dict[str, bytes], meta: SessionMeta) -> None:
            data = {
                "session": {name: _backend_value(value) for name, value in fields.items()},
                "meta": {
                    "created_at": meta.created_at,
                    "expires_at": meta.expires_at,
                    "persistent": False,
                    "version": 0,
                    "deadline": clock.time() + 3600,
                },
            }
            backend.records[key] = (clock.time() + 3600, json.dumps(data))

        async def exists(key: str) -> bool:
            return key in backend.records

    rig.store, rig.put, rig.exists = RecordingStore(inner), put, exists
    configured = make_settings(**settings)
    rig.app = _typed_door(rig, model, configured) if door == "typed" else _classic_door(rig, configured)
    try:
        yield rig
    finally:
        for close in cleanup:
            await close()


@pytest.fixture
async def rig(request: pytest.FixtureRequest, door: str, store_kind: str) -> AsyncIterator[Rig]:
    async with make_rig(request, door, store_kind) as made:
        yield made


async def assert_discarded(
    rig: Rig, caplog: pytest.LogCaptureFixture, key: str, cookie: str, problem: str
) -> None:
    """A corrupt record: a fresh session, a WARNING naming ``problem``, the record deleted."""
    caplog.set_level(logging.DEBUG, logger="fastapi_sessions")
    caplog.clear()
    reply = await rig.get(cookie)
    assert reply.error is None, f"the app crashed: {reply.error!r}"
    assert reply.status == 200
    assert rig.seen[-1] == ValueSession().model_dump(), "a corrupt record must never be loaded"
    warnings = [r.getMessage() for r in security_warnings(caplog)]
    assert any(problem in message for message in warnings), warnings
    assert not await rig.exists(key), "the corrupt record must be deleted"
    assert_not_echoed(reply, [cookie])


async def test_the_rig_loads_a_good_record_on_every_door_and_store(rig: Rig) -> None:
    """The baseline the corrupt records below are measured against."""
    key, cookie = await rig.plant({"user_id": b"7", "cart": b'["x"]'})
    reply = await rig.get(cookie)
    assert reply.status == 200
    assert rig.seen[-1]["user_id"] == 7
    assert rig.seen[-1]["cart"] == ["x"]
    assert await rig.exists(key)


@pytest.mark.parametrize("field", ["expires_at", "created_at"])
async def test_a_stored_time_that_is_not_a_number_is_corrupt(
    rig: Rig, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    """A NaN expiry compares false with every time, so it must not read as "not expired yet": that
    would defeat the absolute timeout. Such a record is corrupt: never loaded, deleted, logged."""
    key, cookie = await rig.plant({"user_id": b"1"}, rig.meta(**{field: math.nan}))
    await assert_discarded(rig, caplog, key, cookie, "discarded")


@pytest.mark.redis
@pytest.mark.parametrize("door", ["typed", "classic"])
async def test_a_nan_expiry_is_corrupt_on_the_rolling_read_of_redis(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, door: str
) -> None:
    """With an idle timeout the read is a Lua script that caps the TTL by the stored expiry: a NaN
    there is still a corrupt record, not an outage."""
    async with make_rig(request, door, "redis", idle_timeout=600) as rig:
        key, cookie = await rig.plant({"user_id": b"1"}, rig.meta(expires_at=math.nan))
        await assert_discarded(rig, caplog, key, cookie, "discarded")


async def test_a_field_value_that_is_not_exactly_one_json_value_never_splices_into_other_fields(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored as the value of ``cart`` and joined with the other fields into one document, the text
    ``["x"],"user_id":999`` would also set ``user_id``. Such a record is corrupt, wherever it is read."""
    fields = {"user_id": b"1", "cart": b'["x"],"user_id":999'}
    if rig.kind == "memory":
        # Nothing but MemoryStore's own write methods put values in it, and they refuse this one.
        with pytest.raises(ValueError, match="'cart' is not one"):
            await rig.store.create("k", SessionRecord(fields, rig.meta()), ttl=60)
        assert not await rig.exists("k")
        return
    key, cookie = await rig.plant(fields)
    if rig.kind == "redis":
        await assert_discarded(rig, caplog, key, cookie, "'cart' is not one JSON value")
        return
    # A Backend's dict holds values, not JSON text: the text is one string, which cannot splice. The
    # typed model refuses a string for a list; the dict door holds it as the string it is.
    reply = await rig.get(cookie)
    assert reply.status == 200
    assert rig.seen[-1]["user_id"] != 999
    if rig.door == "classic":
        assert rig.seen[-1] == {**ValueSession().model_dump(), "user_id": 1, "cart": '["x"],"user_id":999'}


# -- Values a request cannot store: refused, and the stored session kept --------------------------


def nested(levels: int) -> Any:
    """Lists ``levels`` deep: ``nested(2) == [[0]]``."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


async def assert_refused(rig: Rig, reply: Reply, where: str, cookie: str) -> None:
    """The request failed with a SessionValueError naming ``where``, and the session is as it was."""
    assert reply.status == 500, reply.status
    assert isinstance(reply.error, SessionValueError), f"not our error: {reply.error!r}"
    assert where in str(reply.error), str(reply.error)
    assert reply.cookie() is None
    assert (await rig.get(cookie)).status == 200
    assert rig.seen[-1] == {**ValueSession().model_dump(), "user_id": 7, "tree": [1]}, "changed"


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 200, 10_000])
async def test_a_value_nested_deeper_than_a_session_loads_back_is_refused(rig: Rig, levels: int) -> None:
    """pydantic-core reads JSON up to 200 levels deep: a deeper value was acknowledged with a 200,
    then its session discarded on the next read (the user logged out). One limit at write time."""
    _, cookie = await rig.plant({"user_id": b"7", "tree": b"[1]"})
    reply = await rig.post(rig.assign("tree", nested(levels)), cookie)
    await assert_refused(rig, reply, "tree", cookie)
    assert f"more than {MAX_DEPTH}" in str(reply.error)


async def test_a_value_nested_too_deep_inside_the_session_is_refused(rig: Rig) -> None:
    """The same limit for a change made in place, found when the response starts."""
    _, cookie = await rig.plant({"user_id": b"7", "tree": b"[1]"})
    reply = await rig.post(lambda data: _tree(data).append(nested(MAX_DEPTH)), cookie)
    await assert_refused(rig, reply, "tree", cookie)


def _tree(data: Any) -> Any:
    return data["tree"] if isinstance(data, dict) else data.tree


async def test_a_value_at_the_depth_limit_is_saved_and_loads_back(rig: Rig) -> None:
    _, cookie = await rig.plant({"user_id": b"7", "tree": b"[1]"})
    deepest = {"a": nested(MAX_DEPTH - 1)}
    reply = await rig.post(rig.assign("tree", deepest), cookie)
    assert reply.status == 200, reply.error
    assert (await rig.get(cookie)).status == 200
    assert rig.seen[-1]["tree"] == deepest
    assert rig.seen[-1]["user_id"] == 7


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("where", ["score", "tree", "in place"])
async def test_a_float_json_cannot_hold_is_refused_never_stored_as_null(
    rig: Rig, value: float, where: str
) -> None:
    """NaN and Infinity are not JSON: the typed door wrote a float field's as NaN (which not every
    store holds) and an untyped field's as null (the value silently changed)."""
    _, cookie = await rig.plant({"user_id": b"7", "tree": b"[1]"})
    if where == "in place":
        change: Callable[[Any], None] = lambda data: _tree(data).append({"x": [value]})  # noqa: E731
        where = "[1]['x'][0]"
    else:
        change = rig.assign(where, value if where == "score" else {"x": [value]})
        where = where if where == "score" else "tree"
    reply = await rig.post(change, cookie)
    await assert_refused(rig, reply, where, cookie)
    assert "JSON cannot hold" in str(reply.error)


@pytest.mark.parametrize(
    ("where", "make"),
    [
        ("name", lambda rig: rig.assign("name", "caf\ud800")),
        ("cart", lambda rig: rig.assign("cart", ["ok", "\udfff"])),
        ("tree", lambda rig: rig.assign("tree", {"k\ud800": 1})),
        ("tree", lambda rig: lambda data: _tree(data).append("\ud800")),
    ],
    ids=["str", "in-a-list", "in-a-key", "in-place"],
)
async def test_a_lone_surrogate_is_refused_never_a_raw_500(
    rig: Rig, where: str, make: Callable[[Rig], Callable[[Any], None]]
) -> None:
    """A str with a lone surrogate has no UTF-8 form: pydantic-core's encoder raised its own
    PydanticSerializationError from the commit."""
    _, cookie = await rig.plant({"user_id": b"7", "tree": b"[1]"})
    reply = await rig.post(make(rig), cookie)
    await assert_refused(rig, reply, where, cookie)
    assert "lone surrogate" in str(reply.error)


def test_a_lone_surrogate_in_a_session_key_is_refused() -> None:
    """A dict session's keys become stored field names: they must be text too."""
    session = SessionDict({})
    with pytest.raises(SessionValueError, match="lone surrogate"):
        session["\ud800"] = 1
    assert session == {}


class KeepsNonFinite(ValueSession):
    model_config = ConfigDict(ser_json_inf_nan="constants")


class KeepsNonFiniteAsStrings(ValueSession):
    model_config = ConfigDict(ser_json_inf_nan="strings")


@pytest.mark.parametrize("model", [KeepsNonFinite, KeepsNonFiniteAsStrings])
async def test_nan_and_infinity_round_trip_where_the_model_keeps_them(
    request: pytest.FixtureRequest, store_kind: str, model: type[ValueSession]
) -> None:
    """A model whose ser_json_inf_nan keeps them (rather than pydantic's default, null) gets them
    back on every store, in float and untyped fields alike."""
    async with make_rig(request, "typed", store_kind, model) as rig:
        _, cookie = await rig.plant({"user_id": b"7"})

        def change(data: Any) -> None:
            data.score = math.nan
            data.tree = {"x": [math.inf, -math.inf]}

        reply = await rig.post(change, cookie)
        assert reply.status == 200, reply.error
        assert (await rig.get(cookie)).status == 200
        assert math.isnan(rig.seen[-1]["score"])
        assert rig.seen[-1]["tree"] == {"x": [math.inf, -math.inf]}
        assert rig.seen[-1]["user_id"] == 7
