"""Two uvicorn worker processes share sessions through Redis.

The app (``tests/apps/workers_app.py``) is configured only by ``SESSION_*`` environment variables.
Every request goes over a new connection, so the kernel hands it to either worker; the test goes on
until both PIDs answered, and every answer must show the value set earlier, whichever worker set it.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("redis")
pytest.importorskip("uvicorn")

from .conftest import SECRET
from .redis_support import keys_under
from .workers_support import uvicorn_workers

pytestmark = pytest.mark.redis

START_TIMEOUT = 60.0  # a hang guard: only a worker that never starts reaches it
ROUNDS_TIMEOUT = 60.0  # a hang guard: both workers answer long before on any machine


class Workers:
    def __init__(self, base_url: str, log: Path) -> None:
        self.base_url, self.log = base_url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def workers(redis_server_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Workers]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSION_")}
    env.update(
        SESSION_STORE_URL=redis_server_url,
        SESSION_STORE_PREFIX=redis_prefix,
        SESSION_SECRET_KEY=SECRET,
        SESSION_COOKIE_SECURE="false",
    )
    log = tmp_path / "uvicorn.log"
    with uvicorn_workers(env, log, start_timeout=START_TIMEOUT) as base_url:
        yield Workers(base_url, log)


def request(method: str, url: str, cookie: str | None = None) -> httpx.Response:
    """One request over a fresh connection (so either worker may get it), the cookie sent by hand."""
    headers = {"cookie": f"session={cookie}"} if cookie else {}
    response = httpx.request(method, url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def read_until_both_workers_answered(workers: Workers, cookie: str, expected: str) -> set[int]:
    """GET /get until two different PIDs answered; every answer must carry ``expected``."""
    pids: set[int] = set()
    deadline = time.monotonic() + ROUNDS_TIMEOUT
    reads = 0
    while len(pids) < 2 and time.monotonic() < deadline:
        body = request("GET", workers.base_url + "/get", cookie).json()
        assert body["value"] == expected, f"worker {body['pid']} saw {body['value']!r}"
        pids.add(body["pid"])
        reads += 1
    assert len(pids) == 2, f"only {pids} answered in {reads} requests"
    return pids


def test_two_workers_share_sessions_through_redis(
    workers: Workers, redis_server_url: str, redis_prefix: str
) -> None:
    created = request("POST", workers.base_url + "/set/first")
    cookie = created.cookies["session"]
    assert "secure" not in created.headers["set-cookie"].lower()
    assert keys_under(redis_server_url, redis_prefix), "the session lives in the test's Redis prefix"

    all_pids = read_until_both_workers_answered(workers, cookie, "first")

    # Set in one request (whichever worker gets it), then read in many: every worker sees it.
    setters: set[int] = set()
    for round_ in range(6):
        value = f"v{round_}"
        body = request("POST", workers.base_url + f"/set/{value}", cookie).json()
        assert body["value"] == value
        setters.add(body["pid"])
        all_pids |= read_until_both_workers_answered(workers, cookie, value)
        for _ in range(5):
            assert request("GET", workers.base_url + "/get", cookie).json()["value"] == value
    assert len(all_pids) == 2, f"expected exactly the two worker PIDs, got {all_pids}"
    assert os.getpid() not in all_pids
    assert setters <= all_pids

    # A request without the cookie is a new, empty session in every worker.
    assert request("GET", workers.base_url + "/get").json()["value"] is None
