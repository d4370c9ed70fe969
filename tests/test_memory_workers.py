"""MemoryStore in several worker processes: one WARNING that names the fix, and silence in one process.

Workers of one server are processes with the same parent and the same command line. The first tests
start such processes themselves (``python -c ... <token>``, children of this test process) and hold
each one alive until the test lets it go, so which process runs beside which is decided by the test,
not by timing. Then a real ``uvicorn --workers 2``, then the check's own cases, run in this process.
"""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fastapi_sessions.stores import workers

from .conftest import SECRET
from .workers_support import uvicorn_workers

fcntl = pytest.importorskip("fcntl", reason="the check relies on flock (POSIX)")

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD = 60.0  # seconds; only ever reached when something hangs
WARNING = "runs in several worker processes"

# One "worker": stores a session (the first one in a process is when the check runs), says so, then
# stays alive until its stdin closes.
WORKER = """
import asyncio, logging, sys
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
from fastapi_sessions.stores import MemoryStore, SessionMeta, SessionRecord

async def main() -> None:
    store = MemoryStore()
    await store.create("k", SessionRecord({"a": b"1"}, SessionMeta(0.0, 4e9)), ttl=60)
    await store.create("l", SessionRecord({"a": b"1"}, SessionMeta(0.0, 4e9)), ttl=60)

asyncio.run(main())
print("stored", flush=True)
sys.stdin.read()
"""


class Sibling:
    """A worker-like child of this test process; all siblings of one test share its command line."""

    def __init__(self, token: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, token],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._wait_until_stored()

    def _wait_until_stored(self) -> None:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            assert selector.select(HANG_GUARD), "the worker never stored its session"
        line = self.process.stdout.readline()
        assert line == b"stored\n", line + self.process.communicate(timeout=HANG_GUARD)[1]

    def stop(self) -> str:
        """Let the process end; its log output."""
        _, err = self.process.communicate(b"", timeout=HANG_GUARD)
        assert self.process.returncode == 0, err.decode()
        return err.decode()


@pytest.fixture
def siblings() -> Iterator[list[Sibling]]:
    """The siblings a test started; any still running afterwards is killed."""
    started: list[Sibling] = []
    yield started
    for sibling in started:
        if sibling.process.poll() is None:
            sibling.process.kill()
            sibling.process.wait(HANG_GUARD)


@pytest.fixture
def sibling_args(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """One command line per test (a fresh token) and a private temporary directory."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSION_")}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    return uuid.uuid4().hex, env


def test_a_second_live_worker_of_the_same_app_logs_one_warning_naming_the_fix(
    siblings: list[Sibling], sibling_args: tuple[str, dict[str, str]]
) -> None:
    for _ in range(3):
        siblings.append(Sibling(*sibling_args))
    logs = [sibling.stop() for sibling in siblings]
    assert WARNING not in logs[0], "the first worker had no sibling yet"
    warnings = [line for log in logs for line in log.splitlines() if WARNING in line]
    assert len(warnings) == 1, logs
    assert warnings[0].startswith("WARNING fastapi_sessions ")
    assert "SESSION_STORE_URL=redis://" in warnings[0]


def test_a_single_process_stays_quiet(
    siblings: list[Sibling], sibling_args: tuple[str, dict[str, str]]
) -> None:
    siblings.append(Sibling(*sibling_args))
    log = siblings[0].stop()
    assert "WARNING" not in log


def test_a_worker_started_after_the_previous_one_ended_stays_quiet(
    siblings: list[Sibling], sibling_args: tuple[str, dict[str, str]]
) -> None:
    """A restart (``--reload``, a crashed worker replaced) is one process at a time."""
    first = Sibling(*sibling_args)
    siblings.append(first)
    assert "WARNING" not in first.stop()
    second = Sibling(*sibling_args)
    siblings.append(second)
    assert "WARNING" not in second.stop()


def test_processes_of_other_command_lines_are_not_siblings(
    siblings: list[Sibling], sibling_args: tuple[str, dict[str, str]]
) -> None:
    """Two different apps (or one app on two ports) started by the same shell are not workers of one."""
    token, env = sibling_args
    siblings.append(Sibling(token, env))
    siblings.append(Sibling(token + "-other", env))
    assert all("WARNING" not in sibling.stop() for sibling in siblings)


# -- a real uvicorn --workers 2 --------------------------------------------------------------------


@pytest.fixture
def memory_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``uvicorn tests.apps.workers_app:app --workers 2`` with the default memory store; its URL, log."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSION_")}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.update(
        SESSION_STORE_URL="memory://",
        SESSION_SECRET_KEY=SECRET,
        SESSION_COOKIE_SECURE="false",
        TMPDIR=str(tmp_path),
    )
    log = tmp_path / "uvicorn.log"
    with uvicorn_workers(env, log, start_timeout=HANG_GUARD) as base_url:
        yield base_url, log


def test_uvicorn_with_two_workers_and_the_memory_store_warns_once(memory_workers: tuple[str, Path]) -> None:
    base_url, log = memory_workers
    # New sessions over fresh connections until both workers stored one (either may get a request).
    pids: set[int] = set()
    deadline = time.monotonic() + HANG_GUARD
    while len(pids) < 2:
        assert time.monotonic() < deadline, f"only {pids} answered"
        response = httpx.post(base_url + "/set/x", timeout=30)
        assert response.status_code == 200, response.text
        pids.add(response.json()["pid"])
    # The warning is logged as the later worker stores its first session: wait for it to be written.
    while WARNING not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no warning:\n{log.read_text(errors='replace')}"
        time.sleep(0.05)
    for _ in range(10):  # more sessions in both workers: no more warnings
        assert httpx.post(base_url + "/set/y", timeout=30).status_code == 200
    text = log.read_text(errors="replace")
    warnings = [line for line in text.splitlines() if WARNING in line]
    assert len(warnings) == 1, text
    assert "SESSION_STORE_URL=redis://" in warnings[0]


# -- the check itself, in this process ------------------------------------------------------------
# flock locks belong to an open file, not to a process: a second open() of the same file here stands
# for another process holding it.


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[int]]:
    """The check as if this process had not run it, in a private temporary directory; yields a list
    for the descriptors a test opens (closed afterwards, which is how a process that ends lets go)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setattr(workers, "checked", False)
    monkeypatch.setattr(workers, "_held", [])
    opened: list[int] = []
    yield opened
    for descriptor in opened + workers._held:
        os.close(descriptor)


def _hold(opened: list[int], name: str, how: int) -> None:
    """Another process holding ``name`` in the lock directory."""
    descriptor = os.open(workers._directory() / name, os.O_RDWR | os.O_CREAT, 0o600)
    opened.append(descriptor)
    fcntl.flock(descriptor, how)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_check_warns_when_another_live_member_holds_the_group(
    fresh_check: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    _hold(fresh_check, f"{workers._group()}.members", fcntl.LOCK_SH)
    workers.check()
    assert workers.checked
    (warning,) = _warnings(caplog)
    assert WARNING in warning
    assert f"started by pid {os.getppid()}" in warning


def test_the_check_stays_quiet_when_a_live_member_has_warned_already(
    fresh_check: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    _hold(fresh_check, f"{workers._group()}.members", fcntl.LOCK_SH)
    _hold(fresh_check, f"{workers._group()}.warned", fcntl.LOCK_EX)
    workers.check()
    assert not _warnings(caplog)


def test_the_check_removes_files_no_live_process_holds_and_keeps_the_others(
    fresh_check: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    directory = workers._directory()
    (directory / "ended.members").touch()  # a server that ended
    _hold(fresh_check, "running.members", fcntl.LOCK_SH)  # another server, running
    workers.check()
    assert not (directory / "ended.members").exists()
    assert (directory / "running.members").exists()
    assert not _warnings(caplog), "another server's workers are not this app's"


def test_the_check_gives_up_quietly_on_a_lock_directory_others_can_write(
    fresh_check: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    directory = workers._directory()
    directory.chmod(0o777)
    caplog.set_level(logging.DEBUG, logger="fastapi_sessions")
    workers.check()
    assert not _warnings(caplog)
    assert any("Could not check for other worker processes" in r.getMessage() for r in caplog.records)
    assert not list(directory.iterdir()), "nothing written there"


def test_the_check_skips_pytest_xdist_workers(
    fresh_check: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    workers.check()
    assert workers.checked
    assert not list(tmp_path.iterdir()), "no lock taken"


def test_a_forked_child_checks_again_as_a_process_of_its_own(fresh_check: list[int]) -> None:
    workers.check()
    assert workers.checked
    assert workers._held
    workers._forget()  # what os.fork() runs in the child
    assert not workers.checked
    assert not workers._held


def test_the_check_never_follows_a_link_in_the_lock_directory(
    fresh_check: list[int], tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = workers._directory() / "planted.members"
    link.symlink_to(target)
    workers.check()
    assert target.read_text() == "keep"
    assert link.is_symlink(), "left alone"
