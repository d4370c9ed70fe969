"""Building the store named by ``SESSION_STORE_URL``."""

from __future__ import annotations

from ..clock import Clock
from ..exceptions import SessionConfigError
from .base import SessionStore
from .memory import MemoryStore

__all__ = ["store_from_url"]


def store_from_url(url: str, *, clock: Clock | None = None) -> SessionStore:
    """The store for ``url``; ``memory://`` (optionally ``?max_entries=N``)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryStore.from_url(url, clock=clock)
    raise SessionConfigError(
        f"Unknown SESSION_STORE_URL scheme {scheme!r} in {url.split('@')[-1]!r}: use 'memory://', "
        "or pass store=... to SessionManager for a custom store."
    )
