"""Helpers for testing apps and stores that use fastapi_sessions.

* ``seed_session``: start a test client off with a session in place (a logged-in user), created by
  the app's own door; the supported way to give a route a session of your choosing.
* ``FakeClock``: pass it as ``clock=`` to ``SessionManager`` and ``MemoryStore``.
* ``session_cookie``: a valid signed cookie value for a session ID, for tests that craft requests.
* ``RecordingStore``: wraps a store, counts its calls, and can simulate an outage.
* ``StoreConformance``: the store contract as a pytest test class; subclass it to check a store.
* ``CHECKS``: the same checks as plain async functions; ``CONCURRENCY_CHECKS``, those of them
  that race writers on one record.
* ``UserIndexConformance``: the same for the optional ``UserIndexStore`` capability (a user's list
  of sessions); its checks as plain functions are ``index_conformance.INDEX_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .clock import FakeClock
from .concurrency import CONCURRENCY_CHECKS
from .conformance import CHECKS, StoreHarness
from .cookies import session_cookie, session_store_key
from .recording import RecordingStore
from .seeding import seed_session

if TYPE_CHECKING:
    from .suite import StoreConformance, UserIndexConformance

__all__ = [
    "CHECKS",
    "CONCURRENCY_CHECKS",
    "FakeClock",
    "RecordingStore",
    "StoreConformance",
    "StoreHarness",
    "UserIndexConformance",
    "fake_wait",
    "seed_session",
    "session_cookie",
    "session_store_key",
]


def fake_wait(clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    """A harness ``wait`` that advances ``clock`` instead of sleeping."""

    async def wait(seconds: float) -> None:
        clock.advance(seconds)

    return wait


def __getattr__(name: str) -> Any:
    # StoreConformance imports pytest; load it only for those who ask for it.
    if name in ("StoreConformance", "UserIndexConformance"):
        from . import suite

        return getattr(suite, name)
    raise AttributeError(name)
