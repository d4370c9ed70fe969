"""The benchmarked systems: one FastAPI app each, with the same four routes.

``/bare`` never touches the session, ``/read`` reads one key of an existing session, ``/write`` changes
one value on every request and ``/login`` creates a session of ``LOGIN`` (``BENCH_MODEL``). Each module is
imported only in the subprocess that runs its system, so the peers' imports never mix with ours.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROUTES = ("/bare", "/read", "/write", "/login")
SECRET = "bench-only-key-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MODELS = ("realistic", "flat")
MODEL = os.environ.get("BENCH_MODEL", "realistic")
"""The session every system stores at /login: ``realistic`` (the default; shaped like the README's cart
app: scalars, two lists and a nested object) or ``flat`` (five small scalars, the model of earlier runs)."""
if MODEL not in MODELS:
    raise SystemExit(f"BENCH_MODEL must be one of {MODELS}, not {MODEL!r}")
LOGIN: dict[str, Any] = (
    {
        "user_id": 42,
        "name": "alice",
        "email": "alice@example.com",
        "roles": ["admin", "editor"],
        "cart": ["sku-1042", "sku-2209", "sku-3310"],
        "prefs": {"theme": "dark", "language": "en", "page_size": 50},
        "counter": 1,
    }
    if MODEL == "realistic"
    else {"user_id": 42, "name": "alice", "role": "admin", "theme": "dark", "counter": 1}
)


@dataclass
class System:
    app: Any
    store_len: Callable[[], int] | None = None
    """How many sessions the in-process store holds (memory stores only)."""
    store: Any = None


# name -> (module, variant)
SYSTEMS: dict[str, tuple[str, str | None]] = {
    "plain": ("plain", None),
    "plain-depends": ("plain", "depends"),
    "ours-memory": ("ours", "memory"),
    "ours-redis": ("ours", "redis"),
    "ours-postgres": ("ours", "postgres"),
    "ours-memory-encrypted": ("ours", "memory-encrypted"),
    "ours-middleware": ("ours_middleware", "memory"),
    "ours-middleware-redis": ("ours_middleware", "redis"),
    "starlette": ("starlette_sm", None),
    "starsessions-memory": ("starsessions_app", "memory"),
    "starsessions-redis": ("starsessions_app", "redis"),
    "fastapi-sessions": ("peer_fastapi_sessions", None),
}
REDIS_SYSTEMS = ("ours-redis", "ours-middleware-redis", "starsessions-redis")
# On the server BENCH_POSTGRES_URL names (default: the local socket, database test), in a table of
# their own that the app creates at start-up.
POSTGRES_SYSTEMS = ("ours-postgres",)
LABELS = {
    "plain": "plain FastAPI (floor)",
    "plain-depends": "plain FastAPI + one trivial `Depends` (floor of any `Depends()` design)",
    "ours-memory": "ours, `Depends`, MemoryStore",
    "ours-redis": "ours, `Depends`, RedisStore",
    "ours-postgres": "ours, `Depends`, PostgresStore",
    "ours-memory-encrypted": "ours, `Depends`, MemoryStore, SESSION_ENCRYPTION_KEYS set",
    "ours-middleware": "ours, `SessionMiddleware`, MemoryStore",
    "ours-middleware-redis": "ours, `SessionMiddleware`, RedisStore",
    "starlette": "Starlette SessionMiddleware",
    "starsessions-memory": "starsessions, InMemoryStore",
    "starsessions-redis": "starsessions, RedisStore",
    "fastapi-sessions": "fastapi-sessions, InMemoryBackend",
}


def build(name: str, redis_url: str | None = None, **options: Any) -> System:
    module, variant = SYSTEMS[name]
    built: System = importlib.import_module(f"apps.{module}").build(variant, redis_url, **options)
    return built
