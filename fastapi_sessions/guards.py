"""Route guards: dependencies that let a request through only with a logged-in session, optionally a
fresh one, and show the session cookie in the OpenAPI schema.

"Logged in" means the session's own state holds a login (``state["login"]``, written by the login
helper). A guard can also demand more than the app-wide settings:

* ``login_within``: a login at most that old (``state["login"]["at"]``), for admin and payment routes
  (re-authentication);
* ``used_within``: a shorter idle window than ``SESSION_IDLE_TIMEOUT``. A session's last use is not
  stored by every read (that would make every read a write), so the guard keeps its own: the time of
  the last request a ``used_within`` guard let through (``state["guards"]["seen"]``), or of the login
  if later. To spare a write per request it is written when it is at least a tenth of the window old:
  a session is refused between 0.9 and 1 times the window after its last guarded request.

A refused request raises ``SessionLoginRequired``, a 401. Each guard is a FastAPI security scheme
(an API key in the session cookie), so ``/docs`` marks the routes that need a session.

(No ``from __future__ import annotations`` here: FastAPI reads the guards' ``__call__`` signature
at run time, and an instance has no module globals to resolve a string annotation in.)
"""

import math
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from .dictsession import SessionDict
from .exceptions import SessionConfigError, SessionLoginRequired, SessionUsageError
from .middleware import request_session
from .session import Session

__all__ = ["GUARD_KEY", "LOGIN_KEY", "RequireLogin", "SessionGuard", "check_login", "require_login"]

D = TypeVar("D")

LOGIN_KEY = "login"
"""The login in the session's own state, ``{"user": ..., "at": <clock time>, ...}``."""
GUARD_KEY = "guards"
"""The guards' own entry in the session's state: ``{"seen": <clock time of the last guarded use>}``."""
_RECORD_EVERY = 0.1
"""The share of a ``used_within`` window after which a guarded request records its time again."""
_SCHEME_NAME = re.compile(r"[^A-Za-z0-9._-]")

Fetch = Callable[[HTTPConnection], Awaitable[tuple[D, Session[Any]]]]
"""How a door finds the request's session: its data, and the ``Session`` behind it."""


def _seconds(value: float | timedelta | None, name: str) -> float | None:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if value is not None and not (math.isfinite(value) and value > 0):
        raise SessionUsageError(
            f"{name} needs a positive number of seconds (or a timedelta), not {value!r}."
        )
    return value


def check_login(
    session: Session[Any], *, login_within: float | None = None, used_within: float | None = None
) -> None:
    """Raise ``SessionLoginRequired`` unless ``session`` is logged in, its login at most
    ``login_within`` seconds old and its last guarded use at most ``used_within`` seconds ago (both
    by the door's clock); with ``used_within``, record this use."""
    state = session.state
    login = state.get(LOGIN_KEY)
    if type(login) is not dict:
        raise SessionLoginRequired("login_required", "This route needs a logged-in session: log in first.")
    now = session.clock.time()
    logged_in_at = _time(login.get("at"))
    if login_within is not None and not now - logged_in_at <= login_within:  # a NaN is too old too
        raise SessionLoginRequired(
            "reauthentication_required",
            f"This route needs a login at most {login_within:g} seconds old: log in again.",
        )
    if used_within is None:
        return
    guards = state.get(GUARD_KEY)
    seen = guards.get("seen") if type(guards) is dict else None
    last = max(logged_in_at, _time(seen))
    if not now - last <= used_within:
        raise SessionLoginRequired(
            "session_idle",
            f"This route needs a session used in the last {used_within:g} seconds: log in again.",
        )
    if now - last >= used_within * _RECORD_EVERY:
        session.set_state(GUARD_KEY, {"seen": now})


def _time(value: object) -> float:
    """A stored clock time; minus infinity (long ago) for anything that is not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -math.inf


def scheme_name(cookie_name: str) -> str:
    """The OpenAPI security scheme's name for a session cookie: the cookie's name, in the characters
    OpenAPI allows in a component name."""
    return _SCHEME_NAME.sub("_", cookie_name)


class SessionGuard(SecurityBase, Generic[D]):
    """A dependency that answers the request's session (its model or ``SessionDict``) if it passes
    ``check_login``, else raises ``SessionLoginRequired`` (401).

    It is a FastAPI security scheme, an API key in the session cookie, so ``/docs`` marks every route
    that depends on it. Build one through ``sessions.require_login``, ``sessions.require_fresh(...)``
    or ``RequireLogin(...)``.
    """

    model: APIKey

    def __init__(
        self,
        fetch: Fetch[D],
        *,
        cookie_name: str,
        login_within: float | timedelta | None = None,
        used_within: float | timedelta | None = None,
    ) -> None:
        self._fetch = fetch
        self.cookie_name = cookie_name
        self.login_within = _seconds(login_within, "login_within")
        self.used_within = _seconds(used_within, "used_within")
        self.model = APIKey(
            **{"in": APIKeyIn.cookie},  # "in" is a keyword: only its alias can be passed
            name=cookie_name,
            description="The session cookie, set when you log in.",
        )
        self.scheme_name = scheme_name(cookie_name)

    async def __call__(self, connection: HTTPConnection) -> D:
        data, session = await self._fetch(connection)
        check_login(session, login_within=self.login_within, used_within=self.used_within)
        return data

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cookie_name={self.cookie_name!r}, login_within={self.login_within}, "
            f"used_within={self.used_within})"
        )


class RequireLogin(SessionGuard[SessionDict]):
    """The guard of ``SessionMiddleware`` apps: ``Depends(RequireLogin(...))`` answers
    ``request.session`` when it is logged in (and fresh enough), else a 401.

    ``cookie_name`` is the middleware's (its ``cookie_name`` option or SESSION_COOKIE_NAME), for the
    OpenAPI schema; a request that finds another one fails with ``SessionConfigError``. The ready-made
    ``require_login`` is ``RequireLogin()``.
    """

    def __init__(
        self,
        *,
        cookie_name: str = "session",
        login_within: float | timedelta | None = None,
        used_within: float | timedelta | None = None,
    ) -> None:
        super().__init__(
            self._session, cookie_name=cookie_name, login_within=login_within, used_within=used_within
        )

    async def _session(self, connection: HTTPConnection) -> tuple[SessionDict, Session[Any]]:
        data = request_session(connection)
        session = data.live()
        if session.cookie_name != self.cookie_name:
            raise SessionConfigError(
                f"RequireLogin(cookie_name={self.cookie_name!r}) guards a route whose SessionMiddleware "
                f"uses the cookie {session.cookie_name!r} (SESSION_COOKIE_NAME); pass "
                f"RequireLogin(cookie_name={session.cookie_name!r}) so the OpenAPI schema names it."
            )
        return data, session


require_login = RequireLogin()
"""``Depends(require_login)``: ``request.session``, logged in, for apps whose cookie has the default
name ``session``; else a 401."""
