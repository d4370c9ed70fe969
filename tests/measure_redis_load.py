"""Redis under load: a measurement script, NOT part of the test suite (it needs real time).

    python -m tests.measure_redis_load burst [--requests 300] [--writes]
    python -m tests.measure_redis_load slow [--delay 0.25] [--clients 50] [--rounds 4]

Both start a private throwaway Redis (never the shared one) and drive the conftest app in process,
on one event loop (one worker), through ``httpx.ASGITransport``, with the store built from
``SESSION_STORE_URL`` as a user's app is: default settings unless an option says otherwise.

* ``burst``: ``--requests`` concurrent requests that each read (or with ``--writes`` change) a
  session, all at once on a cold pool; prints how many got 503.
* ``slow``: every reply from Redis is held ``--delay`` seconds by the TCP proxy; ``--clients``
  concurrent clients each make ``--rounds`` requests, starting on a cold pool; prints the success
  rate. The proxy holds the replies of a connection one after the other, as a slow server sends
  them.

Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any

import httpx

from fastapi_sessions import SessionManager

from .conftest import UserSession, make_app, make_settings
from .redis_support import start_server
from .tcp_proxy import TcpProxy

BASE_URL = "https://testserver"


def _client(url: str, **settings: Any) -> tuple[SessionManager[UserSession], httpx.AsyncClient]:
    sessions = SessionManager(UserSession, settings=make_settings(store_url=url, **settings))
    transport = httpx.ASGITransport(make_app(sessions))
    return sessions, httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60)


async def _seed(url: str, count: int) -> list[str]:
    """``count`` session cookies, made through an app of their own (so the measured pool is cold)."""
    sessions, client = _client(url)
    cookies = []
    async with client:
        for index in range(count):
            client.cookies.clear()
            response = await client.post(f"/cart/item{index}")
            assert response.status_code == 200, response.text
            cookies.append(client.cookies["session"])
    await sessions.close_owned_store()
    return cookies


async def burst(requests: int, writes: bool) -> dict[str, Any]:
    server = start_server()
    try:
        cookies = await _seed(server.url, requests)
        sessions, client = _client(server.url)
        statuses: Counter[int] = Counter()

        async def one(cookie: str) -> None:
            headers = {"cookie": f"session={cookie}"}
            if writes:
                response = await client.post("/cart/more", headers=headers)
            else:
                response = await client.get("/me", headers=headers)
            statuses[response.status_code] += 1

        start = time.monotonic()
        async with client:
            await asyncio.gather(*(one(cookie) for cookie in cookies))
        elapsed = time.monotonic() - start
        await sessions.close_owned_store()
        return {
            "scenario": "burst",
            "requests": requests,
            "writes": writes,
            "statuses": dict(statuses),
            "503": statuses[503],
            "seconds": round(elapsed, 3),
        }
    finally:
        server.stop()


async def slow(delay: float, clients: int, rounds: int) -> dict[str, Any]:
    server = start_server()
    try:
        cookies = await _seed(server.url, clients)
        async with TcpProxy(server.port) as proxy:
            proxy.slow(delay)
            sessions, client = _client(proxy.url)
            statuses: Counter[int] = Counter()
            times: list[float] = []

            async def one(cookie: str) -> None:
                headers = {"cookie": f"session={cookie}"}
                for _ in range(rounds):
                    started = time.monotonic()
                    response = await client.get("/me", headers=headers)
                    times.append(time.monotonic() - started)
                    statuses[response.status_code] += 1

            async with client:
                await asyncio.gather(*(one(cookie) for cookie in cookies))
            await sessions.close_owned_store()
        total = sum(statuses.values())
        times.sort()
        return {
            "scenario": "slow",
            "delay": delay,
            "clients": clients,
            "rounds": rounds,
            "statuses": dict(statuses),
            "success_rate": round(statuses[200] / total, 4),
            "p50_s": round(times[len(times) // 2], 3),
            "max_s": round(times[-1], 3),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    one = scenarios.add_parser("burst")
    one.add_argument("--requests", type=int, default=300)
    one.add_argument("--writes", action="store_true")
    two = scenarios.add_parser("slow")
    two.add_argument("--delay", type=float, default=0.25)
    two.add_argument("--clients", type=int, default=50)
    two.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("fastapi_sessions").setLevel(logging.CRITICAL)  # one line per 503 otherwise
    if args.scenario == "burst":
        result = asyncio.run(burst(args.requests, args.writes))
    else:
        result = asyncio.run(slow(args.delay, args.clients, args.rounds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
