"""Automatic ID rotation (``SESSION_ROTATE_INTERVAL``): a session in use gets a new ID every N seconds.

The engine rotates through the same path as ``regenerate``: a rename of the record to a fresh ID's key,
and a new cookie. Rotation adds one thing: a *forward* left at the old key's side, for
``SESSION_ROTATE_GRACE`` seconds, so that requests the browser sent with the previous cookie before it
got the new one still reach the session. A forward:

* lives under its own key, ``forward_key(key)``, which no cookie's store key can equal (store keys are
  base64 digests, which never hold a ``.``): no door can load it as a session, and the old key itself
  is gone, so a store-level read of it finds nothing;
* names the key it was renamed to and the session's creation time; it opens that record only if it is
  still there and was created then. It is followed one hop only: when the session was renamed again
  (rotated, regenerated) or deleted (logout, revoke), the previous ID opens nothing;
* dies after the grace window, by its TTL and by its own deadline, checked on the engine's clock;
* is written *before* the rename, so that a logout that deletes the old key and then reads the forward
  (``SessionEngine.delete_session``) finds the new key in every interleaving.

The time of the last rotation is the session's state entry ``"rotation"``: ``{"at": float}``.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

from .clock import Clock
from .settings import SessionSettings
from .state import state_field, stored_entry, stored_time
from .stores.base import SessionMeta, SessionRecord, SessionStore, WriteResult

__all__ = ["FORWARD_FIELD", "ROTATION_FIELD", "STATE_KEY", "Rotation", "forward_key"]

STATE_KEY = "rotation"
"""The session state entry that holds the time of the last rotation."""
ROTATION_FIELD = state_field(STATE_KEY)
"""The stored field of that entry."""
# Keys whose rotation time a process remembers at most; then it forgets them all and parses again.
_REMEMBERED = 65_536
FORWARD_FIELD = "$forward"
"""The one field of a forwarding record: ``{"to": new key, "created_at": the session's creation}``."""


def forward_key(key: str) -> str:
    """The store key of the forward left behind when the session at ``key`` rotated."""
    return key + ".forward"


class Rotation:
    """When a session is due for a new ID, and the forwards that keep its previous ID working briefly."""

    def __init__(self, settings: SessionSettings, store: SessionStore, clock: Clock) -> None:
        assert settings.rotate_interval is not None  # noqa: S101 - built only when rotation is on
        self.interval = float(settings.rotate_interval)
        self.grace = float(settings.rotate_grace)
        self.store = store
        self.clock = clock
        self._last: dict[str, float] = {}
        """When the key of each session older than one interval got its session, as far as seen."""

    def due(self, key: str, record: SessionRecord, now: float) -> bool:
        """Whether the session at ``key`` got that ID (created or rotated) an interval ago or more.

        A session younger than one interval costs one comparison. An older one costs a parse of its
        state the first time this process sees its key (3 us, ten times a plain read's own work on
        MemoryStore), and a dict lookup after: a key's rotation time is fixed when the key is made.
        """
        created_at = record.meta.created_at
        if now - created_at < self.interval:
            return False
        last = self._last.get(key)
        if last is None:
            rotation = stored_entry(record.fields, STATE_KEY)
            at = rotation.get("at") if type(rotation) is dict else None
            time = stored_time(at)
            last = time if time is not None and created_at <= time else created_at
            if len(self._last) >= _REMEMBERED:  # keys of sessions rotated or gone since: start over
                self._last.clear()
            self._last[key] = last
        return not now - last < self.interval  # a NaN or a time in the future: due

    @staticmethod
    def rotated_entry(now: float) -> dict[str, Any]:
        """The state entry that records a rotation at ``now``."""
        return {"at": now}

    async def leave_forward(self, key: str, new_key: str, created_at: float) -> WriteResult:
        """Leave at ``key``'s side a forward to ``new_key``, for the grace window; ``EXISTS`` if one is
        there already (another request is rotating this session, or just did)."""
        now = self.clock.time()
        target = to_json({"to": new_key, "created_at": created_at})
        record = SessionRecord({FORWARD_FIELD: target}, SessionMeta(now, now + self.grace))
        return await self.store.create(forward_key(key), record, ttl=self.grace)

    async def drop_forward(self, key: str) -> None:
        """Remove the forward at ``key``'s side, if any."""
        await self.store.delete(forward_key(key))

    async def target(self, key: str) -> tuple[str, float] | None:
        """The key the session once at ``key`` was rotated to and its creation time, while the grace
        window lasts; None when there is no live forward. (Whether that key still holds the session is
        for the caller to check: it is followed one hop, never further.)"""
        forward = await self.store.load(forward_key(key))
        if forward is None or not forward.meta.expires_at > self.clock.time():
            return None
        try:
            found = from_json(forward.fields.get(FORWARD_FIELD, b""))
            to, created_at = found["to"], found["created_at"]
        except (ValueError, TypeError, KeyError):
            return None
        time = stored_time(created_at)
        if type(to) is not str or time is None:
            return None
        return to, time
