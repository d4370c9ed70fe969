"""Typed, server-side sessions for FastAPI: a Pydantic model per request through ``Depends()``."""

from __future__ import annotations

from .clock import Clock, SystemClock
from .exceptions import (
    CorruptRecordError,
    SessionConfigError,
    SessionConflictError,
    SessionError,
    SessionNotInstalledError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLargeError,
    SessionUsageError,
)
from .manager import SessionManager
from .settings import SessionSettings
from .stores.base import SessionStore

__all__ = [
    "Clock",
    "CorruptRecordError",
    "SessionConfigError",
    "SessionConflictError",
    "SessionError",
    "SessionManager",
    "SessionNotInstalledError",
    "SessionSettings",
    "SessionStore",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLargeError",
    "SessionUsageError",
    "SystemClock",
]

__version__ = "0.1.0"
