"""Session stores: the ``SessionStore`` protocol and the stores shipped with the package.

The Redis store lives in ``fastapi_sessions.stores.redis`` and needs the ``[redis]`` extra; it is not
imported here so that the core never imports ``redis``.
"""

from __future__ import annotations

from .base import (
    CorruptRecordError,
    SessionChange,
    SessionMeta,
    SessionRecord,
    SessionStore,
    WriteResult,
    json_document,
)
from .index import IndexedSession, UserIndexStore
from .memory import MemoryStore
from .operations import PurgingStore, StatsStore, TableStore

__all__ = [
    "CorruptRecordError",
    "IndexedSession",
    "MemoryStore",
    "PurgingStore",
    "SessionChange",
    "SessionMeta",
    "SessionRecord",
    "SessionStore",
    "StatsStore",
    "TableStore",
    "UserIndexStore",
    "WriteResult",
    "json_document",
]
