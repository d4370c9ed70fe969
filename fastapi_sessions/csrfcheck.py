"""The CSRF rules that every door applies: which requests are checked, what makes one fail, and the
message that says so; issuing and rotating a session's token.

The doors (``fastapi_sessions.csrf`` for FastAPI and Starlette, ``fastapi_sessions.sanic_csrf``) only
read the request (method, headers, form field) and answer the problems named here with a 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .csrftokens import STATE_KEY, mask, new_secret, read_secret, unmask
from .exceptions import SessionStoreUnavailable

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "FORMS",
    "SAFE_METHODS",
    "issue_token",
    "rotate_csrf_token",
    "secret_of",
    "site_problem",
    "token_problem",
    "unreadable_form",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that must not change anything, and are never checked (RFC 9110, 9.2.1)."""

_HOW = "Send the token the page was given in the {} header, or in the {} field of a form."
_CROSS_SITE = (
    "CSRF check failed: the browser says this request comes from another site (Sec-Fetch-Site: "
    "cross-site), which may not send unsafe requests here. Send it from a page of this site."
)
_FOREIGN_ORIGIN = (
    "CSRF check failed: the Origin header names another site. Send the request from a page of this "
    "site, or add that origin to trusted_origins."
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
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_UNVERIFIABLE = (
    "The session store is unavailable (SESSION_ON_STORE_ERROR=degrade), so the CSRF token of this "
    "request cannot be checked; the request is refused with a 503. Retry it later."
)
_MULTIPART = (
    "CSRF check failed: a multipart form can only be read with python-multipart installed "
    "(pip install python-multipart). Install it, or send the token in the {} header."
)


def secret_of(session: Session[Any]) -> bytes | None:
    """The session's secret, None if it has none. A degraded session (the store is down and
    SESSION_ON_STORE_ERROR=degrade) cannot tell: ``SessionStoreUnavailable``, a 503, not a 403."""
    if session.degraded:
        raise SessionStoreUnavailable(_UNVERIFIABLE)
    return read_secret(session.state.get(STATE_KEY))


def issue_token(session: Session[Any]) -> str:
    """A masked token for this response, creating the session's secret (and the session) if needed."""
    secret = secret_of(session)
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


def site_problem(headers: Mapping[str, str], *, https: bool, trusted: frozenset[str]) -> str | None:
    """Why the browser's own headers say this unsafe request comes from another site; None if not.

    ``headers`` is the request's, read case-insensitively; ``https`` whether the app saw HTTPS;
    ``trusted`` other origins allowed, lowercase and without a trailing slash.
    """
    if headers.get("sec-fetch-site") == "cross-site":
        return _CROSS_SITE
    origin = headers.get("origin")
    if origin is None:  # not a browser, or an old one: the token decides alone
        return None
    origin = origin.lower()
    if origin in trusted:
        return None
    scheme, _, host = origin.partition("://")
    # Behind a proxy that ends TLS the app may see http while the page was https.
    scheme_fits = scheme == "https" or (scheme == "http" and not https)
    return None if scheme_fits and host == headers.get("host", "").lower() else _FOREIGN_ORIGIN


def token_problem(secret: bytes | None, sent: str | None, header_name: str, field_name: str) -> str | None:
    """Why ``sent`` (from the header or the form field) does not prove this session; None if it does.

    ``secret`` is the session's (``secret_of``). Compared in constant time.
    """
    if secret is None:
        return _UNISSUED
    if not sent:
        return _MISSING.format(header_name, field_name)
    unmasked = unmask(sent)
    if unmasked is None:
        return _MALFORMED.format(header_name, field_name)
    return None if hmac.compare_digest(unmasked, secret) else _WRONG


def unreadable_form(header_name: str) -> str:
    """The problem of a multipart form that cannot be read without python-multipart."""
    return _MULTIPART.format(header_name)
