"""CSRF protection bound to the session for FastAPI and Starlette: ``CsrfProtect``, ``csrf_token`` and
``rotate_csrf_token``.

Each session gets one secret (``fastapi_sessions.csrftokens``), issued the first time a page asks
for a token; every response carries a freshly masked copy of it. Requests with an unsafe method
(POST, PUT, PATCH, DELETE and any other that is not GET, HEAD, OPTIONS or TRACE) must send one back,
in a header or a form field, and must not come from another site (``Sec-Fetch-Site: cross-site``, or
an ``Origin`` that is not this site's nor a trusted one): the rules of ``fastapi_sessions.csrfcheck``.
A request that fails gets a ``CsrfError``: a 403 whose ``detail`` says what was wrong and how to
send the token.

Safe methods cost nothing: the check returns before it looks at the session.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette import status
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection, Request

from .csrfcheck import (
    FORMS,
    SAFE_METHODS,
    issue_token,
    rotate_csrf_token,
    secret_of,
    site_problem,
    token_problem,
    unreadable_form,
)
from .exceptions import CsrfError
from .logs import security_log
from .middleware import request_session

try:  # Starlette parses multipart forms with python-multipart; urlencoded ones are parsed here.
    import python_multipart  # noqa: F401

    HAS_MULTIPART = True
except ImportError:  # pragma: no cover - the test extra installs it; see test_csrf's flag tests
    HAS_MULTIPART = False

if TYPE_CHECKING:
    from .manager import SessionManager
    from .session import Session

__all__ = ["CsrfProtect", "csrf_token", "rotate_csrf_token"]


def csrf_token(request: HTTPConnection) -> str:
    """The classic door's token for this response (``request.session``), masked afresh on each call.

    Pass it to the template, or put ``csrf_token`` in the template's globals and call it there with
    the request. A visitor without a session gets one, so a login form is protected too.
    """
    return issue_token(request_session(request).live())


class CsrfProtect:
    """The CSRF check, as a dependency, and the token for templates and SPAs.

    Typed door: ``csrf = CsrfProtect(sessions)``; classic door (``SessionMiddleware``):
    ``csrf = CsrfProtect()``. Then check every unsafe request of an app or a router with
    ``FastAPI(dependencies=[Depends(csrf)])``, and get the token in a route with
    ``token: Annotated[str, Depends(csrf.token)]``.

    Args:
        sessions: The ``SessionManager`` of the typed door; None for ``request.session``.
        header_name: The request header an SPA sends the token in.
        field_name: The form field a server-rendered form sends the token in (urlencoded forms are
            read without python-multipart; multipart forms need it). The route can still read the
            body and the form: they are cached on the request.
        trusted_origins: Other origins (``"https://app.example.com"``) whose pages may send unsafe
            requests here; by default only this site's own.
    """

    def __init__(
        self,
        sessions: SessionManager[Any] | None = None,
        *,
        header_name: str = "X-CSRF-Token",
        field_name: str = "csrf_token",
        trusted_origins: Iterable[str] = (),
    ) -> None:
        self.sessions = sessions
        self.header_name = header_name
        self.field_name = field_name
        self.trusted_origins = frozenset(origin.lower().rstrip("/") for origin in trusted_origins)

    async def session(self, connection: HTTPConnection) -> Session[Any]:
        """This request's live session, loaded if it was not yet."""
        sessions = self.sessions
        if sessions is None:
            return request_session(connection).live()
        return sessions.session_of(await sessions.get_session(connection))

    async def token(self, request: Request) -> str:
        """A dependency: the masked token for this response (a new session gets its secret)."""
        return issue_token(await self.session(request))

    async def __call__(self, request: HTTPConnection) -> None:
        """The dependency: nothing for safe methods; for a WebSocket handshake, the site check (close
        code 1008); else every check, or ``CsrfError``."""
        scope = request.scope
        if scope["type"] != "http":
            # A handshake carries no token, but a browser says where the page is: a page of another
            # site opening a WebSocket with the user's cookie (SameSite=None) is refused.
            https = request.url.scheme == "wss"
            problem = site_problem(request.headers, https=https, trusted=self.trusted_origins)
            if problem is not None:
                security_log.warning("CSRF check failed for WebSocket %s: %s", scope["path"], problem)
                raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason=problem[:120])
            return
        if scope["method"] in SAFE_METHODS:
            return
        problem = await self._problem(request)
        if problem is not None:
            security_log.warning(
                "CSRF check failed for %s %s: %s", request.scope["method"], request.scope["path"], problem
            )
            raise CsrfError(problem)

    async def _problem(self, request: HTTPConnection) -> str | None:
        headers = request.headers
        problem = site_problem(headers, https=request.url.scheme == "https", trusted=self.trusted_origins)
        if problem is not None:
            return problem
        secret = secret_of(await self.session(request))
        sent = headers.get(self.header_name)
        if sent is None and secret is not None:
            media = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media == "multipart/form-data" and not HAS_MULTIPART:
                return unreadable_form(self.header_name)
            if media in FORMS:
                assert isinstance(request, Request)  # noqa: S101 - an http scope's connection is one
                sent = await self._form_field(request, media)
        return token_problem(secret, sent, self.header_name, self.field_name)

    async def _form_field(self, request: Request, media: str) -> str | None:
        """The token in the form field of an urlencoded or multipart body, if there is one.

        The route can read the body after this: an urlencoded one as ``request.body()`` (cached) or
        as a form; a multipart one as a form (Starlette caches it; its files spooled as the route's
        own ``request.form()`` or ``Form()`` would have them).
        """
        if media == "multipart/form-data":
            value = (await request.form()).get(self.field_name)
            return value if isinstance(value, str) else None
        try:
            body = await request.body()
        except RuntimeError:  # read as a stream already: by FastAPI's Form() parameters, as a cached form
            value = (await request.form()).get(self.field_name)
            return value if isinstance(value, str) else None
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if name == self.field_name:
                return value
        return None
