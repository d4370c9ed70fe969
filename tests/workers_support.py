"""``uvicorn tests.apps.workers_app:app --workers 2``, served for a test and stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .redis_support import free_port

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def uvicorn_workers(env: dict[str, str], log: Path, *, start_timeout: float) -> Iterator[str]:
    """Serve the workers app in two worker processes with ``env`` (``SESSION_*`` and the like) and
    its output in ``log``; the base URL once it answers. ``start_timeout`` is a hang guard only."""
    port = free_port()
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "uvicorn", "tests.apps.workers_app:app", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers can be stopped with it
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            output = log.read_text(errors="replace")
            assert process.poll() is None, f"uvicorn exited early:\n{output}"
            try:
                if httpx.get(base_url + "/get", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (
                f"uvicorn did not answer:\n{log.read_text(errors='replace')}"
            )
            time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
