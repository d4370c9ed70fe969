"""Minting cookies in tests."""

from __future__ import annotations

from typing import Any

from ..manager import SessionManager
from ..signing import store_key

__all__ = ["session_cookie", "session_store_key"]


def session_cookie(manager: SessionManager[Any], session_id: str) -> str:
    """The cookie value ``manager`` would send for ``session_id``, signed with its current key."""
    return manager.engine.signer.sign(session_id)


def session_store_key(session_id: str, cookie_name: str = "session") -> str:
    """The key under which stores keep the session ``session_id`` of the set-up whose cookie is
    ``cookie_name`` (``SESSION_COOKIE_NAME``, the session's namespace)."""
    return store_key(session_id, cookie_name)
