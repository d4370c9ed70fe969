"""The command-line tool through its real entry points: the installed ``fastapi-sessions`` console
script and ``python -m fastapi_sessions``, run as subprocesses with ``SESSION_*`` variables.

The main paths run on a real Redis and a real PostgreSQL: sessions made by an app of the library
(logins through ``sessions.users.login``), then checked, inspected, counted, revoked and purged by
the tool.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from fastapi_sessions import SessionManager, SessionSettings

from .conftest import SECRET, UserSession
from .redis_support import free_port

SCRIPT = Path(sys.executable).parent / "fastapi-sessions"
ENTRY_POINTS = {"console-script": [str(SCRIPT)], "python-m": [sys.executable, "-m", "fastapi_sessions"]}
COMMANDS = ["secret", "check", "inspect", "revoke", "purge", "stats", "create-table"]


@pytest.fixture(params=list(ENTRY_POINTS))
def entry(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "console-script":
        assert SCRIPT.exists(), (
            f"{SCRIPT} is missing: the console script comes with the installed package; run "
            "pip install -e . again after [project.scripts] changed."
        )
    command: list[str] = ENTRY_POINTS[request.param]
    return command


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any SESSION_* variable, plus ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("SESSION_")}
    env.update({f"SESSION_{name.upper()}": value for name, value in settings.items()})
    return env


async def run(entry: list[str], *args: str, cwd: Path, **settings: str) -> CompletedProcess[str]:
    done = await anyio.run_process([*entry, *args], cwd=cwd, env=environment(**settings), check=False)
    result = CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    assert "Traceback" not in result.stderr, result.stderr
    return result


async def together(*runs: Awaitable[CompletedProcess[str]]) -> list[CompletedProcess[str]]:
    """The results of ``runs``, run concurrently, in order."""
    results: list[CompletedProcess[str] | None] = [None] * len(runs)

    async def one(index: int, done: Awaitable[CompletedProcess[str]]) -> None:
        results[index] = await done

    async with anyio.create_task_group() as group:
        for index, done in enumerate(runs):
            group.start_soon(one, index, done)
    return [result for result in results if result is not None]


@pytest.mark.anyio
async def test_secret_prints_a_key_the_settings_accept(entry: list[str], tmp_path: Path) -> None:
    done = await run(entry, "secret", cwd=tmp_path)
    assert done.returncode == 0
    SessionSettings(secret_key=done.stdout.strip())


@pytest.mark.anyio
async def test_help_lists_every_command(entry: list[str], tmp_path: Path) -> None:
    """(Each command's own --help is checked in-process, in tests/test_cli.py.)"""
    done = await run(entry, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: fastapi-sessions")
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.anyio
async def test_check_exits_3_naming_the_variable_of_a_bad_setting(entry: list[str], tmp_path: Path) -> None:
    done = await run(entry, "check", cwd=tmp_path, secret_key="changeme")
    assert done.returncode == 3
    assert "SESSION_SECRET_KEY" in done.stderr
    assert "changeme" not in done.stderr
    unset = await run(entry, "check", cwd=tmp_path)
    assert unset.returncode == 3
    assert "SESSION_SECRET_KEY is not set" in unset.stderr


@pytest.mark.anyio
async def test_check_passes_on_memory_with_its_note(entry: list[str], tmp_path: Path) -> None:
    done = await run(entry, "check", cwd=tmp_path, secret_key=SECRET)
    assert done.returncode == 0
    assert "memory://" in done.stderr


@pytest.mark.anyio
async def test_a_bad_command_line_exits_2(entry: list[str], tmp_path: Path) -> None:
    done = await run(entry, "frobnicate", cwd=tmp_path)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.anyio
async def test_check_exits_4_when_redis_is_unreachable_and_never_prints_its_password(
    entry: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("redis")
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there: refused at once
    done = await run(entry, "check", cwd=tmp_path, secret_key=SECRET, store_url=url)
    assert done.returncode == 4
    assert "reachable" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert "redis://:***@127.0.0.1" in done.stderr


# -- on Redis: sessions made by the app, managed by the tool ------------------------------------


def login_app(sessions: SessionManager[UserSession]) -> FastAPI:
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/login/{user}")
    async def login(user: str, session: Session, request: Request) -> None:
        sessions.users.login(session, user, request)
        session.cart.append("secret-book")

    return app


@pytest.fixture
async def redis_sessions(
    redis_server_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SessionManager[UserSession]]:
    pytest.importorskip("redis")
    for name in list(os.environ):
        if name.upper().startswith("SESSION_"):
            monkeypatch.delenv(name)
    settings = SessionSettings(secret_key=SECRET, store_url=redis_server_url, store_prefix=redis_prefix)
    sessions = SessionManager(UserSession, settings=settings)
    yield sessions
    await sessions.close_owned_store()


async def login(app: FastAPI, user: str) -> str:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.post(f"/login/{user}")).status_code == 200
        cookie = client.cookies.get("session")
    assert cookie is not None
    return cookie


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_tool_manages_the_apps_sessions_on_redis(
    entry: list[str], tmp_path: Path, redis_sessions: SessionManager[UserSession]
) -> None:
    settings = redis_sessions.settings
    env: dict[str, Any] = {
        "secret_key": SECRET,
        "store_url": settings.store_url,
        "store_prefix": settings.store_prefix,
    }
    app = login_app(redis_sessions)
    alice = [await login(app, "alice"), await login(app, "alice")]
    bob = await login(app, "bob")

    # Independent runs go side by side: each is a process start (about 0.7 s) on a 2-core machine.
    checked, shown, full, counted = await together(
        run(entry, "check", cwd=tmp_path, **env),
        run(entry, "inspect", alice[0], cwd=tmp_path, **env),
        run(entry, "inspect", "--json", "--show-values", alice[0], cwd=tmp_path, **env),
        run(entry, "stats", "--json", cwd=tmp_path, **env),
    )
    assert checked.returncode == 0, checked.stderr
    assert shown.returncode == 0, shown.stderr
    assert "logged in   yes" in shown.stdout
    assert "cart" in shown.stdout
    assert "alice" not in shown.stdout
    assert "secret-book" not in shown.stdout
    report = json.loads(full.stdout)
    assert report["logged_in"]["user"] == "alice"
    assert report["fields"]["cart"]["value"] == ["secret-book"]
    stats = json.loads(counted.stdout)
    assert stats["sessions"] == 3
    assert stats["indexed_users"] == 2

    revoked = await run(entry, "revoke", "alice", cwd=tmp_path, **env)
    assert revoked.returncode == 0
    assert revoked.stdout.strip() == "2 sessions ended"

    gone, kept, purged, table = await together(
        run(entry, "inspect", alice[1], cwd=tmp_path, **env),
        run(entry, "inspect", bob, cwd=tmp_path, **env),
        run(entry, "purge", cwd=tmp_path, **env),
        run(entry, "create-table", cwd=tmp_path, **env),
    )
    assert gone.returncode == 1
    assert "no session is stored" in gone.stderr
    assert kept.returncode == 0
    assert purged.returncode == 0
    assert purged.stdout.strip() == "0 expired sessions removed"
    assert "Redis removes expired session keys by itself" in purged.stderr
    assert table.stdout.strip() == "nothing to create: RedisStore keeps no table"


# -- on PostgreSQL: the table, the purge and the counts ------------------------------------------


@pytest.mark.postgres
@pytest.mark.anyio
async def test_the_tool_creates_purges_counts_and_revokes_on_postgresql(
    entry: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi_sessions.testing import FakeClock

    from .postgres_support import postgres_schema, store_url

    for name in list(os.environ):
        if name.upper().startswith("SESSION_"):
            monkeypatch.delenv(name)
    async with postgres_schema() as (dsn, schema):
        url = store_url(dsn, f"{schema}.sessions")
        env: dict[str, Any] = {"secret_key": SECRET, "store_url": url}
        table = await run(entry, "create-table", cwd=tmp_path, **env)
        assert table.returncode == 0, table.stderr
        assert "is ready" in table.stdout

        settings = SessionSettings(secret_key=SECRET, store_url=url)
        now = SessionManager(UserSession, settings=settings)
        # Sessions made by a clock 30 days back: past SESSION_MAX_AGE by the real one, rows to purge.
        past = SessionManager(UserSession, settings=settings, clock=FakeClock(time.time() - 30 * 86400))
        try:
            alice = [await login(login_app(now), "alice"), await login(login_app(now), "alice")]
            await login(login_app(past), "bob")
            await login(login_app(past), "carol")
        finally:
            await now.close_owned_store()
            await past.close_owned_store()

        checked, shown, counted = await together(
            run(entry, "check", cwd=tmp_path, **env),
            run(entry, "inspect", alice[0], cwd=tmp_path, **env),
            run(entry, "stats", "--json", cwd=tmp_path, **env),
        )
        assert checked.returncode == 0, checked.stderr
        assert shown.returncode == 0, shown.stderr
        assert "logged in   yes" in shown.stdout
        stats = json.loads(counted.stdout)
        assert stats["sessions"] == 2
        assert stats["expired"] == 2

        purged = await run(entry, "purge", cwd=tmp_path, **env)
        assert purged.stdout.strip() == "2 expired sessions removed"
        revoked = await run(entry, "revoke", "alice", cwd=tmp_path, **env)
        assert revoked.stdout.strip() == "2 sessions ended"
        stats = json.loads((await run(entry, "stats", "--json", cwd=tmp_path, **env)).stdout)
        assert (stats["sessions"], stats["expired"]) == (0, 0)
