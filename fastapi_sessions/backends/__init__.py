"""Session backends by the names of the ``Backend`` API: shipped stores, and a simple base for your own.

* ``MemoryBackend`` and ``RedisBackend`` are the shipped ``MemoryStore`` and ``RedisStore``
  under these names, at full speed (no adapter).
* ``Backend`` is the simple way to write a store: four async methods on whole JSON-ready
  records (``read``, ``write``, ``destroy``, ``clear``). Pass an instance to
  ``SessionManager(store=...)``, which wraps it with ``as_store``.

``RedisBackend`` needs the ``[redis]`` extra and is imported on first use, so importing this package
never imports ``redis``.
"""

from __future__ import annotations

import typing  # as a module: Any and TYPE_CHECKING are not names this package exports

from .adapter import as_store
from .base import Backend
from .memory import MemoryBackend

if typing.TYPE_CHECKING:
    from .redis import RedisBackend

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "as_store"]


def __getattr__(name: str) -> typing.Any:
    # Only on first use: RedisBackend imports redis, which the core must not need.
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
