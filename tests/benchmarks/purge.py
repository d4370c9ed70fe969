"""What removing expired sessions costs on PostgreSQL, at 100,000 sessions of which half expired.

    python tests/benchmarks/purge.py [--sessions 100000] [--dsn postgresql:///test?host=/var/run/postgresql]

Fills a table in a throwaway schema (dropped at the end) with sessions of the benchmark apps' login
(five small fields, plus a cart of three items), half of them past their deadline; then times reads
of a live session before the purge, ``purge_expired``, reads after it, and a purge that finds nothing.
Prints the figures as JSON. The DSN comes from ``--dsn``, else ``BENCH_POSTGRES_URL``, else the local
socket; nothing here is a test, and no figure is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg

from fastapi_sessions.stores.postgres import PURGE_BATCH, PostgresStore

DEFAULT_DSN = "postgresql:///test?host=/var/run/postgresql"
FIELDS = {
    "user_id": "42",
    "name": '"alice"',
    "role": '"admin"',
    "theme": '"dark"',
    "counter": "17",
    "cart": '[{"sku":"A-100","qty":1},{"sku":"B-220","qty":2},{"sku":"C-310","qty":1}]',
}
READS = 500


async def timed_reads(store: PostgresStore, keys: list[str]) -> dict[str, float]:
    """Median and 99th percentile, in ms, of loads (with a touch, as with an idle timeout)."""
    spans = []
    for key in keys:
        started = time.perf_counter()
        if await store.load(key, touch=1800) is None:
            raise RuntimeError(f"live session {key} did not load")
        spans.append((time.perf_counter() - started) * 1000)
    spans.sort()
    return {"median_ms": statistics.median(spans), "p99_ms": spans[int(len(spans) * 0.99) - 1]}


async def main(dsn: str, sessions: int) -> dict[str, Any]:
    schema = "bench_purge_" + secrets.token_hex(4)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        store = PostgresStore(pool, table=f"{schema}.sessions", timeout=600)
        await store.create_table()
        now, stored = time.time(), json.dumps(FIELDS)
        rows = [
            (
                f"session:{secrets.token_hex(16)}",
                stored,
                now - 3600,
                now + 14 * 86400,
                False,
                3,
                now - 60 - i if i % 2 else now + 1800,
            )
            for i in range(sessions)
        ]
        started = time.perf_counter()
        await admin.copy_records_to_table(
            "sessions",
            schema_name=schema,
            records=[(k, f, c, e, p, v, d) for k, f, c, e, p, v, d in rows],
            columns=["key", "fields", "created_at", "expires_at", "persistent", "version", "deadline"],
        )
        await admin.execute(f"ANALYZE {schema}.sessions")
        filled = time.perf_counter() - started
        live = [row[0].removeprefix("session:") for row in rows[0 : READS * 2 : 2]]
        before = await store.stats()
        for key in live[:50]:  # warm the statement cache and the pool
            await store.load(key, touch=1800)
        reads_before = await timed_reads(store, live)
        started = time.perf_counter()
        removed = await store.purge_expired()
        purge_s = time.perf_counter() - started
        reads_after = await timed_reads(store, live)
        started = time.perf_counter()
        again = await store.purge_expired()
        empty_purge_ms = (time.perf_counter() - started) * 1000
        after = await store.stats()
        plan = await admin.fetch("EXPLAIN " + store._sql.purge, time.time(), PURGE_BATCH)
        return {
            "sessions": sessions,
            "expired": before["expired"],
            "fill_s": round(filled, 2),
            "table_bytes_before": before["bytes"],
            "table_bytes_after": after["bytes"],
            "read_before_purge": reads_before,
            "purge_seconds": round(purge_s, 3),
            "purge_removed": removed,
            "purge_rows_per_second": round(removed / purge_s),
            "batch": PURGE_BATCH,
            "read_after_purge": reads_after,
            "purge_with_nothing_expired_ms": round(empty_purge_ms, 3),
            "purge_removed_again": again,
            "purge_plan": [row[0] for row in plan],
            "server": admin.get_server_version()._asdict(),
        }
    finally:
        await pool.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_DSN))
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.dsn, args.sessions)), indent=2))
