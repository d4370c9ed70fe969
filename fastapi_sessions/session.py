"""Per-request session state: what was loaded, and what the request asked to happen at commit."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

from .codec import Snapshot
from .stores.base import SessionRecord

__all__ = ["SessionState"]

M = TypeVar("M", bound=BaseModel)


class SessionState(Generic[M]):
    """One request's session. ``record``/``key`` are set when it was loaded from the store."""

    __slots__ = (
        "baseline",
        "degraded",
        "destroyed",
        "expiry",
        "had_cookie",
        "key",
        "model",
        "record",
        "regenerate",
        "session_id",
        "stale_key",
    )

    def __init__(
        self,
        model: M,
        baseline: Snapshot,
        session_id: str | None = None,
        key: str | None = None,
        record: SessionRecord | None = None,
        had_cookie: bool = False,
        stale_key: bool = False,
        degraded: bool = False,
    ) -> None:
        self.model = model
        self.baseline = baseline
        """The snapshot the model had when loaded (or after destroy); dirty means different."""
        self.session_id = session_id
        self.key = key
        self.record = record
        self.had_cookie = had_cookie
        self.stale_key = stale_key
        """The cookie was signed with a fallback key: re-issue it under the current one."""
        self.degraded = degraded
        """The store failed and SESSION_ON_STORE_ERROR=degrade: a read-only stand-in."""
        self.regenerate = False
        self.destroyed = False
        self.expiry: tuple[float | None] | None = None
        """Set by set_expiry: ``(seconds,)`` for a persistent cookie, ``(None,)`` to reset."""
