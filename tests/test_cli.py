"""The command-line tool, called in-process (``amain``) on the tests' own store and fake clock.

Sessions are made by an app of the library itself (a login, a cart), then inspected, revoked, purged
and counted by the tool. ``tests/test_cli_entry.py`` runs the installed console script and
``python -m fastapi_sessions`` as subprocesses, on Redis.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from fastapi_sessions import SessionManager, SessionSettings
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.cli import Exit, amain, main
from fastapi_sessions.cli.context import redact_url
from fastapi_sessions.exceptions import CorruptRecordError
from fastapi_sessions.signing import SessionSigner, new_session_id, store_key
from fastapi_sessions.stores import MemoryStore, SessionMeta, SessionRecord, SessionStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .backend_support import DictBackend
from .conftest import OLD_SECRET, SECRET, UserSession

CHROME = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The app's settings: the test key, nothing else, and no .env file."""
    for name in list(__import__("os").environ):
        if name.upper().startswith("SESSION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.chdir(tmp_path)


class Run:
    """What one run of the tool did."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], clock: FakeClock) -> Any:
    async def run(*argv: str, store: SessionStore | None = None) -> Run:
        capsys.readouterr()
        code = await amain(list(argv), store=store, clock=clock)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return Run(code, out, err)

    return run


def account_app(store: SessionStore, clock: FakeClock) -> FastAPI:
    """An app with logins (``sessions.users.login``) and a cart, its settings from the environment."""
    sessions = SessionManager(UserSession, store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/login/{user}")
    async def login(user: str, session: Session, request: Request) -> None:
        sessions.users.login(session, user, request)

    @app.post("/cart/{item}")
    async def add(item: str, session: Session) -> None:
        session.cart.append(item)

    @app.get("/me")
    async def me(session: Session) -> UserSession:
        return session

    return app


def browser(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app)
    return httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers={"user-agent": CHROME}
    )


async def logged_in(app: FastAPI, user: str, *items: str) -> str:
    """A new browser's session, logged in to ``user`` with ``items`` in its cart: its cookie value."""
    async with browser(app) as client:
        assert (await client.post(f"/login/{user}")).status_code == 200
        for item in items:
            assert (await client.post(f"/cart/{item}")).status_code == 200
        cookie = client.cookies.get("session")
    assert cookie is not None
    return cookie


# -- secret ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_secret_prints_a_new_key_the_settings_accept(cli: Any) -> None:
    first, second = await cli("secret"), await cli("secret")
    assert first.code == Exit.OK
    key = first.out.strip()
    assert first.out == key + "\n", "nothing but the key: $(fastapi-sessions secret) works"
    assert len(key) >= 43
    assert key != second.out.strip()
    SessionSettings(secret_key=key)


@pytest.mark.anyio
async def test_secret_encryption_prints_urlsafe_base64_of_32_random_bytes(cli: Any) -> None:
    run = await cli("secret", "--encryption")
    key = run.out.strip()
    assert len(base64.urlsafe_b64decode(key.encode())) == 32
    assert key != (await cli("secret", "--encryption")).out.strip()


# -- check --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_check_passes_on_memory_with_a_note_that_it_is_per_process(cli: Any) -> None:
    run = await cli("check")
    assert run.code == Exit.OK
    assert "settings are valid" in run.out
    assert "memory://" in run.err
    assert "each worker" in run.err


@pytest.mark.anyio
async def test_check_names_the_variable_of_a_bad_setting(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", "short")
    run = await cli("check")
    assert run.code == Exit.CONFIG
    assert "SESSION_SECRET_KEY" in run.err
    assert "short" not in run.err, "never a key, even a bad one"
    monkeypatch.delenv("SESSION_SECRET_KEY")
    assert (await cli("check")).code == Exit.CONFIG


@pytest.mark.anyio
async def test_check_refuses_a_store_url_it_cannot_build_without_printing_its_password(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_STORE_URL", "mysql://app:hunter2@db.example/sessions")
    run = await cli("check")
    assert run.code == Exit.CONFIG
    assert "SESSION_STORE_URL" in run.err
    assert "hunter2" not in run.err


@pytest.mark.anyio
async def test_check_runs_the_start_up_checks_of_settings_against_a_store_given(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store passed to main(store=...) is checked as SessionManager(store=...) checks it."""
    monkeypatch.setenv("SESSION_STORE_PREFIX", "app1:")
    run = await cli("check", store=MemoryStore())
    assert run.code == Exit.CONFIG
    assert "SESSION_STORE_PREFIX" in run.err


@pytest.mark.anyio
async def test_check_exits_4_when_the_store_fails(cli: Any) -> None:
    store = RecordingStore(MemoryStore())
    store.failing = {"load"}
    run = await cli("check", store=store)
    assert run.code == Exit.STORE
    assert "failed to answer a read" in run.err
    assert "RecordingStore" in run.err


@pytest.mark.anyio
async def test_env_file_is_read_like_the_apps_dotenv(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SESSION_SECRET_KEY")
    env = tmp_path / "prod.env"
    env.write_text(f"SESSION_SECRET_KEY={SECRET}\nSESSION_COOKIE_NAME=__Host-sid\n", encoding="utf-8")
    assert (await cli("check")).code == Exit.CONFIG
    assert (await cli("--env-file", str(env), "check")).code == Exit.OK
    missing = await cli("--env-file", str(tmp_path / "nope.env"), "check")
    assert missing.code == Exit.USAGE
    assert "no such file" in missing.err
    (tmp_path / ".env").write_text(f"SESSION_SECRET_KEY={SECRET}\n", encoding="utf-8")
    assert (await cli("check")).code == Exit.OK, "./.env, as the app reads it"


def test_a_bad_command_line_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == Exit.USAGE
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["secret", "check", "inspect", "revoke", "purge", "stats", "create-table"]
)
def test_each_command_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == Exit.OK
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: fastapi-sessions {command}")
    assert len(shown.split("\n\n")[1]) > 60, "a description that says what it does"


def test_main_runs_a_command_on_its_own_event_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secret"]) == Exit.OK
    assert len(capsys.readouterr().out.strip()) >= 43


def test_importing_the_library_does_not_import_the_cli() -> None:
    code = "import sys, fastapi_sessions; print('fastapi_sessions.cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_urls_are_printed_without_passwords() -> None:
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://user:pw@h:6380/0?db=1") == "rediss://user:***@h:6380/0?db=1"
    assert redact_url("redis://h/0?password=pw&db=1") == "redis://h/0?password=***&db=1"
    assert redact_url("postgresql://app:pw@localhost/db") == "postgresql://app:***@localhost/db"
    assert redact_url("memory://") == "memory://"
    assert redact_url("redis://u:pw@[::1/0") == "redis://..."


# -- inspect ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_inspect_shows_a_session_redacted_by_default(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    cookie = await logged_in(account_app(store, clock), "alice", "book")
    run = await cli("inspect", cookie, store=store)
    assert run.code == Exit.OK
    assert "status      live" in run.out
    assert "logged in   yes, at" in run.out
    assert "cart" in run.out
    assert "array" in run.out
    assert "login" in run.out, "the library's own entries, by name"
    assert "values hidden" in run.out
    for secret in ("alice", "book", CHROME):
        assert secret not in run.out


@pytest.mark.anyio
async def test_inspect_show_values_and_json(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    cookie = await logged_in(account_app(store, clock), "alice", "book")
    shown = await cli("inspect", "--show-values", f"session={cookie}", store=store)
    assert shown.code == Exit.OK
    assert '["book"]' in shown.out
    assert "logged in   yes as alice" in shown.out
    assert CHROME in shown.out
    report = (await cli("inspect", "--json", cookie, store=store)).json()
    assert report["status"] == "live"
    assert report["created_at"] == clock.time()
    assert report["persistent"] is False
    assert report["fields"]["cart"] == {"type": "array", "bytes": len(b'["book"]')}
    assert report["logged_in"] == {"at": clock.time()}, "not who, unless asked"
    assert set(report["state"]) >= {"login"}
    full = (await cli("inspect", "--json", "--show-values", cookie, store=store)).json()
    assert full["logged_in"]["user"] == "alice"
    assert full["fields"]["cart"]["value"] == ["book"]


@pytest.mark.anyio
async def test_inspect_never_extends_the_session(
    cli: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_IDLE_TIMEOUT", "100")
    store = MemoryStore(clock=clock)
    cookie = await logged_in(account_app(store, clock), "alice")
    clock.advance(60)
    assert (await cli("inspect", cookie, store=store)).code == Exit.OK
    clock.advance(60)
    run = await cli("inspect", cookie, store=store)
    assert run.code == Exit.NOT_FOUND, "the idle timeout ran from the app's last request"


@pytest.mark.anyio
async def test_inspect_takes_a_cookie_value_that_starts_with_a_dash(cli: Any, clock: FakeClock) -> None:
    """One ID in 64 starts with '-': it is a value, not an option, wherever it stands."""
    store = MemoryStore(clock=clock)
    session_id = "-" + new_session_id()[1:]
    record = SessionRecord({"a": b"1"}, SessionMeta(clock.time(), clock.time() + 3600))
    await store.create(store_key(session_id, "session"), record, ttl=600)
    cookie = SessionSigner([SECRET], max_age=3600, clock=clock, namespace="session").sign(session_id)
    assert (await cli("inspect", cookie, "--json", store=store)).code == Exit.OK
    assert (await cli("inspect", "--json", cookie, store=store)).code == Exit.OK
    assert (await cli("inspect", "--", cookie, store=store)).code == Exit.OK


@pytest.mark.anyio
async def test_inspect_explains_a_value_of_another_shape(cli: Any) -> None:
    run = await cli("inspect", "not-a-cookie")
    assert run.code == Exit.NOT_FOUND
    assert "another shape" in run.err


@pytest.mark.anyio
async def test_inspect_explains_a_signature_of_another_key(cli: Any, clock: FakeClock) -> None:
    other = SessionSigner(
        ["another-k3y-0123456789-abcdefghijklmnopq"], max_age=60, clock=clock, namespace="session"
    )
    run = await cli("inspect", other.sign(new_session_id()))
    assert run.code == Exit.NOT_FOUND
    assert "SESSION_SECRET_KEY_FALLBACKS" in run.err


@pytest.mark.anyio
async def test_inspect_explains_a_cookie_older_than_the_max_age(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    cookie = await logged_in(account_app(store, clock), "alice")
    clock.advance(15 * 24 * 3600)
    run = await cli("inspect", cookie, store=store)
    assert run.code == Exit.NOT_FOUND
    assert "older than SESSION_MAX_AGE" in run.err


@pytest.mark.anyio
async def test_inspect_accepts_a_cookie_signed_with_a_fallback_key(
    cli: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", OLD_SECRET)
    store = MemoryStore(clock=clock)
    cookie = await logged_in(account_app(store, clock), "alice")
    monkeypatch.setenv("SESSION_SECRET_KEY", SECRET)
    monkeypatch.setenv("SESSION_SECRET_KEY_FALLBACKS", OLD_SECRET)
    run = await cli("inspect", cookie, store=store)
    assert run.code == Exit.OK
    assert "fallback key" in run.out


@pytest.mark.anyio
async def test_inspect_of_a_session_gone_or_on_another_store(cli: Any, clock: FakeClock) -> None:
    cookie = await logged_in(account_app(MemoryStore(clock=clock), clock), "alice")
    run = await cli("inspect", cookie)  # memory:// of its own: not the app's
    assert run.code == Exit.NOT_FOUND
    assert "no session is stored" in run.err
    assert "SESSION_STORE_PREFIX" in run.err
    assert "each worker" in run.err


@pytest.mark.anyio
async def test_inspect_shows_a_record_the_app_would_refuse_and_exits_1(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    session_id = new_session_id()
    future = SessionRecord({"a": b"1"}, SessionMeta(clock.time() + 3600, clock.time() + 7200))
    await store.create(store_key(session_id, "session"), future, ttl=600)
    signer = SessionSigner([SECRET], max_age=3600, clock=clock, namespace="session")
    run = await cli("inspect", signer.sign(session_id), store=store)
    assert run.code == Exit.NOT_FOUND
    assert "unusable: has a creation time in the future" in run.out


class CorruptStore(RecordingStore):
    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        raise CorruptRecordError("a hash without metadata")


@pytest.mark.anyio
async def test_inspect_of_a_corrupt_record(cli: Any, clock: FakeClock) -> None:
    signer = SessionSigner([SECRET], max_age=3600, clock=clock, namespace="session")
    run = await cli("inspect", signer.sign(new_session_id()), store=CorruptStore(MemoryStore()))
    assert run.code == Exit.NOT_FOUND
    assert "corrupt (a hash without metadata)" in run.err


@pytest.mark.anyio
async def test_inspect_follows_a_rotated_id_within_its_grace(
    cli: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_ROTATE_INTERVAL", "600")
    monkeypatch.setenv("SESSION_ROTATE_GRACE", "30")
    store = MemoryStore(clock=clock)
    app = account_app(store, clock)
    async with browser(app) as client:
        await client.post("/login/alice")
        before = client.cookies["session"]
        clock.advance(601)
        await client.get("/me")
        assert client.cookies["session"] != before, "rotated"
    run = await cli("inspect", "--json", before, store=store)
    assert run.code == Exit.OK
    assert run.json()["reached_through_rotated_id"] is True
    clock.advance(31)
    assert (await cli("inspect", before, store=store)).code == Exit.NOT_FOUND


# -- revoke -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_revoke_ends_every_session_of_a_user_and_only_theirs(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    app = account_app(store, clock)
    alice = [await logged_in(app, "alice"), await logged_in(app, "alice")]
    bob = await logged_in(app, "bob")
    dry = await cli("revoke", "--dry-run", "alice", store=store)
    assert dry.out.strip() == "2 sessions live"
    run = await cli("revoke", "alice", store=store)
    assert run.code == Exit.OK
    assert run.out.strip() == "2 sessions ended"
    for cookie in alice:
        assert (await cli("inspect", cookie, store=store)).code == Exit.NOT_FOUND
    assert (await cli("inspect", bob, store=store)).code == Exit.OK
    assert (await cli("revoke", "alice", store=store)).out.strip() == "0 sessions ended"
    assert (await cli("revoke", "bob", store=store)).out.strip() == "1 session ended"


@pytest.mark.anyio
async def test_revoke_on_a_store_without_the_index_says_which_stores_have_it(cli: Any) -> None:
    run = await cli("revoke", "alice", store=RecordingStore(MemoryStore()))
    assert run.code == Exit.UNSUPPORTED
    assert "MemoryStore, RedisStore and PostgresStore" in run.err


@pytest.mark.anyio
async def test_revoke_on_memory_url_notes_it_is_per_process(cli: Any) -> None:
    run = await cli("revoke", "alice")
    assert run.code == Exit.OK
    assert "each worker" in run.err


class FailingIndexStore(MemoryStore):
    async def index_sessions(self, user: str, *, now: float) -> Any:
        raise ConnectionError("connection refused")


@pytest.mark.anyio
async def test_revoke_exits_4_when_the_store_fails(cli: Any) -> None:
    run = await cli("revoke", "alice", store=FailingIndexStore())
    assert run.code == Exit.STORE
    assert "connection refused" in run.err


# -- purge, stats, create-table -----------------------------------------------------------------


@pytest.mark.anyio
async def test_purge_removes_expired_sessions_and_says_how_many(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    app = account_app(store, clock)
    for user in ("alice", "bob", "carol"):
        await logged_in(app, user)
    clock.advance(15 * 24 * 3600)
    run = await cli("purge", store=store)
    assert run.code == Exit.OK
    assert run.out.strip() == "3 expired sessions removed"
    assert len(store) == 0
    memory = await cli("purge")
    assert memory.out.strip() == "0 expired sessions removed"
    assert "each worker" in memory.err


@pytest.mark.anyio
async def test_stats_prints_figures_and_json(cli: Any, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    app = account_app(store, clock)
    await logged_in(app, "alice")
    await logged_in(app, "bob")
    text = await cli("stats", store=store)
    assert text.code == Exit.OK
    assert any(line.split() == ["sessions", "2"] for line in text.out.splitlines())
    figures = (await cli("stats", "--json", store=store)).json()
    assert figures["sessions"] == 2
    assert figures["indexed_users"] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("command", ["purge", "stats"])
async def test_purge_and_stats_on_a_store_without_them_exit_5(cli: Any, command: str) -> None:
    run = await cli(command, store=BackendStore(DictBackend(FakeClock())))  # a Backend has neither
    assert run.code == Exit.UNSUPPORTED
    assert "fastapi_sessions.stores.operations" in run.err


@pytest.mark.anyio
@pytest.mark.parametrize("command", ["purge", "stats"])
async def test_purge_and_stats_reach_the_store_under_a_wrapper(cli: Any, command: str) -> None:
    """A wrapper (here the recording one; EncryptedStore, the metrics' timer) forwards these through
    __getattr__, which isinstance() on a protocol does not see on Python 3.12+: the tool looks under."""
    run = await cli(command, store=RecordingStore(MemoryStore()))
    assert run.code == Exit.OK


@pytest.mark.anyio
async def test_purge_and_stats_exit_4_when_the_store_fails(cli: Any) -> None:
    class Down(MemoryStore):
        async def stats(self) -> dict[str, int | float | str]:
            raise OSError("no route to host")

    run = await cli("stats", store=Down())
    assert run.code == Exit.STORE
    assert "no route to host" in run.err


class TableMemoryStore(MemoryStore):
    created = 0

    async def create_table(self) -> None:
        self.created += 1


@pytest.mark.anyio
async def test_create_table_calls_the_store_or_explains_there_is_none(cli: Any) -> None:
    store = TableMemoryStore()
    run = await cli("create-table", store=store)
    assert run.code == Exit.OK
    assert store.created == 1
    assert "is ready" in run.out
    none = await cli("create-table")
    assert none.code == Exit.OK
    assert "nothing to create: MemoryStore keeps no table" in none.out
