"""Route guards: FastAPI dependencies that let a request through only with a logged-in session,
optionally a fresh one (``login_within``, ``used_within``: see ``fastapi_sessions.freshness``), and
show the session cookie in the OpenAPI schema.

A refused request raises ``SessionLoginRequired``, a 401. Each guard is a FastAPI security scheme
(an API key in the session cookie), so ``/docs`` marks the routes that need a session.

(No ``from __future__ import annotations`` here: FastAPI reads the guards' ``__call__`` signature
at run time, and an instance has no module globals to resolve a string annotation in.)
"""

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from .dictsession import SessionDict
from .exceptions import SessionConfigError
from .freshness import check_login, seconds
from .middleware import request_session
from .session import Session

__all__ = ["RequireLogin", "SessionGuard", "require_login", "scheme_name"]

D = TypeVar("D")

_SCHEME_NAME = re.compile(r"[^A-Za-z0-9._-]")

Fetch = Callable[[HTTPConnection], Awaitable[tuple[D, Session[Any]]]]
"""How a door finds the request's session: its data, and the ``Session`` behind it."""


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
        self.login_within = seconds(login_within, "login_within")
        self.used_within = seconds(used_within, "used_within")
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
