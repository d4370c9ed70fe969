"""The exceptions fastapi_sessions raises, all rooted at :class:`SessionError`.

```
SessionError
├── SessionConfigError (also ValueError)   bad settings or model, raised at start-up
├── SessionNotInstalledError (also RuntimeError)   get_session used without install()
├── SessionUsageError (also RuntimeError)   regenerate/destroy on an object that is no live session
├── SessionTooLargeError   the serialized session exceeds SESSION_MAX_SIZE
├── SessionConflictError   the session changed or vanished under this request (409)
└── SessionStoreError      the store failed; answered 503 with Retry-After
    └── SessionStoreUnavailable (also an HTTPException 503)   raised to the endpoint
```
"""

from __future__ import annotations

from starlette.exceptions import HTTPException

__all__ = [
    "SessionConfigError",
    "SessionConflictError",
    "SessionError",
    "SessionNotInstalledError",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLargeError",
    "SessionUsageError",
]

#: Seconds a client is told to wait after a store outage.
RETRY_AFTER_SECONDS = 1


class SessionError(Exception):
    """Root of every error fastapi_sessions raises on purpose."""


class SessionConfigError(SessionError, ValueError):
    """The settings or the session model cannot work; raised when the manager is built."""


class SessionNotInstalledError(SessionError, RuntimeError):
    """``get_session`` ran in an app whose manager was never installed."""


class SessionUsageError(SessionError, RuntimeError):
    """A session operation got an object that is not a session of this request."""


class SessionTooLargeError(SessionError):
    """The serialized session is larger than ``SESSION_MAX_SIZE``; nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"Session data too large: {size} bytes exceeds the {limit}-byte limit "
            "(SESSION_MAX_SIZE). Store less data in the session, or raise SESSION_MAX_SIZE."
        )


class SessionConflictError(SessionError):
    """Another request destroyed, regenerated or (with version checks) changed the session first."""


class SessionStoreError(SessionError):
    """The session store failed or timed out; the request is answered 503, nothing is lost."""


class SessionStoreUnavailable(SessionStoreError, HTTPException):
    """Raised into the endpoint when the session cannot be loaded: a 503 with ``Retry-After``.

    It is an ``HTTPException``, so every FastAPI app (mounted sub-apps included) answers it as a 503
    without extra set-up; register a handler for this class to answer differently.
    """

    def __init__(self, message: str) -> None:
        SessionStoreError.__init__(self, message)
        HTTPException.__init__(
            self,
            status_code=503,
            detail="Session store unavailable; try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        self.message = message

    def __str__(self) -> str:
        return self.message
