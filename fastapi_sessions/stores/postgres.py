"""The PostgreSQL store, on asyncpg: one row per session, each operation one statement.

Build it from a pool the app owns (``PostgresStore(pool, table=...)``) or from
``SESSION_STORE_URL=postgresql://...`` (``from_url``: the store opens its pool on first use and closes
it in ``aclose``). The table is created by ``create_table`` (once, at deploy time); its definition and
what each operation costs are on the PostgreSQL page of the docs; the statements are in
``postgres_sql``.

Time is the store's clock (``clock=``), passed to every statement: the app's processes and the
conformance suite's fake clock decide when a session dies, not the database server's clock.
Expired rows are invisible at once and removed by ``purge_expired``, in batches through the
deadline index: by a cron job or the CLI, or every ``purge_interval`` seconds by the store itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - exercised in the no-extra nox session
    raise ImportError(
        "The PostgreSQL session store needs asyncpg: pip install 'pselfastapise-async[postgres]'"
    ) from exc

from ..clock import Clock, SystemClock
from ..exceptions import SessionConfigError, SessionStoreError
from ..logs import log
from .base import SessionChange, SessionRecord, WriteResult
from .deadline import deadline as _deadline
from .metered import DropReport
from .postgres_index import PostgresUserIndex
from .postgres_rows import decode_row, encode_fields
from .postgres_sql import statements

__all__ = ["PostgresStore", "create_table"]

DEFAULT_TABLE = "fastapi_sessions"
DEFAULT_PREFIX = "session:"
DEFAULT_TIMEOUT = 1.0
DEFAULT_POOL_SIZE = 10
PURGE_BATCH = 1000
"""Rows one purge statement removes at most: each batch is a short transaction."""
TOUCH_SLACK = 0.01
"""A read with ``touch`` rewrites the row only when that moves its deadline by more than this share
of the touch (18 s of a 30-minute idle timeout): a session in steady use is rewritten about once per
that span, not on every read. The idle timeout is then up to 1% shorter than asked."""
_URL_OPTIONS = {"table", "max_connections", "purge_interval"}

# Errors of the connection or the server: the store's call failed. (A server error rolled the
# statement back; a connection error may have left it running, which only a rename must find out.)
_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _expected(expected: Mapping[str, bytes | None]) -> tuple[str, list[str]]:
    """The fields that must hold these values, as ``encode_fields`` stores them, and those that must
    be absent."""
    held = {name: value for name, value in expected.items() if value is not None}
    return encode_fields(held), [name for name, value in expected.items() if value is None]


def _redacted(url: str) -> str:
    """``url`` without its password and query, for messages."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{parts.netloc.rpartition('@')[2]}{parts.path}"


class PostgresStore(PostgresUserIndex):
    """Sessions as rows of one PostgreSQL table, with every rule of ``SessionStore``.

    ``pool`` is an ``asyncpg`` pool the app creates and closes (``aclose`` leaves it open);
    ``from_url`` builds a store that owns its pool. ``prefix`` goes before every key, so several apps
    can share a table; ``timeout`` bounds each call (a pool wait included). ``purge_interval``: remove
    expired rows every that many seconds, from a task the first read or create starts and ``aclose``
    stops; ``sleep`` is how that task waits (tests pass one driven by events). It also keeps the user
    index (``UserIndexStore``) in a second table, ``<table>_users``.
    """

    def __init__(
        self,
        pool: Any,
        *,
        table: str = DEFAULT_TABLE,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
        purge_interval: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not timeout > 0:
            raise SessionConfigError(f"The store timeout must be positive, not {timeout!r}.")
        if purge_interval is not None and not purge_interval > 0:
            raise SessionConfigError(
                f"purge_interval must be positive: seconds between background purges (or None: no "
                f"background purge), not {purge_interval!r}."
            )
        self.pool = pool
        self.table = table
        self.prefix = prefix
        self.timeout = timeout
        self.purge_interval = purge_interval
        self._sql = statements(table)
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep
        self._purger: asyncio.Task[None] | None = None
        self._dsn: str | None = None  # set by from_url: the store opens and closes its own pool
        self._pool_size = DEFAULT_POOL_SIZE
        self._opening: asyncio.Lock | None = None
        self._where = "PostgreSQL"
        self._timeout_name = "the store's timeout="
        self.on_dropped: DropReport | None = None
        """Told how many expired sessions each purge removed: how SESSION_METRICS counts them."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
        built_from_settings: bool = False,
    ) -> PostgresStore:
        """A store on a pool of its own for ``postgresql://user:password@host:port/db`` (or
        ``postgres://``), opened on first use. Options in the query: ``table``, ``max_connections``
        (pool size, 10), ``purge_interval`` (seconds); the others are asyncpg's (``sslmode``...).
        ``built_from_settings``: the manager built it from ``SESSION_STORE_*``, which errors then name.
        """
        parts = urlsplit(url)
        where = _redacted(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise SessionConfigError(f"Not a PostgreSQL URL: {where!r}. Use postgresql://user@host/db.")
        try:
            parts.port  # noqa: B018 - urllib checks the port only when asked for it
        except ValueError as exc:
            raise SessionConfigError(f"The port in {where!r} is not a number from 0 to 65535.") from exc
        ours: dict[str, str] = {}
        rest = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in _URL_OPTIONS:
                ours[name] = value
            else:
                rest.append((name, value))
        try:
            pool_size = int(ours.get("max_connections", DEFAULT_POOL_SIZE))
            interval = float(ours["purge_interval"]) if "purge_interval" in ours else None
        except ValueError as exc:
            raise SessionConfigError(
                f"max_connections must be a whole number and purge_interval a number of seconds in "
                f"{where!r} ({exc})."
            ) from exc
        if pool_size < 1:
            raise SessionConfigError(f"max_connections in {where!r} must be at least 1, not {pool_size}.")
        store = cls(
            None,
            table=ours.get("table", DEFAULT_TABLE),
            prefix=prefix,
            timeout=timeout,
            clock=clock,
            purge_interval=interval,
        )
        store._dsn = urlunsplit(parts._replace(query=urlencode(rest)))
        store._pool_size = pool_size
        store._where = f"PostgreSQL at {where}"
        if built_from_settings:
            store._timeout_name = "SESSION_STORE_TIMEOUT"
        return store

    async def _open(self) -> Any:
        """The pool: the one passed in, or the store's own, opened now if it is not yet."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.pool is None:
                if self._dsn is None:
                    raise SessionConfigError(
                        "PostgresStore needs an asyncpg pool (PostgresStore(pool, ...)) or a URL "
                        "(PostgresStore.from_url('postgresql://...')); it got neither."
                    )
                self.pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
        return self.pool

    async def _call(self, what: str, method: str, sql: str, *args: Any) -> Any:
        """Run ``sql`` with ``pool.<method>`` under the store's deadline; failures become
        ``SessionStoreError`` saying what to do."""
        try:
            async with _deadline(self.timeout):
                pool = self.pool or await self._open()
                return await getattr(pool, method)(sql, *args)
        except TimeoutError as exc:
            raise SessionStoreError(
                f"{self._where} did not answer a session {what} within {self.timeout:g} s "
                f"({self._timeout_name}): check that the server is up and reachable, and that the "
                "pool (max_connections) is large enough for the load."
            ) from exc
        except asyncpg.UndefinedTableError as exc:
            raise SessionStoreError(
                f"The session table {self.table!r} does not exist in {self._where}: create it once "
                "with `await store.create_table()` (the DDL is on the docs' PostgreSQL page)."
            ) from exc
        except _FAILURES as exc:
            raise SessionStoreError(
                f"{self._where} failed a session {what} ({type(exc).__name__}: {exc}); check that "
                "the server is up and reachable and the table is the store's."
            ) from exc

    def _start_purge(self) -> None:
        self._purger = asyncio.get_running_loop().create_task(self._purge_forever())

    async def _purge_forever(self) -> None:
        interval = self.purge_interval
        assert interval is not None  # noqa: S101 - started only with an interval
        while True:
            await self._sleep(interval)
            try:
                removed = await self.purge_expired()
            except SessionStoreError as exc:
                log.warning(
                    "Background purge of expired sessions failed; next try in %g s: %s", interval, exc
                )
            else:
                log.debug("Background purge removed %d expired sessions", removed)

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        if self._purger is None and self.purge_interval is not None:
            self._start_purge()
        now = self._clock.time()
        if touch is None:
            row = await self._call("read", "fetchrow", self._sql.load, self.prefix + key, now)
        else:
            sql, slack = self._sql.load_touch, touch * TOUCH_SLACK
            row = await self._call("read", "fetchrow", sql, self.prefix + key, now, touch, slack)
        return None if row is None else decode_row(row)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        if self._purger is None and self.purge_interval is not None:
            self._start_purge()
        created_at, expires_at, persistent, version = record.meta
        written = await self._call(
            "create",
            "fetchval",
            self._sql.create,
            *(self.prefix + key, self._clock.time(), encode_fields(record.fields)),
            *(created_at, expires_at, persistent, version, ttl),
        )
        return WriteResult.OK if written else WriteResult.EXISTS

    def _change(self, key: str, change: SessionChange, ttl: float) -> tuple[Any, ...]:
        """The parameters $1 to $7 of an update or a rename."""
        fields, removed, expires_at, persistent = change
        now = self._clock.time()
        return (self.prefix + key, now, encode_fields(fields), list(removed), expires_at, persistent, ttl)

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        args = self._change(key, change, ttl)
        if expected is None:
            written = await self._call("update", "fetchval", self._sql.update, *args)
            return WriteResult.OK if written else WriteResult.MISSING
        sql = self._sql.update_expecting
        if await self._call("update", "fetchval", sql, *args, *_expected(expected)):
            return WriteResult.OK
        # Refused: a second statement tells a conflict from a row that is gone (rare, and only
        # under SESSION_CONCURRENCY=version_check).
        live = await self._call("update", "fetchval", self._sql.state, args[0], args[1])
        return WriteResult.CONFLICT if live else WriteResult.MISSING

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        args = (*self._change(old_key, change, ttl), *_expected(expected or {}), self.prefix + new_key)
        try:
            found, meets, moved, _ = await self._call("regeneration", "fetchrow", self._sql.rename, *args)
        except SessionStoreError as exc:
            if isinstance(exc.__cause__, asyncpg.PostgresError):
                raise  # the server refused the statement: it rolled back, nothing moved
            return await self._settle(old_key, new_key, exc)
        if not found:
            return WriteResult.MISSING
        if not meets:
            return WriteResult.CONFLICT
        return WriteResult.OK if moved else WriteResult.EXISTS

    async def _settle(self, old_key: str, new_key: str, failure: SessionStoreError) -> WriteResult:
        """What became of a rename whose answer was lost (``failure``): ``OK`` if it moved the row,
        else ``failure`` raised, and the request keeps its old cookie. A rename still running holds
        the old row's lock: the first statement waits for it to end."""
        try:
            await self._call("regeneration check", "execute", self._sql.lock, self.prefix + old_key)
            now = self._clock.time()
            moved = await self._call(
                "regeneration check", "fetchval", self._sql.state, self.prefix + new_key, now
            )
        except SessionStoreError as exc:
            raise SessionStoreError(
                f"{failure} The check of whether the regeneration happened failed too "
                f"({exc}); if it did happen, the user has to log in again."
            ) from failure
        if moved:
            return WriteResult.OK
        raise failure

    async def delete(self, key: str) -> None:
        await self._call("delete", "execute", self._sql.delete, self.prefix + key)

    async def purge_expired(self) -> int:
        """Remove the expired rows, ``PURGE_BATCH`` at a time through the deadline index; how many.
        User index entries past their bound go too (those of users who never came back).

        Safe to run from several processes at once: each batch skips the rows another one holds.
        """
        now = self._clock.time()
        removed = await self._purge("purge", self._sql.purge, now)
        await self._purge("purge of the user index", self._sql.purge_index, now)
        if removed and self.on_dropped is not None:
            self.on_dropped("expired", removed)
        return removed

    async def _purge(self, what: str, sql: str, now: float) -> int:
        """Run the batch delete ``sql`` until a batch comes back short; the rows removed."""
        removed = 0
        while True:
            status = await self._call(what, "execute", sql, now, PURGE_BATCH)
            batch = int(status.rsplit(" ", 1)[-1])
            removed += batch
            if batch < PURGE_BATCH:
                return removed

    async def stats(self) -> dict[str, int | float | str]:
        """Live rows (``sessions``), expired rows awaiting a purge (``expired``), and the table's
        size on disk with its indexes and TOAST (``bytes``, approximate)."""
        row = await self._call("statistics read", "fetchrow", self._sql.stats, self._clock.time())
        sessions, expired, size = row
        return {"sessions": sessions, "expired": expired, "bytes": size, "table": self.table}

    async def create_table(self) -> None:
        """Create the table and its deadline index unless they exist (safe from several processes
        at once: an advisory lock makes them take turns)."""
        pool = self.pool or await self._open()
        try:
            async with pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                await connection.execute(self._sql.create_table)
        except _FAILURES as exc:
            raise SessionStoreError(
                f"{self._where} could not create the session table {self.table!r} "
                f"({type(exc).__name__}: {exc}): check that the user may create tables in that schema, "
                "or run the DDL from the docs' PostgreSQL page yourself."
            ) from exc

    async def aclose(self) -> None:
        """Stop the background purge, and close the pool if this store opened it (``from_url``);
        a pool passed in is the app's to close."""
        purger, self._purger = self._purger, None
        if purger is not None:
            purger.cancel()
            with suppress(asyncio.CancelledError):
                await purger
        if self._dsn is not None and self.pool is not None:
            pool, self.pool, self._opening = self.pool, None, None  # reopened on another loop if used
            await pool.close()


async def create_table(pool: Any, table: str = DEFAULT_TABLE) -> None:
    """Create the sessions table ``table`` and its deadline index in the database of ``pool``,
    unless they exist."""
    await PostgresStore(pool, table=table).create_table()
