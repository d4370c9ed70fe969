"""CSRF protection bound to the session: ``CsrfProtect``, ``csrf_token`` and ``rotate_csrf_token``.

Each session gets one secret (``fastapi_sessions.csrftokens``), issued the first time a page asks
for a token; every response carries a freshly masked copy of it. Requests with an unsafe method
(POST, PUT, PATCH, DELETE and any other that is not GET, HEAD, OPTIONS or TRACE) must send one back,
in a header or a form field, and must not come from another site (``Sec-Fetch-Site: cross-site``, or
an ``Origin`` that is not this site's nor a trusted one). A request that fails gets a ``CsrfError``:
a 403 whose ``detail`` says what was wrong and how to send the token.

Safe methods cost nothing: the check returns before it looks at the session.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection, Request

from .csrftokens import STATE_KEY, mask, new_secret, read_secret, unmask
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

__all__ = ["SAFE_METHODS", "CsrfProtect", "csrf_token", "rotate_csrf_token"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that must not change anything, and are never checked (RFC 9110, 9.2.1)."""

_HOW = (
    "Send the token from the page (csrf.token / csrf_token(request)) in the {} header, or in the {} "
    "field of a form."
)
_CROSS_SITE = (
    "CSRF check failed: the browser says this request comes from another site (Sec-Fetch-Site: "
    "cross-site), which may not send unsafe requests here. Send it from a page of this site."
)
_FOREIGN_ORIGIN = (
    "CSRF check failed: the Origin header names another site. Send the request from a page of this "
    "site, or add that origin to CsrfProtect(trusted_origins=[...])."
)
_UNISSUED = (
    "CSRF check failed: this session has no CSRF token (it is new, or expired, or was logged out). "
    "Load the page or endpoint that gives a token first, then send that token back."
)
_MISSING = "CSRF check failed: no CSRF token was sent. " + _HOW
_MALFORMED = (
    "CSRF check failed: the CSRF token is malformed (a masked token is 86 characters of base64url). "
    "Send the token exactly as the page gave it. " + _HOW
)
_WRONG = (
    "CSRF check failed: the CSRF token does not belong to this session (it is from another or an "
    "older session, e.g. before a login). Reload the page for a new token and send that one."
)
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_MULTIPART = (
    "CSRF check failed: a multipart form can only be read with python-multipart installed "
    "(pip install python-multipart). Install it, or send the token in the {} header."
)


def _secret(session: Session[Any]) -> bytes | None:
    return read_secret(session.state.get(STATE_KEY))


def issue_token(session: Session[Any]) -> str:
    """A masked token for this response, creating the session's secret (and the session) if needed."""
    secret = _secret(session)
    if secret is None:
        stored = new_secret()
        session.set_state(STATE_KEY, stored)
        secret = read_secret(stored)
        assert secret is not None  # noqa: S101 - new_secret's text always reads back
    return mask(secret)


def rotate_csrf_token(session: Session[Any]) -> str:
    """Give the session a new CSRF secret, so tokens issued before stop working; the new masked token.

    Call it at login, next to ``regenerate`` (Django does the same): a token that an attacker
    obtained for the anonymous session is worthless afterwards. ``session`` is the live session:
    ``sessions.session_of(model)`` on the typed door, ``request_session(request).live()`` on the
    classic one. Return the token to an SPA, or render it in the page the login leads to.
    """
    session.set_state(STATE_KEY, None)
    return issue_token(session)


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
        """The dependency: nothing for safe methods and WebSockets; else the checks, or ``CsrfError``."""
        if request.scope["type"] != "http" or request.scope["method"] in SAFE_METHODS:
            return
        problem = self._site_problem(request) or await self._token_problem(request)
        if problem is not None:
            security_log.warning(
                "CSRF check failed for %s %s: %s", request.scope["method"], request.scope["path"], problem
            )
            raise CsrfError(problem)

    def _site_problem(self, request: HTTPConnection) -> str | None:
        headers = request.headers
        if headers.get("sec-fetch-site") == "cross-site":
            return _CROSS_SITE
        origin = headers.get("origin")
        if origin is None:  # not a browser, or an old one: the token decides alone
            return None
        origin = origin.lower()
        if origin in self.trusted_origins:
            return None
        scheme, _, host = origin.partition("://")
        own_host = headers.get("host", "").lower()
        # Behind a proxy that ends TLS the app may see http while the page was https.
        scheme_fits = scheme == "https" or (scheme == "http" and request.url.scheme == "http")
        return None if scheme_fits and host == own_host else _FOREIGN_ORIGIN

    async def _token_problem(self, request: HTTPConnection) -> str | None:
        secret = _secret(await self.session(request))
        if secret is None:
            return _UNISSUED
        sent = request.headers.get(self.header_name)
        if sent is None:
            media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media == "multipart/form-data" and not HAS_MULTIPART:
                return _MULTIPART.format(self.header_name)
            if media in _FORMS:
                assert isinstance(request, Request)  # noqa: S101 - an http scope's connection is one
                sent = await self._form_field(request, media)
        if not sent:
            return _MISSING.format(self.header_name, self.field_name)
        unmasked = unmask(sent)
        if unmasked is None:
            return _MALFORMED.format(self.header_name, self.field_name)
        return None if hmac.compare_digest(unmasked, secret) else _WRONG

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
