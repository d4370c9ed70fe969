"""Time, injected: a wall clock for metadata shared between processes, a monotonic one for local TTLs."""

from __future__ import annotations

import time as _time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Where fastapi_sessions reads the time; tests pass a fake one (``fastapi_sessions.testing``)."""

    def time(self) -> float:
        """Seconds since the epoch; stored in session metadata, so shared by every process."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back; used for in-process TTLs."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    __slots__ = ()

    # The C functions themselves: no Python frame per reading on the per-request path.
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
