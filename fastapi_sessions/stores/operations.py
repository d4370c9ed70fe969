"""Optional capabilities of a store for operators: purging expired sessions, statistics, its table.

None of them is on a request's path, and a store without them serves every feature of the library;
the command-line tool (``fastapi-sessions purge``, ``stats``, ``create-table``) checks for each with
``isinstance`` and says so when a store lacks it. Implement the methods to give a custom store one.

* ``PurgingStore.purge_expired`` removes the expired sessions a store keeps until something removes
  them (rows of an SQL table, a full in-memory store), and returns how many went. A store whose
  server expires records by itself (Redis) returns 0.
* ``StatsStore.stats`` returns cheap figures about the store, at least ``"sessions"``: how many it
  holds. Values are numbers or short strings, printable as they are and as JSON.
* ``TableStore.create_table`` creates what the store keeps sessions in (a table and its indexes) if it
  is not there yet, so that a deploy script can run it every time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["PurgingStore", "StatsStore", "TableStore", "innermost"]


def innermost(store: object) -> object:
    """The store at the bottom of any wrappers (``EncryptedStore``, the metrics' ``MeteredStore``):
    the one whose operator capabilities to use. Purging, statistics and the table concern the storage,
    not what a wrapper does to each value.

    A wrapper forwards such methods through ``__getattr__``, which ``isinstance`` on a protocol does
    not consult on Python 3.12 and later (it looks attributes up statically).
    """
    for _ in range(16):  # wrappers do not nest deeper; a cycle must not hang the tool
        inner = getattr(store, "inner", None)
        if inner is None:
            break
        store = inner
    return store


@runtime_checkable
class PurgingStore(Protocol):
    """A store that can remove its expired sessions on demand (a cron job, ``fastapi-sessions purge``)."""

    async def purge_expired(self) -> int:
        """Remove every expired session now; how many were removed (0 if the store expires by itself)."""
        ...


@runtime_checkable
class StatsStore(Protocol):
    """A store that can describe itself in a few figures (``fastapi-sessions stats``)."""

    async def stats(self) -> dict[str, int | float | str]:
        """Figures about the store, at least ``"sessions"``; cheap enough to run on a live server."""
        ...


@runtime_checkable
class TableStore(Protocol):
    """A store that keeps sessions in a table it can create (``fastapi-sessions create-table``)."""

    async def create_table(self) -> None:
        """Create the table (and its indexes) if missing; safe to call when they exist."""
        ...
