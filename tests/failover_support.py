"""Helpers for tests on replicated Redis set-ups, started from a server binary: never the shared server.

Waiting is always polling a condition under a generous hang guard, never a fixed sleep: the tests
must pass on a slow, shared CI machine. The helpers are async (``redis.asyncio`` admin clients) so the
load a test runs on the same event loop keeps flowing while they wait.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Any server may become a master: none waits the default 5 s for more replicas before a full sync.
REPLICATION = ("--repl-diskless-sync-delay", "0")
HANG_GUARD = 90.0  # seconds: a condition not met by then is a failure, not a slow machine
POLL = 0.05


async def until(what: str, check: Callable[[], Awaitable[bool]], guard: float = HANG_GUARD) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails after ``guard`` seconds."""
    start = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except (OSError, RedisConnectionError, RedisTimeoutError) as exc:  # starting, loading or killed
            last = exc
        else:
            last = None
        if time.monotonic() - start > guard:
            raise AssertionError(f"still waiting after {guard} s for: {what} (last error: {last!r})")
        await anyio.sleep(POLL)


def admin(port: int) -> Redis:
    """A direct client for one server or sentinel (short timeouts, no retries)."""
    return Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, retry=None)


async def command(port: int, *args: Any) -> Any:
    """One command on a fresh connection to ``port``."""
    client = admin(port)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()


async def info(port: int, section: str) -> dict[str, Any]:
    client = admin(port)
    try:
        result: dict[str, Any] = await client.info(section)
        return result
    finally:
        await client.aclose()


async def replica_in_sync(replica: int, master: int) -> bool:
    """``replica`` replicates ``master``, its link is up, and it has all that the master had when
    asked first (the master's offset keeps moving under load: "equal now" may never happen)."""
    theirs = await info(master, "replication")
    mine = await info(replica, "replication")
    if mine.get("role") != "slave" or int(mine.get("master_port", 0)) != master:
        return False
    if mine.get("master_link_status") != "up":
        return False
    return bool(int(mine["slave_repl_offset"]) >= int(theirs["master_repl_offset"]))


__all__ = ["REPLICATION", "admin", "command", "info", "replica_in_sync", "until"]
