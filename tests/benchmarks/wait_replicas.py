"""What ``SESSION_STORE_WAIT_REPLICAS=1`` costs a write: ``python tests/benchmarks/wait_replicas.py``.

Starts a private master and one replica on loopback (never a shared server), then alternates rounds
of the same work with ``wait_replicas=0`` and ``=1``, so both see the same machine load:

* ``store``: ``RedisStore.update`` of one field, the write a changed session costs;
* ``app``: ``POST /cart/{item}`` through the tests' app in process (read + write), what a request costs.

Prints the median and the 99th percentile of each, per setting, and the difference of the medians.
Loopback hides the network: across hosts, a confirmed write also waits one master-to-replica round trip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio
import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from fastapi_sessions import SessionManager  # noqa: E402
from fastapi_sessions.stores import SessionChange, SessionMeta, SessionRecord  # noqa: E402
from fastapi_sessions.stores.redis import RedisStore  # noqa: E402
from tests.conftest import UserSession, make_app, make_settings  # noqa: E402
from tests.failover_support import REPLICATION, replica_in_sync, until  # noqa: E402
from tests.redis_support import start_server  # noqa: E402


async def store_round(store: RedisStore, writes: int) -> list[float]:
    times = []
    for index in range(writes):
        change = SessionChange({"n": str(index).encode()})
        start = time.perf_counter()
        await store.update("bench", change, ttl=600)
        times.append(time.perf_counter() - start)
    return times


async def app_round(client: httpx.AsyncClient, writes: int) -> list[float]:
    times = []
    for index in range(writes):
        start = time.perf_counter()
        response = await client.post(f"/cart/{index % 10}")
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"POST /cart answered {response.status_code}: {response.text}")
        if index % 50 == 49:
            await client.post("/logout")  # keep the cart (and so each write) the same size
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


async def main(rounds: int, writes: int) -> None:
    master = start_server(*REPLICATION)
    replica = start_server(*REPLICATION, "--replicaof", "127.0.0.1", str(master.port))
    try:
        await until("the replica to sync", lambda: replica_in_sync(replica.port, master.port))
        stores = {
            wait: RedisStore.from_url(master.url, prefix="bench:", wait_replicas=wait) for wait in (0, 1)
        }
        now = time.time()
        await stores[0].create("bench", SessionRecord({"n": b"0"}, SessionMeta(now, now + 600)), ttl=600)
        clients = {
            wait: httpx.AsyncClient(
                transport=httpx.ASGITransport(
                    make_app(SessionManager(UserSession, settings=make_settings(), store=store))
                ),
                base_url="https://testserver",
            )
            for wait, store in stores.items()
        }
        results: dict[tuple[str, int], list[float]] = {}
        for round_ in range(rounds + 1):  # round 0 warms up and is dropped
            for wait in (0, 1):
                store_times = await store_round(stores[wait], writes)
                app_times = await app_round(clients[wait], writes)
                if round_:
                    results.setdefault(("store", wait), []).extend(store_times)
                    results.setdefault(("app", wait), []).extend(app_times)
        print(f"{rounds} rounds x {writes} writes per setting, master + 1 replica on loopback")
        for what in ("store", "app"):
            (m0, p0), (m1, p1) = summary(results[(what, 0)]), summary(results[(what, 1)])
            print(
                f"{what:5}  wait_replicas=0: median {m0:7.1f} us  p99 {p0:8.1f} us | "
                f"wait_replicas=1: median {m1:7.1f} us  p99 {p1:8.1f} us | median +{m1 - m0:.1f} us"
            )
        for client in clients.values():
            await client.aclose()
        for store in stores.values():
            await store.aclose()
    finally:
        replica.stop()
        master.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()
    anyio.run(main, args.rounds, args.writes)
