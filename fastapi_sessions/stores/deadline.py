"""``deadline(seconds)``: an async context manager that cancels what it holds after ``seconds``.

The network stores bound every call with it. On Python 3.11+ it is ``asyncio.timeout`` (half the cost
of an anyio cancel scope, measured on the Redis read path); Python 3.10 has none, so anyio's
``fail_after`` stands in, raising the same ``TimeoutError``.
"""

from __future__ import annotations

import sys

__all__ = ["deadline"]

if sys.version_info >= (3, 11):
    from asyncio import timeout as deadline
else:  # pragma: no cover - Python 3.10
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import anyio

    @asynccontextmanager
    async def deadline(seconds: float) -> AsyncIterator[None]:
        with anyio.fail_after(seconds):
            yield
