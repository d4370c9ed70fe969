"""Encryption at rest (SESSION_ENCRYPTION_KEYS): what the store holds, what tampering with it does,
key rotation, the doors, the store calls it costs, and its settings.

Tampering is done through the wrapped store's own API, as someone with write access to the store
would: each swapped, altered or foreign value must give the request a fresh session (200, logged),
never another session's data, never an error, and leave the other sessions as they were.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import base64
import binascii
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

pytest.importorskip("cryptography")

from fastapi_sessions import (
    SessionConfigError,
    SessionManager,
    SessionMiddleware,
    SessionSettings,
    UserIndexStore,
)
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.encryption import encrypt_store
from fastapi_sessions.stores import (
    CorruptRecordError,
    MemoryStore,
    SessionChange,
    SessionMeta,
    SessionRecord,
    SessionStore,
    WriteResult,
)
from fastapi_sessions.stores.encrypted import BINDING_FIELD, EncryptedStore, key_id
from fastapi_sessions.testing import FakeClock, RecordingStore

from .backend_support import DictBackend
from .conftest import SECRET, make_settings

pytestmark = pytest.mark.anyio

OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(100, 132))
SECURITY_LOGGER = "fastapi_sessions.security"
TTL = 3600.0


def text(key: bytes) -> str:
    """A key as SESSION_ENCRYPTION_KEYS holds it."""
    return base64.urlsafe_b64encode(key).decode()


def kid_of(sealed: bytes) -> bytes:
    """The key id inside a stored ciphertext (after the format byte)."""
    return binascii.a2b_base64(sealed[1:-1])[1:5]


class Account(BaseModel):
    role: str = "user"
    nickname: str = ""


class Env:
    """A typed app on an encrypted MemoryStore, with the inner store at hand for tampering."""

    def __init__(self, keys: list[bytes], inner: MemoryStore, clock: FakeClock, **settings: Any) -> None:
        self.inner, self.clock = inner, clock
        self.sessions = SessionManager(
            Account,
            settings=make_settings(encryption_keys=[text(key) for key in keys], **settings),
            store=inner,
            clock=clock,
        )
        self.app = FastAPI()
        self.sessions.install(self.app)
        Session = Annotated[Account, Depends(self.sessions.get_session)]

        @self.app.get("/me")
        async def me(session: Session) -> Account:
            return session

        @self.app.post("/nickname/{name}")
        async def nickname(name: str, session: Session) -> Account:
            session.nickname = name
            return session

        @self.app.post("/role/{role}")
        async def role(role: str, session: Session) -> Account:  # an admin's tool, in a real app
            session.role = role
            return session

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url="https://testserver")

    def key_of(self, cookie: str) -> str:
        verified = self.sessions.engine.signer.verify(cookie)
        assert verified is not None
        return verified[1]

    async def stored(self, cookie: str) -> SessionRecord:
        record = await self.inner.load(self.key_of(cookie))
        assert record is not None
        return record


async def me(client: httpx.AsyncClient, cookie: str) -> dict[str, Any]:
    client.cookies.clear()
    response = await client.get("/me", headers={"cookie": f"session={cookie}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_session(client: httpx.AsyncClient, *paths: str) -> str:
    client.cookies.clear()
    for path in paths:
        response = await client.post(path)
        assert response.status_code == 200, response.text
    cookie = client.cookies.get("session")
    assert cookie is not None
    return cookie


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inner(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def env(inner: MemoryStore, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> Env:
    caplog.set_level(logging.WARNING, logger="fastapi_sessions")
    return Env([NEW_KEY, OLD_KEY], inner, clock)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with env.client() as client:
        yield client


def discarded(caplog: pytest.LogCaptureFixture, why: str) -> bool:
    """Whether the security log says a session was discarded for ``why``."""
    return any(
        record.name == SECURITY_LOGGER and "discarded" in record.getMessage() and why in record.getMessage()
        for record in caplog.records
    )


FRESH = {"role": "user", "nickname": ""}


# -- what the store holds ---------------------------------------------------------------------------


async def test_the_store_holds_ciphertexts_only_and_the_session_reads_back(
    env: Env, client: httpx.AsyncClient
) -> None:
    cookie = await new_session(client, "/nickname/PLAINTEXT-MARKER", "/role/editor")
    stored = await env.stored(cookie)
    assert set(stored.fields) == {"nickname", "role", BINDING_FIELD}
    assert not any(b"PLAINTEXT-MARKER" in value or b"editor" in value for value in stored.fields.values())
    assert await me(client, cookie) == {"role": "editor", "nickname": "PLAINTEXT-MARKER"}


async def test_the_same_value_is_sealed_with_a_fresh_nonce_every_time(inner: MemoryStore) -> None:
    store = EncryptedStore(inner, [NEW_KEY])
    await store.create(
        "one", SessionRecord({"a": b'"same"', "b": b'"same"'}, SessionMeta(0, 1e12)), ttl=TTL
    )
    await store.create("two", SessionRecord({"a": b'"same"'}, SessionMeta(0, 1e12)), ttl=TTL)
    first = await inner.load("one")
    assert first is not None
    assert await store.update("one", SessionChange({"a": b'"same"'}), ttl=TTL) is WriteResult.OK
    again, other = await inner.load("one"), await inner.load("two")
    assert again is not None
    assert other is not None
    sealed = [first.fields["a"], first.fields["b"], again.fields["a"], other.fields["a"]]
    assert len(set(sealed)) == 4, "one value written four times must give four ciphertexts"
    loaded = await store.load("one")
    assert loaded is not None
    assert dict(loaded.fields) == {"a": b'"same"', "b": b'"same"'}


# -- tampering: a fresh session, logged; the other sessions intact ---------------------------------


async def test_a_value_copied_to_another_field_of_its_session_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The user chose the nickname "admin"; its ciphertext copied onto ``role`` must not make them one."""
    cookie = await new_session(client, "/nickname/admin")
    other = await new_session(client, "/nickname/bob")
    stored = await env.stored(cookie)
    change = SessionChange({"role": stored.fields["nickname"]})
    assert await env.inner.update(env.key_of(cookie), change, ttl=TTL) is WriteResult.OK
    assert await me(client, cookie) == FRESH
    assert discarded(caplog, "fails authentication")
    assert await me(client, other) == {"role": "user", "nickname": "bob"}


async def test_a_value_copied_from_another_session_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await new_session(client, "/role/admin")
    mallory = await new_session(client, "/nickname/mallory")
    change = SessionChange({"role": (await env.stored(admin)).fields["role"]})
    assert await env.inner.update(env.key_of(mallory), change, ttl=TTL) is WriteResult.OK
    assert await me(client, mallory) == FRESH
    assert discarded(caplog, "fails authentication")
    assert await me(client, admin) == {"role": "admin", "nickname": ""}


async def test_a_whole_record_copied_under_another_key_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await new_session(client, "/role/admin")
    mallory = await new_session(client, "/nickname/mallory")
    copy = await env.stored(admin)
    await env.inner.delete(env.key_of(mallory))
    assert await env.inner.create(env.key_of(mallory), copy, ttl=TTL) is WriteResult.OK
    assert await me(client, mallory) == FRESH
    assert discarded(caplog, "does not belong under its key")
    assert await me(client, admin) == {"role": "admin", "nickname": ""}


def flipped(sealed: bytes) -> bytes:
    body = bytearray(binascii.a2b_base64(sealed[1:-1]))
    body[-1] ^= 1
    return b'"' + binascii.b2a_base64(bytes(body), newline=False) + b'"'


@pytest.mark.parametrize(
    "alter",
    [flipped, lambda sealed: sealed[:-9] + b'"', lambda sealed: b'"' + sealed[5:]],
    ids=["bit-flipped", "truncated", "header-cut"],
)
async def test_an_altered_ciphertext_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, alter: Any
) -> None:
    cookie = await new_session(client, "/nickname/ada")
    other = await new_session(client, "/nickname/bob")
    change = SessionChange({"nickname": alter((await env.stored(cookie)).fields["nickname"])})
    assert await env.inner.update(env.key_of(cookie), change, ttl=TTL) is WriteResult.OK
    assert await me(client, cookie) == FRESH
    assert discarded(caplog, "is corrupt")
    assert await me(client, other) == {"role": "user", "nickname": "bob"}


async def test_a_record_written_before_encryption_was_on_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    other = await new_session(client, "/nickname/bob")
    plain = Env([], env.inner, env.clock)  # the same store, before SESSION_ENCRYPTION_KEYS was set
    async with plain.client() as before:
        cookie = await new_session(before, "/role/admin")
        assert (await env.stored(cookie)).fields["role"] == b'"admin"'
    assert await me(client, cookie) == FRESH
    assert discarded(caplog, "is not encrypted")
    assert await me(client, other) == {"role": "user", "nickname": "bob"}


async def test_a_plaintext_value_in_an_encrypted_record_gives_a_fresh_session(
    env: Env, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = await new_session(client, "/nickname/mallory")
    change = SessionChange({"role": b'"admin"'})
    assert await env.inner.update(env.key_of(cookie), change, ttl=TTL) is WriteResult.OK
    assert await me(client, cookie) == FRESH
    assert discarded(caplog, "is corrupt")


# -- key rotation -----------------------------------------------------------------------------------


async def test_key_rotation_old_key_decrypts_newest_seals_and_a_removed_key_opens_nothing(
    inner: MemoryStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastapi_sessions")
    async with Env([OLD_KEY], inner, clock).client() as client:
        old = await new_session(client, "/nickname/ada")
    rotated = Env([NEW_KEY, OLD_KEY], inner, clock)
    async with rotated.client() as client:
        assert await me(client, old) == {"role": "user", "nickname": "ada"}
        client.cookies.set("session", old)
        assert (await client.post("/role/editor")).status_code == 200
        stored = await rotated.stored(old)
        assert kid_of(stored.fields["role"]) == key_id(NEW_KEY), "new writes use the newest key"
        assert kid_of(stored.fields["nickname"]) == key_id(OLD_KEY), "untouched values keep theirs"
        new = await new_session(client, "/nickname/grace")
        assert await me(client, old) == {"role": "editor", "nickname": "ada"}
    async with Env([NEW_KEY], inner, clock).client() as client:
        assert await me(client, new) == {"role": "user", "nickname": "grace"}
        assert await me(client, old) == FRESH, "a session holding values of a removed key is fresh"
    assert discarded(caplog, "no longer lists")


# -- the doors -------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_typed_door_on_redis_with_the_environment_variable_stores_no_plaintext(
    monkeypatch: pytest.MonkeyPatch, redis_server_url: str, redis_prefix: str
) -> None:
    pytest.importorskip("redis")
    from .conftest import UserSession, make_app

    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", f"{text(NEW_KEY)}, {text(OLD_KEY)}")
    settings = make_settings(store_url=redis_server_url, store_prefix=redis_prefix)
    sessions = SessionManager(UserSession, settings=settings)
    assert isinstance(sessions.store, EncryptedStore)
    app = make_app(sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver") as c:
        assert (await c.post("/login/4242", follow_redirects=False)).status_code == 303
        assert (await c.post("/cart/PLAINTEXT-MARKER")).status_code == 200
        assert (await c.get("/me")).json()["cart"] == ["PLAINTEXT-MARKER"]
    stored = await stored_bytes(redis_server_url, redis_prefix)
    assert b"user_id" in stored, "field names stay in the clear"
    assert b"PLAINTEXT-MARKER" not in stored
    assert b"4242" not in stored
    await sessions.close_owned_store()


async def stored_bytes(url: str, prefix: str) -> bytes:
    """Every hash field name and value under ``prefix`` in a real Redis, as the server holds them."""
    import redis.asyncio

    raw = redis.asyncio.Redis.from_url(url)
    stored = b""
    try:
        async for key in raw.scan_iter(match=prefix + "*"):
            if await raw.type(key) == b"hash":
                fields = (await raw.hgetall(key)).items()
                stored += b"".join(bytes(name) + bytes(value) for name, value in fields)
    finally:
        await raw.aclose()
    return stored


@pytest.mark.redis
async def test_classic_door_on_redis_with_the_environment_variable_stores_no_plaintext(
    monkeypatch: pytest.MonkeyPatch, redis_server_url: str, redis_prefix: str
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", text(NEW_KEY))

    async def write(request: Request) -> JSONResponse:
        request.session["card"] = "PLAINTEXT-MARKER"
        return JSONResponse({})

    async def read(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    middleware = SessionMiddleware(
        Starlette(routes=[Route("/write", write, methods=["POST"]), Route("/read", read)]),
        secret_key=SECRET,
        store_url=redis_server_url,
        store_prefix=redis_prefix,
    )
    assert isinstance(middleware.store, EncryptedStore)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(middleware), base_url="https://testserver"
    ) as client:
        assert (await client.post("/write")).status_code == 200
        assert (await client.get("/read")).json() == {"card": "PLAINTEXT-MARKER"}
    stored = await stored_bytes(redis_server_url, redis_prefix)
    assert b"card" in stored
    assert b"PLAINTEXT-MARKER" not in stored
    await middleware.store.aclose()


async def test_classic_door_with_the_keyword_hides_the_hidden_field_and_stores_ciphertexts(
    clock: FakeClock,
) -> None:
    recording = RecordingStore(MemoryStore(clock=clock))

    async def write(request: Request) -> JSONResponse:
        request.session["secret"] = "PLAINTEXT-MARKER"
        return JSONResponse({})

    async def read(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    app = Starlette(
        routes=[Route("/write", write, methods=["POST"]), Route("/read", read)],
        middleware=[
            Middleware(
                SessionMiddleware,
                backend=recording,
                clock=clock,
                secret_key=SECRET,
                encryption_keys=[text(NEW_KEY)],
            )
        ],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver") as c:
        assert (await c.post("/write")).status_code == 200
        assert (await c.get("/read")).json() == {"secret": "PLAINTEXT-MARKER"}
    key = next(key for method, key in recording.keys if method == "create")
    stored = await recording.inner.load(key)
    assert stored is not None
    assert set(stored.fields) == {"secret", BINDING_FIELD}
    assert b"PLAINTEXT-MARKER" not in stored.fields["secret"]


async def test_sanic_door_takes_the_keyword(clock: FakeClock) -> None:
    pytest.importorskip("sanic")
    from fastapi_sessions.sanic import install

    from .sanic_support import new_app

    app = new_app()
    sessions = install(
        app, backend=MemoryStore(clock=clock), secret_key=SECRET, encryption_keys=text(NEW_KEY)
    )
    assert isinstance(sessions.store, EncryptedStore)


# -- what it costs in store calls -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "write_calls"),
    [("last_write_wins", {"update": 1}), ("version_check", {"load": 1, "update": 1})],
)
async def test_a_read_is_one_store_call_and_a_write_one_more_or_two_with_version_checks(
    clock: FakeClock, concurrency: str, write_calls: dict[str, int]
) -> None:
    recording = RecordingStore(MemoryStore(clock=clock))
    env = Env([NEW_KEY], recording, clock, concurrency=concurrency)  # type: ignore[arg-type]
    async with env.client() as client:
        cookie = await new_session(client, "/nickname/ada")
        recording.reset()
        assert await me(client, cookie) == {"role": "user", "nickname": "ada"}
        assert recording.calls == {"load": 1}
        recording.reset()
        client.cookies.set("session", cookie)
        assert (await client.post("/role/editor")).status_code == 200
        assert recording.calls == {"load": 1 + write_calls.get("load", 0), "update": 1}


# -- the wrapper itself -----------------------------------------------------------------------------


class CountedOpens:
    """Counts the decryptions a store's keyring does."""

    def __init__(self, store: EncryptedStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        keyring = store._keys
        opened = keyring.open

        def counting(sealed: bytes, aad: bytes) -> bytes:
            self.count += 1
            return opened(sealed, aad)

        monkeypatch.setattr(keyring, "open", counting)


async def test_values_already_opened_or_written_are_not_decrypted_again(
    inner: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decryption is the cost of a read; a session read again (or just written) skips it, while a
    wrapper that never saw the record (another worker) decrypts everything once."""
    store = EncryptedStore(inner, [NEW_KEY])
    opens = CountedOpens(store, monkeypatch)
    record = SessionRecord({"a": b"1", "b": b'"x"'}, SessionMeta(0, 1e12))
    await store.create("k", record, ttl=TTL)
    await store.update("k", SessionChange({"a": b"2"}, frozenset({"b"})), ttl=TTL)
    for _ in range(3):
        loaded = await store.load("k")
        assert loaded is not None
        assert dict(loaded.fields) == {"a": b"2"}
    assert opens.count == 0
    other = EncryptedStore(inner, [NEW_KEY])
    other_opens = CountedOpens(other, monkeypatch)
    await other.load("k")
    await other.load("k")
    assert other_opens.count == 2, "the record id and the one value, once"


def test_what_is_remembered_stays_within_its_bounds() -> None:
    from fastapi_sessions.stores.opened import OpenedRecords

    opened = OpenedRecords(max_records=3, max_bytes=100)
    for index in range(5):
        known = opened.add(f"k{index}", b"binding", b"id")
        opened.note(f"k{index}", known, "a", b"s" * 10, b"p" * 10)
    assert len(opened) == 3
    assert opened.get("k0") is None
    assert opened.get("k4") is not None
    assert opened.size == 60
    big = opened.add("big", b"binding", b"id")
    opened.note("big", big, "a", b"s" * 60, b"p" * 60)
    assert opened.size <= 100, "a record larger than the bound alone is forgotten too"
    assert opened.get("big") is None
    known = opened.add("k", b"binding", b"id")
    opened.note("k", known, "a", b"s", b"p")
    opened.drop("k", known, "a")
    opened.forget("k")
    stale = opened.add("k", b"binding", b"id")
    opened.forget("k")
    opened.note("k", stale, "a", b"s", b"p")  # forgotten meanwhile: ignored
    assert opened.get("k") is None


async def test_a_write_for_a_record_replaced_under_the_same_key_reseals_for_the_new_record(
    inner: MemoryStore,
) -> None:
    """The id this wrapper remembered is stale: its write must not seal values for the old record."""
    store, other = EncryptedStore(inner, [NEW_KEY]), EncryptedStore(inner, [NEW_KEY])
    await store.create("k", SessionRecord({"a": b"1"}, SessionMeta(0, 1e12)), ttl=TTL)
    await other.delete("k")
    await other.create("k", SessionRecord({"a": b"2"}, SessionMeta(0, 1e12)), ttl=TTL)
    assert await store.update("k", SessionChange({"b": b"3"}), ttl=TTL) is WriteResult.OK
    loaded = await other.load("k")
    assert loaded is not None
    assert dict(loaded.fields) == {"a": b"2", "b": b"3"}


async def test_a_users_list_leaves_out_a_record_that_fails_authentication(inner: MemoryStore) -> None:
    store = EncryptedStore(inner, [NEW_KEY])
    assert isinstance(store, UserIndexStore)
    for key in ("good", "bad"):
        await store.index_add("ada", key, until=1e12, now=0)
        await store.create(key, SessionRecord({"a": b"1"}, SessionMeta(0, 1e12)), ttl=TTL)
    await inner.update("bad", SessionChange({"a": b'"forged"'}), ttl=TTL)
    listed = await store.index_sessions("ada", now=0)
    assert [(entry.key, dict(entry.record.fields)) for entry in listed] == [("good", {"a": b"1"})]
    with pytest.raises(CorruptRecordError):
        await store.load("bad")


def test_the_wrapper_keeps_the_index_capability_only_where_the_store_has_it(clock: FakeClock) -> None:
    assert isinstance(EncryptedStore(MemoryStore(clock=clock), [NEW_KEY]), UserIndexStore)
    backend = EncryptedStore(BackendStore(DictBackend(clock), clock=clock), [NEW_KEY])
    assert not isinstance(backend, UserIndexStore)
    assert isinstance(backend, SessionStore)


def test_the_wrapper_reaches_the_stores_public_attributes_only(clock: FakeClock) -> None:
    store = EncryptedStore(MemoryStore(max_entries=5, clock=clock), [NEW_KEY])
    assert store.max_entries == 5
    with pytest.raises(AttributeError):
        _ = store._data
    assert "EncryptedStore(" in repr(store)
    assert text(NEW_KEY) not in repr(store)


async def test_the_wrapper_refuses_to_write_its_own_field_or_a_value_that_is_not_json(
    inner: MemoryStore,
) -> None:
    store = EncryptedStore(inner, [NEW_KEY])
    meta = SessionMeta(0, 1e12)
    with pytest.raises(ValueError, match="own field"):
        await store.create("k", SessionRecord({BINDING_FIELD: b"1"}, meta), ttl=TTL)
    with pytest.raises(ValueError, match="one JSON value"):
        await store.create("k", SessionRecord({"a": b'["x"],"b":1'}, meta), ttl=TTL)
    assert await inner.load("k") is None


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64!", "is not urlsafe base64"),
        (text(bytes(16)), "decodes to 16 bytes"),
        (f"{text(NEW_KEY)},{text(NEW_KEY)}", "lists one key twice"),
    ],
)
def test_a_bad_key_in_the_environment_is_a_config_error_naming_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", value)
    with pytest.raises(SessionConfigError) as caught:
        make_settings()
    message = str(caught.value)
    assert "SESSION_ENCRYPTION_KEYS" in message
    assert problem in message
    if "twice" not in problem:
        assert "base64.urlsafe_b64encode(secrets.token_bytes(32))" in message
    assert value.split(",")[0] not in message, "an error never shows a key"


def test_a_bad_key_given_to_the_classic_door_is_named_by_its_keyword() -> None:
    with pytest.raises(SessionConfigError, match=r"encryption_keys= \(SESSION_ENCRYPTION_KEYS\)"):
        SessionMiddleware(Starlette(), secret_key=SECRET, encryption_keys="short")


def test_keys_in_json_or_without_padding_are_read_newest_first() -> None:
    settings = make_settings(encryption_keys=f'["{text(NEW_KEY).rstrip("=")}", "{text(OLD_KEY)}"]')
    assert settings.encryption_key_bytes() == [NEW_KEY, OLD_KEY]
    assert make_settings().encryption_key_bytes() == []


def test_keys_set_without_the_extra_fail_at_start_up_naming_the_install_command(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.delitem(sys.modules, "fastapi_sessions.stores.encrypted")
    monkeypatch.delitem(sys.modules, "fastapi_sessions.stores.sealing")
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    settings = make_settings(encryption_keys=text(NEW_KEY))
    with pytest.raises(ImportError, match=r"pip install 'pselfastapise-async\[crypto\]'"):
        SessionManager(Account, settings=settings, store=MemoryStore(clock=clock))


def test_an_encrypted_store_passed_in_with_keys_set_too_is_refused(clock: FakeClock) -> None:
    store = EncryptedStore(MemoryStore(clock=clock), [OLD_KEY])
    with pytest.raises(SessionConfigError, match="EncryptedStore already"):
        encrypt_store(store, make_settings(encryption_keys=text(NEW_KEY)))
    assert encrypt_store(store, make_settings()) is store


def test_a_store_whose_writes_take_no_expected_is_refused(clock: FakeClock) -> None:
    class OldStore(MemoryStore):
        async def update(self, key: str, change: SessionChange, *, ttl: float) -> WriteResult:  # type: ignore[override]
            return await super().update(key, change, ttl=ttl)

    with pytest.raises(SessionConfigError, match=r"OldStore.update\(\) does not"):
        EncryptedStore(OldStore(clock=clock), [NEW_KEY])  # type: ignore[arg-type]


def test_settings_without_keys_leave_the_store_as_it_is(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    assert SessionSettings(secret_key=SECRET).encryption_keys == []
    assert encrypt_store(store, make_settings()) is store


# -- the command-line tool -------------------------------------------------------------------------


async def test_the_cli_reads_encrypted_sessions_as_the_app_does(
    monkeypatch: pytest.MonkeyPatch,
    inner: MemoryStore,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """inspect shows the decrypted values (never $fs:enc), revoke finds the user's sessions, stats
    reaches the wrapped store: the tool wraps its store when SESSION_ENCRYPTION_KEYS is set."""
    from fastapi_sessions.cli import Exit, amain

    from .conftest import UserSession

    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", text(NEW_KEY))
    sessions = SessionManager(UserSession, store=inner, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/login")
    async def login(session: Session, request: Request) -> None:
        sessions.users.login(session, "alice", request)
        session.cart.append("PLAINTEXT-MARKER")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver") as c:
        assert (await c.post("/login")).status_code == 200
        cookie = c.cookies.get("session")
    assert cookie is not None

    async def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = await amain(list(argv), store=inner, clock=clock)
        return code, capsys.readouterr().out

    code, out = await run("inspect", "--json", "--show-values", cookie)
    assert code == Exit.OK
    report = json.loads(out)
    assert report["fields"]["cart"]["value"] == ["PLAINTEXT-MARKER"]
    assert "$fs:enc" not in out
    assert (await run("stats"))[0] == Exit.OK
    assert await run("revoke", "alice") == (Exit.OK, "1 session ended\n")
