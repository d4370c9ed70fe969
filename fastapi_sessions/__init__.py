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
from .manager import SessionManager
from .middleware import SessionMiddleware, request_session
from .settings import SessionSettings
from .stores.base import SessionStore
from .stores.index import UserIndexStore
from .users import ActiveSession, SessionUsers, session_users

__all__ = [
    "ActiveSession",
    "Clock",
    "CorruptRecordError",
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
    "SessionUsers",
    "SessionValueError",
    "SystemClock",
    "UserIndexStore",
    "request_session",
    "session_users",
]

__version__ = "0.1.0"
