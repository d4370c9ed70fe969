"""Typed, server-side sessions for FastAPI: a Pydantic model per request through ``Depends()``, or
``request.session`` through ``SessionMiddleware``, on one engine."""

from __future__ import annotations

from .clock import Clock, SystemClock
from .dictsession import SessionDict
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
    SessionValueError,
)
from .flash import Flash, FlashCategory, flash, get_flashed_messages
from .manager import SessionManager
from .middleware import SessionMiddleware, request_session
from .settings import SessionSettings
from .stores.base import SessionStore

__all__ = [
    "Clock",
    "CorruptRecordError",
    "Flash",
    "FlashCategory",
    "SessionConfigError",
    "SessionConflictError",
    "SessionDict",
    "SessionError",
    "SessionManager",
    "SessionMiddleware",
    "SessionNotInstalledError",
    "SessionSettings",
    "SessionStore",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLargeError",
    "SessionUsageError",
    "SessionValueError",
    "SystemClock",
    "flash",
    "get_flashed_messages",
    "request_session",
]

__version__ = "0.1.0"
