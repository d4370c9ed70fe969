"""Freshness: whether a session is logged in, and recently enough for a route that asks.

"Logged in" means the session's own state holds a login (``state["login"]``, written by the login
helper). A route can demand more than the app-wide settings:

* ``login_within``: a login at most that old (``state["login"]["at"]``), for admin and payment routes
  (re-authentication);
* ``used_within``: a shorter idle window than ``SESSION_IDLE_TIMEOUT``. A session's last use is not
  stored by every read (that would make every read a write), so the check keeps its own: the time of
  the last request a ``used_within`` check let through (``state["guards"]["seen"]``), or of the login
  if later. To spare a write per request it is written when it is at least a tenth of the window old:
  a session is refused between 0.9 and 1 times the window after its last checked request.

Pure session logic, no framework: the FastAPI guards (``fastapi_sessions.guards``) and the Sanic door
both call ``check_login``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .exceptions import SessionLoginRequired, SessionStoreUnavailable, SessionUsageError
from .indexing import login_user
from .state import stored_time

if TYPE_CHECKING:
    from .session import Session

__all__ = ["GUARD_KEY", "LOGIN_KEY", "check_login", "seconds"]

LOGIN_KEY = "login"
"""The login in the session's own state, ``{"user": ..., "at": <clock time>, ...}``."""
GUARD_KEY = "guards"
"""The guards' own entry in the session's state: ``{"seen": <clock time of the last guarded use>}``."""
_RECORD_EVERY = 0.1
"""The share of a ``used_within`` window after which a guarded request records its time again."""


def seconds(value: float | timedelta | None, name: str) -> float | None:
    """A freshness limit in seconds (None: no limit); ``SessionUsageError`` unless it is positive."""
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
    by the door's clock); with ``used_within``, record this use.

    A degraded session (the store is down, SESSION_ON_STORE_ERROR=degrade) raises
    ``SessionStoreUnavailable`` (503) instead: whether it is logged in is unknown.
    """
    if session.degraded:  # the store is down (SESSION_ON_STORE_ERROR=degrade): we cannot tell
        raise SessionStoreUnavailable(
            "A route that needs a login was asked for while the session store is unavailable "
            "(SESSION_ON_STORE_ERROR=degrade): answered 503, not 401, so that nobody is sent to log in."
        )
    state = session.state
    login = state.get(LOGIN_KEY)
    if login_user(state) is None or type(login) is not dict:  # logged in: as the users' index says
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
    time = stored_time(value)
    return -math.inf if time is None else time
