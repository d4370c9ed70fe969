"""The optional capability of a store that keeps, per user, the keys of their logged-in sessions.

Logins (``SessionUsers.login``), the list of a user's sessions and revoking them need it; a store
without it serves every other feature, and those helpers raise ``SessionConfigError`` naming
``UserIndexStore``. ``MemoryStore``, ``RedisStore`` and ``PostgresStore`` have it; implement these
three methods to give a custom store it, and run ``fastapi_sessions.testing.UserIndexConformance``
against it.

Rules (each a check of ``fastapi_sessions.testing.UserIndexConformance``):

* An entry is a session key and ``until``, a wall-clock time after which the session is surely dead
  (the engine gives its creation time plus ``SESSION_MAX_AGE``, which no session outlives). Entries
  past their ``until`` are dropped whenever the user's index is written or listed: expired sessions
  leave without a scan of the store.
* ``index_sessions`` lists the entries whose record still exists, with the record and when its TTL
  ends; an entry whose record is gone is skipped, not dropped (a login writes the entry just before
  the record, and must not lose it to a listing in between). Entries are dropped by ``index_remove``
  and by their ``until`` only.
* A plain ``load``, ``update`` or ``delete`` never touches an index: the engine calls these methods
  itself, on login, logout, revoke and when a logged-in session's key changes.
* ``now`` is the engine's clock: compare ``until`` with it, never with another clock.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from .base import SessionRecord

__all__ = ["IndexedSession", "UserIndexStore"]


class IndexedSession(NamedTuple):
    """A session listed in a user's index, as the store holds it now."""

    key: str
    record: SessionRecord
    ttl_ends: float
    """Wall-clock time (the ``now`` given) at which the record's TTL ends unless it is used again."""


@runtime_checkable
class UserIndexStore(Protocol):
    """A store that can list a user's sessions: three methods beside the ``SessionStore`` six."""

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        """Add ``key`` to ``user``'s index until ``until``; drop their entries past ``now``."""
        ...

    async def index_remove(self, user: str, key: str) -> None:
        """Remove ``key`` from ``user``'s index, if it is there."""
        ...

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:
        """The sessions in ``user``'s index whose record exists; drop their entries past ``now``."""
        ...
