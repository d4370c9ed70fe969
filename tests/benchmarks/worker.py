"""One system, in its own process: ``python tests/benchmarks/worker.py TASK --system NAME --out FILE``.

Tasks: ``inprocess`` (figure a), ``redis-commands`` (c), ``postgres-statements`` (c, PostgreSQL),
``memory`` and ``reclaim`` (d, in-process stores), ``redis-memory`` (d, Redis), ``requests`` (e: a
fixed number of requests to one route, run under callgrind by the driver). Each writes one JSON
document to ``--out``. Every loop is bounded by a count; the driver gives each process a timeout as
well.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import logging
import os
import re
import socket
import statistics
import sys
import threading
import time
import tracemalloc
import uuid
from typing import Any

from apps import ROUTES, build
from asgi_driver import Browser, Client

Result = dict[str, Any]


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _checked(browser: Browser, path: str) -> None:
    response = await browser.visit(path)
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}: {response.body[:200]!r}")


async def _sanity(browser: Browser, session: bool) -> None:
    """Each route works, and /read really reads what /login stored."""
    response = await browser.login()
    if response.status != 200 or (session and not response.set_cookies()):
        raise RuntimeError(f"/login failed: {response.status} {response.headers}")
    for path in ROUTES:
        await _checked(browser, path)
    body = (await browser.visit("/read")).body
    if b"42" not in body:
        raise RuntimeError(f"/read did not read the session: {body!r}")


# -- (a) in-process ------------------------------------------------------------------------------


async def inprocess(system: str, redis_url: str | None, runs: int, requests: int, warmup: int) -> Result:
    """µs per request of ``system`` and of plain FastAPI, measured interleaved in this process."""
    apps = {"plain": build("plain"), system: build(system, redis_url)} if system != "plain" else {}
    if system == "plain":  # plain against a second, identical plain app: the method's own noise
        apps = {"plain": build("plain"), "plain-again": build("plain")}
    browsers = {}
    for name, built in apps.items():
        client = Client(built.app)
        await client.start()
        browsers[name] = Browser(client)
        await _sanity(browsers[name], session=not name.startswith("plain"))
    # The plain floor gets the very Cookie header the system under test is sent: FastAPI itself pays
    # ~2 µs for the header, and that is no cost of a session library.
    reference = browsers.get(system if system != "plain" else "plain")
    for name in ("plain", "plain-again"):
        if name in browsers and reference is not None and browsers[name] is not reference:
            browsers[name].jar = copy.deepcopy(reference.jar)
    if system.startswith("plain"):
        for browser in browsers.values():
            browser.jar.set_raw("session", "x" * 96)
    routes = list(ROUTES)
    for browser in browsers.values():
        for path in routes:
            for _ in range(warmup):
                await _checked(browser, path)
    timings: dict[str, dict[str, list[float]]] = {name: {p: [] for p in routes} for name in browsers}
    order = list(browsers)
    for run in range(runs):
        for path in routes:
            for name in order if run % 2 == 0 else reversed(order):
                browser = browsers[name]
                visit = browser.visit
                gc.collect()
                started = time.perf_counter_ns()
                for _ in range(requests):
                    await visit(path)
                elapsed = time.perf_counter_ns() - started
                timings[name][path].append(elapsed / requests / 1000)
        # a status check outside the timed loop, so no error slips through unseen
        for browser in browsers.values():
            for path in routes:
                await _checked(browser, path)
    for browser in browsers.values():
        await browser.client.stop()
    return {
        "system": system,
        "runs": runs,
        "requests": requests,
        "timings_us": timings,
        "median_us": {n: {p: statistics.median(v) for p, v in t.items()} for n, t in timings.items()},
    }


# -- (e) instructions per request ---------------------------------------------------------------


async def fixed_requests(system: str, path: str, requests: int, warmup: int) -> Result:
    """``warmup`` then ``requests`` visits of ``path``; the driver counts this process' instructions
    under callgrind at two values of ``requests`` and divides the difference (start-up cancels out)."""
    client = Client(build(system).app)
    await client.start()
    browser = Browser(client)
    if system.startswith("plain"):
        browser.jar.set_raw("session", "x" * 96)  # the same Cookie header as the others are sent
    else:
        await _sanity(browser, session=True)
    for _ in range(warmup):
        await _checked(browser, path)
    # Both counts start from a fresh collector: a collection still due after start-up (a full one
    # costs millions of instructions) would otherwise fall into one count and not the other. The
    # collections the requests themselves cause are counted.
    gc.collect()
    for _ in range(requests):
        await browser.visit(path)
    await _checked(browser, path)
    await client.stop()
    return {"system": system, "path": path, "requests": requests}


# -- (c) Redis commands per request --------------------------------------------------------------


class Monitor:
    """A MONITOR connection read in a thread; commands between two ECHO markers are ours."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"MONITOR\r\n")
        self.buffer = b""
        self.lines: list[bytes] = []
        first = self._line()
        if first != b"+OK":
            raise RuntimeError(f"MONITOR refused: {first!r}")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("MONITOR connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _read(self) -> None:
        while not self.done.is_set():
            line = self._line()
            self.lines.append(line)
            if b"bench-monitor-stop" in line:
                self.done.set()

    def echo(self, text: str) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            payload = f"*2\r\n$4\r\nECHO\r\n${len(text)}\r\n{text}\r\n".encode()
            sock.sendall(payload)
            sock.recv(1024)

    def close(self) -> None:
        self.sock.close()


_MONITOR_LINE = re.compile(rb'^\+[\d.]+ \[\d+ (?P<source>[^\]]+)\] "(?P<command>[^"]+)"')


async def redis_commands(system: str, redis_url: str, requests: int) -> Result:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    client = Client(build(system, redis_url).app)
    await client.start()
    browser = Browser(client)
    await _sanity(browser, session=True)
    found: dict[str, Any] = {}
    for path in ROUTES:
        await browser.login()
        for _ in range(5):  # connections, script loading and the client's hello are done by now
            await _checked(browser, path)
        monitor = Monitor(port)
        marker = uuid.uuid4().hex
        monitor.echo(f"bench-monitor-start-{marker}")
        for _ in range(requests):
            await _checked(browser, path)
        monitor.echo(f"bench-monitor-stop-{marker}")
        monitor.done.wait(10)
        monitor.close()
        counting, client_calls, script_calls = False, {}, {}
        for line in monitor.lines:
            if b"bench-monitor-start" in line:
                counting = True
                continue
            if b"bench-monitor-stop" in line:
                break
            match = _MONITOR_LINE.match(line)
            if not counting or match is None:
                continue
            command = match["command"].decode().upper()
            target = script_calls if match["source"] == b"lua" else client_calls
            target[command] = target.get(command, 0) + 1
        found[path] = {
            "requests": requests,
            "per_request": sum(client_calls.values()) / requests,
            "client_commands": {k: v / requests for k, v in sorted(client_calls.items())},
            "inside_scripts": {k: v / requests for k, v in sorted(script_calls.items())},
        }
    await client.stop()
    return {"system": system, "routes": found}


# -- (c) PostgreSQL statements per request -------------------------------------------------------


class CountingPool:
    """The store's asyncpg pool, counting the statements the store runs on it (one call each)."""

    STATEMENTS = frozenset({"fetch", "fetchrow", "fetchval", "execute"})

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        if name in self.STATEMENTS:
            self.count += 1
        return getattr(self.pool, name)


async def postgres_statements(system: str, requests: int) -> Result:
    """Statements per request of each route: each is one round trip once asyncpg has prepared it
    (the first use of each statement on a connection costs one more, then it is cached)."""
    built = build(system)
    client = Client(built.app)
    await client.start()
    browser = Browser(client)
    await _sanity(browser, session=True)
    counting = CountingPool(built.store.pool)
    built.store.pool = counting
    found: dict[str, Any] = {}
    for path in ROUTES:
        await browser.login()
        for _ in range(5):
            await _checked(browser, path)
        counting.count = 0
        for _ in range(requests):
            await _checked(browser, path)
        found[path] = {"requests": requests, "per_request": counting.count / requests}
    built.store.pool = counting.pool
    await client.stop()
    return {"system": system, "routes": found}


# -- (d) memory per stored session ---------------------------------------------------------------


async def memory(system: str, sessions: int) -> Result:
    built = build(system)
    assert built.store_len is not None
    client = Client(built.app)
    await client.start()
    browser = Browser(client)
    await _sanity(browser, session=True)
    for _ in range(200):  # lazily built caches, interned strings, pools: not per-session memory
        await _checked(browser, "/login")
    gc.collect()
    rss_before = _rss()
    tracemalloc.start()
    gc.collect()
    traced_before = tracemalloc.get_traced_memory()[0]
    len_before = built.store_len()
    started = time.perf_counter()
    get = client.get
    for _ in range(sessions):
        await get("/login")
    elapsed = time.perf_counter() - started
    gc.collect()
    traced_after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = _rss()
    stored = built.store_len() - len_before
    await client.stop()
    return {
        "system": system,
        "logins": sessions,
        "stored_sessions": stored,
        "tracemalloc_bytes_per_session": (traced_after - traced_before) / stored,
        "rss_bytes_per_session": (rss_after - rss_before) / stored,
        "seconds": elapsed,
    }


async def reclaim(system: str, sessions: int) -> Result:
    """Expired sessions leave ``MemoryStore``: fill it, let them expire (FakeClock), keep writing."""
    from fastapi_sessions.testing import FakeClock

    # The expired cookie below is logged as a security warning: expected here, and not worth printing.
    logging.getLogger("fastapi_sessions").setLevel(logging.ERROR)
    clock = FakeClock()
    built = build(system, clock=clock)
    assert built.store_len is not None
    client = Client(built.app)
    await client.start()
    browser = Browser(client)
    await _sanity(browser, session=True)
    tracemalloc.start()
    for _ in range(sessions):
        await client.get("/login")
    gc.collect()
    steps = [
        {
            "after": "filled",
            "logins": sessions,
            "len": built.store_len(),
            "traced_mb": tracemalloc.get_traced_memory()[0] / 1e6,
        }
    ]
    expired_cookie = browser.jar.header
    clock.advance(15 * 24 * 3600)  # past SESSION_MAX_AGE (14 days): every session above is dead
    steps.append(
        {
            "after": "clock +15 days",
            "logins": 0,
            "len": built.store_len(),
            "traced_mb": tracemalloc.get_traced_memory()[0] / 1e6,
        }
    )
    response = await client.get("/read", expired_cookie)
    done = 0
    for target in sorted({sessions // 200, sessions // 20, sessions // 10, sessions // 7, sessions // 4}):
        while done < target:
            await client.get("/login")
            done += 1
        gc.collect()
        steps.append(
            {
                "after": "new logins",
                "logins": done,
                "len": built.store_len(),
                "traced_mb": tracemalloc.get_traced_memory()[0] / 1e6,
            }
        )
    tracemalloc.stop()
    await client.stop()
    return {
        "system": system,
        "sessions": sessions,
        "expired_cookie_read_status": response.status,
        "expired_cookie_got_new_session": bool(response.set_cookies()) or b'"user":0' in response.body,
        "steps": steps,
    }


async def redis_memory(system: str, redis_url: str, sessions: int, concurrency: int) -> Result:
    from redis.asyncio import Redis

    admin = Redis.from_url(redis_url)
    client = Client(build(system, redis_url).app)
    await client.start()
    browser = Browser(client)
    await _sanity(browser, session=True)

    async def logins(count: int) -> None:
        async def one_lane(n: int) -> None:
            for _ in range(n):
                response = await client.get("/login")
                if response.status != 200:
                    raise RuntimeError(f"/login answered {response.status}")

        lanes = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]
        await asyncio.gather(*(one_lane(n) for n in lanes))

    await logins(concurrency * 4)  # the connection pool grows to its working size first
    await admin.execute_command("FLUSHDB", "SYNC")  # a private throwaway server: nobody else's data
    started = time.perf_counter()
    await logins(sessions)
    elapsed = time.perf_counter() - started
    keys = await admin.dbsize()
    sample = None
    async for key in admin.scan_iter(count=10):
        sample = {
            "key_length": len(key),
            "memory_usage": await admin.memory_usage(key, samples=0),
            "type": (await admin.type(key)).decode(),
        }
        break
    # The sessions' share of used_memory: before and after dropping exactly them (FLUSHDB SYNC), with
    # the clients, their buffers and the script cache as they were, so only the keys differ.
    with_keys = (await admin.info("memory"))["used_memory"]
    await admin.execute_command("FLUSHDB", "SYNC")
    without = (await admin.info("memory"))["used_memory"]
    await client.stop()
    await admin.aclose()
    return {
        "system": system,
        "sessions": keys,
        "used_memory_bytes_per_session": (with_keys - without) / keys,
        "sample_key": sample,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "task",
        choices=[
            "inprocess",
            "redis-commands",
            "postgres-statements",
            "memory",
            "reclaim",
            "redis-memory",
            "requests",
        ],
    )
    parser.add_argument("--path", default="/read")
    parser.add_argument("--system", required=True)
    parser.add_argument("--redis-url")
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if args.task == "inprocess":
        job = inprocess(args.system, args.redis_url, args.runs, args.requests, args.warmup)
    elif args.task == "redis-commands":
        job = redis_commands(args.system, args.redis_url, args.requests)
    elif args.task == "postgres-statements":
        job = postgres_statements(args.system, args.requests)
    elif args.task == "memory":
        job = memory(args.system, args.sessions)
    elif args.task == "reclaim":
        job = reclaim(args.system, args.sessions)
    elif args.task == "requests":
        job = fixed_requests(args.system, args.path, args.requests, args.warmup)
    else:
        job = redis_memory(args.system, args.redis_url, args.sessions, args.concurrency)
    result = asyncio.run(job)
    result["python"] = sys.version.split()[0]
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
