"""``Backend``: a store in four methods that move whole sessions as JSON-ready dicts, and that dict's shape.

A backend only reads, writes and removes one dict per key; ``BackendStore`` (``backends.adapter``) builds
the full ``SessionStore`` protocol on top of it. ``to_data`` and ``from_data`` translate between a
store record and the dict, and check its shape on the way back.
"""

from __future__ import annotations

import abc
import json
import math
from typing import Any

from ..exceptions import CorruptRecordError
from ..stores.base import SessionMeta, SessionRecord

__all__ = ["Backend", "from_data", "to_data"]


class Backend(abc.ABC):
    """Subclass it to keep sessions anywhere: implement ``read``, ``write``, ``destroy`` and ``clear``.

    Pass an instance as ``SessionManager(Model, store=MyBackend())``; the manager wraps it in a
    ``BackendStore``, which does the rest (versions, expiry, create-never-overwrites, regenerate) and
    makes every operation on a key atomic within the process. What it cannot make atomic across worker
    processes is listed in the docs ("Custom stores"); where that matters, implement the full
    ``SessionStore`` protocol instead.

    The dict a backend keeps under a key is JSON-serialisable as it is (a JSONB column, a Redis string,
    a file), and looks like this:

    ```json
    {
      "session": {"user_id": 42, "cart": ["apple"]},
      "meta": {
        "created_at": 1800000000.0,
        "expires_at": 1800086400.0,
        "persistent": false,
        "version": 3,
        "deadline": 1800001800.0
      }
    }
    ```

    ``session`` holds the session's top-level fields as JSON values. ``meta`` holds the creation time,
    the absolute end (``SESSION_MAX_AGE`` or ``set_expiry``), whether the cookie is persistent, a
    version that every change increments, and ``deadline``: when the record dies unless it is written
    or read again (the idle timeout, never past ``expires_at``). Times are seconds since the epoch.
    Keep the dict as it is and hand back an equal one; anything ``read`` returns that does not have
    this shape is a corrupt record: logged, deleted, and a new session starts.
    """

    @abc.abstractmethod
    async def read(self, key: str) -> dict[str, Any] | None:
        """The dict last written under ``key``, or None if there is none.

        ``key`` is a hash of the session ID (24 URL-safe characters), never the ID itself; use it as
        is. Returning a record whose ``ttl`` has run out is harmless (it is treated as absent), so a
        backend may expire records late. Raise when the backend fails: the request gets a 503.
        """

    @abc.abstractmethod
    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` under ``key``, replacing whatever is there, for ``ttl`` seconds (at least 1).

        Replace the record whole and at once: a ``read`` must never see half of a write (one SQL
        statement, one Redis ``SET ... EX``, a file renamed into place). Drop it after ``ttl``
        seconds if the backend can (``EX``, an ``expires`` column you sweep); every write and every
        read that slides the idle timeout gives a new ``ttl``.
        """

    @abc.abstractmethod
    async def destroy(self, key: str) -> None:
        """Remove the record under ``key``; a key that is not there is not an error."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Remove every session of this backend, and nothing else: everyone is logged out."""

    async def aclose(self) -> None:  # noqa: B027 - optional on purpose, so it is not abstract
        """Release connections; does nothing unless overridden.

        The manager calls it at shutdown only for stores it built itself: close a backend you pass in
        yourself (in the app's lifespan).
        """


def to_data(record: SessionRecord, deadline: float) -> dict[str, Any]:
    """The dict a backend stores for ``record``, alive until ``deadline`` (wall-clock seconds)."""
    meta = record.meta
    return {
        "session": {name: json.loads(value) for name, value in record.fields.items()},
        "meta": {
            "created_at": meta.created_at,
            "expires_at": meta.expires_at,
            "persistent": meta.persistent,
            "version": meta.version,
            "deadline": deadline,
        },
    }


def from_data(data: object) -> tuple[SessionRecord, float]:
    """The record and deadline in a dict a backend read; ``CorruptRecordError`` if it has not the shape."""
    if not isinstance(data, dict):
        raise CorruptRecordError(f"the backend returned a {type(data).__name__}, not a dict")
    session, meta = data.get("session"), data.get("meta")
    if not isinstance(session, dict) or not isinstance(meta, dict):
        raise CorruptRecordError("the backend's dict lacks a 'session' or a 'meta' object")
    fields = {_name(name): _json(name, value) for name, value in session.items()}
    persistent, version = meta.get("persistent"), meta.get("version")
    if not isinstance(persistent, bool):
        raise CorruptRecordError(f"meta.persistent is {persistent!r}, not true or false")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CorruptRecordError(f"meta.version is {version!r}, not a whole number")
    created_at, expires_at = _time(meta, "created_at"), _time(meta, "expires_at")
    record = SessionRecord(fields, SessionMeta(created_at, expires_at, persistent, version))
    return record, _time(meta, "deadline")


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise CorruptRecordError(f"session field name {name!r} is not a string")
    return name


def _json(name: str, value: object) -> bytes:
    """One field as the compact JSON the engine reads (ASCII-escaped, as ``json.dumps`` writes it).

    NaN and Infinity come out as ``NaN`` and ``Infinity``, which pydantic reads back: only a session
    model that keeps them (``ser_json_inf_nan``) can have written them.
    """
    try:
        return json.dumps(value, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise CorruptRecordError(f"session field {name!r} is not JSON ({exc})") from exc


def _time(meta: dict[str, Any], name: str) -> float:
    value = meta.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptRecordError(f"meta.{name} is {value!r}, not a time in seconds")
    return float(value)
