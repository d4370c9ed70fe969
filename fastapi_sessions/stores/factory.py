"""Building the store named by ``SESSION_STORE_URL``."""

from __future__ import annotations

from ..clock import Clock
from ..exceptions import SessionConfigError
from ..settings import SessionSettings
from .base import SessionStore
from .memory import MemoryStore

__all__ = ["store_from_settings"]


def store_from_settings(settings: SessionSettings, *, clock: Clock | None = None) -> SessionStore:
    """The store ``SESSION_STORE_URL`` names: ``memory://`` or ``redis://``/``rediss://``/``unix://``."""
    url = settings.store_url
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        if settings.store_wait_replicas:
            raise SessionConfigError(
                f"SESSION_STORE_WAIT_REPLICAS={settings.store_wait_replicas} needs a Redis master with "
                "replicas, and SESSION_STORE_URL names the in-memory store, which has none: set "
                "SESSION_STORE_URL to your Redis master, or SESSION_STORE_WAIT_REPLICAS to 0."
            )
        return MemoryStore.from_url(url, clock=clock)
    if scheme in {"redis", "rediss", "unix"}:
        from .redis import RedisStore  # imported here: the core never imports redis

        return RedisStore.from_url(
            url,
            prefix=settings.store_prefix,
            timeout=settings.store_timeout,
            wait_replicas=settings.store_wait_replicas,
        )
    raise SessionConfigError(
        f"Unknown SESSION_STORE_URL scheme {scheme!r} in {url.split('@')[-1]!r}: use 'memory://' or "
        "'redis://host:6379/0' (pip install 'pselfastapise-async[redis]'), or pass store=... to "
        "SessionManager for a custom store."
    )
