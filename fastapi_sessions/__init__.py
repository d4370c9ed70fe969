"""Typed, server-side sessions for FastAPI: a Pydantic model per request through ``Depends()``, or
``request.session`` through ``SessionMiddleware``, on one engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import Clock, SystemClock
from .csrf import CsrfProtect, csrf_token, rotate_csrf_token
from .dictsession import SessionDict
from .exceptions import (
    CorruptRecordError,
    CsrfError,
    SessionConfigError,
    SessionConflictError,
    SessionError,
    SessionLoginRequired,
    SessionNotInstalledError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLargeError,
    SessionUsageError,
    SessionValueError,
)
from .flashes import Flash, FlashCategory, flash, get_flashed_messages
from .manager import SessionManager
from .middleware import SessionMiddleware, request_session
from .settings import SessionSettings
from .stores.base import SessionStore
from .stores.index import UserIndexStore
from .users import ActiveSession, SessionUsers, session_users

if TYPE_CHECKING:
    from .guards import RequireLogin, require_login

__all__ = [
    "ActiveSession",
    "Clock",
    "CorruptRecordError",
    "CsrfError",
    "CsrfProtect",
    "Flash",
    "FlashCategory",
    "RequireLogin",
    "SessionConfigError",
    "SessionConflictError",
    "SessionDict",
    "SessionError",
    "SessionLoginRequired",
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
    "csrf_token",
    "flash",
    "get_flashed_messages",
    "request_session",
    "require_login",
    "rotate_csrf_token",
    "session_users",
]

__version__ = "0.1.0"

_LAZY = {"RequireLogin", "require_login"}
"""Names from ``fastapi_sessions.guards``, which imports FastAPI: imported on first use, so that
Starlette and Sanic apps never load FastAPI (it doubles the package's import time)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import guards

        return getattr(guards, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
