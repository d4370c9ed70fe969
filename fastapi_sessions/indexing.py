"""How the engine keeps each user's index of sessions in step with their keys.

A session is in its user's index from its login (``SessionUsers.login`` writes the ``login`` entry of
the library's state) until it is destroyed or revoked, under whatever key it has: a login, a
regeneration and an automatic rotation move it to a new key, and the engine calls ``indexed`` around
that write and ``removed`` after it. Only those paths pay: a plain read or write of a session never
reads this (nor the library's state).

The order keeps every live logged-in session in its user's index, so "log out everywhere" always
finds it: the new key's entry is written before the session is, and the old key's entry is removed
after. A failure in between leaves an entry without a session, which lists as nothing and goes when
its ``until`` passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .clock import Clock
from .logs import log, ref
from .state import stored_entry
from .stores.base import SessionRecord, WriteResult
from .stores.index import UserIndexStore

__all__ = ["LOGIN", "UserIndexing", "login_user"]

LOGIN = "login"
"""The entry of the library's state that the login helper writes: who, when, from what."""

Write = Callable[[str], Awaitable[WriteResult]]


def login_user(state: Mapping[str, Any]) -> str | None:
    """The user a session's state says is logged in, or None."""
    login = state.get(LOGIN)
    user = login.get("user") if type(login) is dict else None
    return user if type(user) is str else None


class UserIndexing:
    """The engine's side of a ``UserIndexStore``: entries follow sessions' keys."""

    def __init__(self, index: UserIndexStore, clock: Clock, max_age: float) -> None:
        self.index = index
        self.clock = clock
        self.max_age = max_age

    @staticmethod
    def stored_user(record: SessionRecord | None) -> str | None:
        """The user logged in to a stored session (parsed only if it holds library state)."""
        return None if record is None else login_user({LOGIN: stored_entry(record.fields, LOGIN)})

    def indexed(self, user: str, created_at: float, write: Write) -> Write:
        """``write`` (a create or a rename to a new key), with ``user``'s index entry for that key
        written first, and removed again if the write did not happen."""

        async def write_indexed(key: str) -> WriteResult:
            # A session never outlives its creation plus SESSION_MAX_AGE: the entry's bound.
            await self.index.index_add(user, key, until=created_at + self.max_age, now=self.clock.time())
            result = await write(key)
            if result is not WriteResult.OK:
                await self.removed(user, key)
            return result

        return write_indexed

    async def removed(self, user: str, key: str) -> None:
        """Remove ``key`` from ``user``'s index. A failure is logged, not raised: the session's own
        change is done, and the entry left behind lists as nothing and expires on its own."""
        try:
            await self.index.index_remove(user, key)
        except Exception as exc:
            log.warning(
                "Could not remove session %s from its user's index (%s: %s); the entry lists as "
                "nothing and goes when the session's lifetime ends",
                ref(key),
                type(exc).__name__,
                exc,
            )
