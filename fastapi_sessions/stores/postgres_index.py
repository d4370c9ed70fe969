"""The user index of the PostgreSQL store (the optional ``UserIndexStore`` capability).

Entries are rows of a second table, ``<table>_users`` (user, session key, until), created with the
sessions table. Each call is one statement; writing or listing a user's index first drops their
entries past the index's ``now``, and ``purge_expired`` drops those of users who never came back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import CorruptRecordError
from .index import IndexedSession
from .postgres_rows import decode_row

if TYPE_CHECKING:
    from ..clock import Clock
    from .postgres_sql import Statements

__all__ = ["PostgresUserIndex"]


class PostgresUserIndex:
    """``index_add``, ``index_remove`` and ``index_sessions`` for ``PostgresStore``.

    A user is kept as the store's prefix and their identifier, so apps that share the table keep
    their users apart as they keep their sessions apart.
    """

    prefix: str
    _clock: Clock
    _sql: Statements

    if TYPE_CHECKING:  # PostgresStore's

        async def _call(self, what: str, method: str, sql: str, *args: Any) -> Any: ...

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        sql = self._sql.index_add
        await self._call("index update", "execute", sql, self.prefix + user, self.prefix + key, until, now)

    async def index_remove(self, user: str, key: str) -> None:
        sql = self._sql.index_remove
        await self._call("index update", "execute", sql, self.prefix + user, self.prefix + key)

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:

        store_now = self._clock.time()
        rows = await self._call(
            "index read", "fetch", self._sql.index_list, self.prefix + user, now, store_now
        )
        listed = []
        for row in rows:
            try:
                record = decode_row(row[1:6])
            except CorruptRecordError:  # its next load discards it; not a session to list
                continue
            ttl_ends = now + (row[6] - store_now)  # on the index's clock, as the protocol asks
            listed.append(IndexedSession(row[0].removeprefix(self.prefix), record, ttl_ends))
        return listed
