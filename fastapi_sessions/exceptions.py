"""The exceptions fastapi_sessions raises, all rooted at ``SessionError``.

```
SessionError
├── SessionConfigError (also ValueError)   bad settings or model, raised at start-up
├── SessionNotInstalledError (also RuntimeError)   get_session used without install()
├── SessionUsageError (also RuntimeError)   an operation on no live session, or too late to save
├── SessionTooLargeError   the serialized session exceeds SESSION_MAX_SIZE
├── SessionValueError (also TypeError, ValueError)   a value a session cannot store (NaN, too deep...)
├── SessionConflictError   the session changed or vanished under this request (409)
├── SessionLoginRequired (also an HTTPException 401)   a guarded route without a (fresh) login
├── CsrfError (also an HTTPException 403)   an unsafe request failed the CSRF check
├── SessionStoreError      the store failed; answered 503 with Retry-After
│   └── SessionStoreUnavailable (also an HTTPException 503)   raised to the endpoint
└── CorruptRecordError     raised by a store's load(): the stored data is no session record
```
"""

from __future__ import annotations

import json
from typing import Literal

from starlette.exceptions import HTTPException

__all__ = [
    "CorruptRecordError",
    "CsrfError",
    "SessionConfigError",
    "SessionConflictError",
    "SessionError",
    "SessionLoginRequired",
    "SessionNotInstalledError",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLargeError",
    "SessionUsageError",
    "SessionValueError",
]

#: Seconds a client is told to wait after a store outage.
RETRY_AFTER_SECONDS = 1
#: What every door answers (503, with ``Retry-After``) when the session store fails.
UNAVAILABLE_DETAIL = "Session store unavailable; try again shortly."
#: The headers of every 503 a door answers for the store (besides ``Cache-Control: no-store``).
UNAVAILABLE_HEADERS = {"Retry-After": str(RETRY_AFTER_SECONDS)}
#: What every door answers (409) when the session changed under the request.
CONFLICT_DETAIL = "Session conflict; retry the request."
#: Why a change to a degraded session fails.
READ_ONLY = (
    "The session store is unavailable, so this session is read-only "
    "(SESSION_ON_STORE_ERROR=degrade); retry the change later."
)


def error_body(detail: str) -> bytes:
    """The body of every answer a door gives in place of the app's (409, 503): ``{"detail": ...}``.

    The shape and bytes of FastAPI's own ``HTTPException`` answers, so a client parses one format
    whichever door, framework or moment (load or commit) the error came from.
    """
    return json.dumps({"detail": detail}, separators=(",", ":")).encode()


class SessionError(Exception):
    """Root of every error fastapi_sessions raises on purpose."""


class SessionConfigError(SessionError, ValueError):
    """The settings or the session model cannot work; raised when the manager is built."""


class SessionNotInstalledError(SessionError, RuntimeError):
    """``get_session`` ran in an app whose manager was never installed."""


class SessionUsageError(SessionError, RuntimeError):
    """A session operation got an object that is not a session of this request, or came after the
    response started, when nothing can be saved any more."""


class SessionTooLargeError(SessionError):
    """The serialized session is larger than ``SESSION_MAX_SIZE``; nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"Session data too large: {size} bytes exceeds the {limit}-byte limit "
            "(SESSION_MAX_SIZE). Store less data in the session, or raise SESSION_MAX_SIZE."
        )


class SessionValueError(SessionError, TypeError, ValueError):
    """A value the request put in the session cannot be stored so that it loads back: not JSON (a
    ``set``, a ``datetime`` in a dict session), a NaN or an Infinity, a ``str`` with a lone surrogate,
    or nested more than ``MAX_DEPTH`` (100) levels deep.

    Raised when the value is assigned (``SessionDict``) or when the response starts (the typed door,
    and a change inside a list or dict of a ``SessionDict``): nothing is written, the stored session
    stays as it was, and the request fails (a 500). ``path`` names the value (``cart[2]``,
    ``session['cart'][2]``). It is a ``TypeError`` and a ``ValueError`` both: ``SessionDict`` raised
    ``TypeError`` for such values before, and pydantic a ``ValueError``.
    """

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        self.path = path
        message = (
            f"The session value {path} {problem}, so it cannot be saved; the stored session is unchanged."
        )
        super().__init__(f"{message} {remedy}." if remedy else message)


class SessionConflictError(SessionError):
    """Another request destroyed, regenerated or (with version checks) changed the session first."""


LoginProblem = Literal["login_required", "reauthentication_required", "session_idle"]
"""Why a guarded route refused a request: no login, a login too old, or too long without use."""


class SessionLoginRequired(SessionError, HTTPException):
    """Raised by a guarded route (``sessions.require_login``, ``require_fresh``, ``RequireLogin``):
    a 401 whose body says what is missing, ``{"detail": {"error": ..., "message": ...}}``.

    ``error`` (also the ``problem`` attribute) is ``login_required`` (no logged-in session),
    ``reauthentication_required`` (the login is older than the route accepts) or ``session_idle``
    (the session went unused longer than the route accepts). It is an ``HTTPException``, so FastAPI
    answers it as a 401 by itself; register an exception handler for this class to redirect to a login
    page instead.
    """

    def __init__(self, problem: LoginProblem, message: str) -> None:
        SessionError.__init__(self, message)
        HTTPException.__init__(
            self, status_code=401, headers={"WWW-Authenticate": f'APIKey error="{problem}"'}
        )
        # FastAPI answers any JSON detail ({"detail": ...}); Starlette's class types it as a str only
        # (FastAPI's own HTTPException would take it, at the cost of importing FastAPI here).
        self.detail = {"error": problem, "message": message}  # type: ignore[assignment]
        self.problem: LoginProblem = problem
        self.message = message

    def __str__(self) -> str:
        return self.message


class CsrfError(SessionError, HTTPException):
    """An unsafe request (POST, PUT, PATCH, DELETE) failed the CSRF check: answered 403, with a
    ``detail`` that says what was missing or wrong and how to send the token. Never holds a token."""

    def __init__(self, detail: str) -> None:
        SessionError.__init__(self, detail)
        HTTPException.__init__(self, status_code=403, detail=detail)

    def __str__(self) -> str:
        return self.detail


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
            detail=UNAVAILABLE_DETAIL,
            headers=dict(UNAVAILABLE_HEADERS),
        )
        self.message = message

    def __str__(self) -> str:
        return self.message


class CorruptRecordError(SessionError):
    """Raised by a store's ``load`` when the stored data is not a session record (e.g. a Redis key of
    another type). The engine treats it like a record that fails the model: logged, deleted, a new
    session. An outage, by contrast, is any other exception."""
