"""The two loggers: ``fastapi_sessions`` for operations, ``fastapi_sessions.security`` for attacks.

Nothing here ever logs a session ID or a cookie; sessions are named by a short prefix of their store
key, which is itself a hash of the ID.
"""

from __future__ import annotations

import logging

__all__ = ["log", "ref", "security_log"]

log = logging.getLogger("fastapi_sessions")
security_log = logging.getLogger("fastapi_sessions.security")


def ref(key: str) -> str:
    """A loggable handle for the session stored under ``key``."""
    return key[:12]
