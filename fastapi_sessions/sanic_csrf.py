"""CSRF protection for the Sanic door: ``protect(app)`` and ``csrf_token(request)``.

The same rules as the FastAPI door (``fastapi_sessions.csrfcheck``): a secret per session, a freshly
masked token per response, and unsafe requests refused with a 403 JSON answer unless they send a
token of their own session (the ``X-CSRF-Token`` header or the ``csrf_token`` form field) and come
from this site. Sanic reads forms itself: no python-multipart needed. At login, call
``rotate_csrf_token(sessions.session_of(request.ctx.session))`` (from ``fastapi_sessions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sanic import Request, Sanic

from .csrfcheck import FORMS, SAFE_METHODS, issue_token, secret_of, site_problem, token_problem
from .exceptions import SessionNotInstalledError
from .logs import security_log
from .sanic import _OUTERMOST, _SLOT, SanicSessions, _Answer

__all__ = ["csrf_token", "protect"]


def _sessions(app: Sanic[Any, Any]) -> SanicSessions[Any]:
    sessions: SanicSessions[Any] | None = getattr(app.ctx, _SLOT, None)
    if sessions is None:
        raise SessionNotInstalledError(
            "CSRF protection needs the sessions of the app: call fastapi_sessions.sanic.install(app) "
            "before fastapi_sessions.sanic_csrf.protect(app)."
        )
    return sessions


def csrf_token(request: Request[Any, Any]) -> str:
    """The token for this response, masked afresh on each call; a visitor without a session gets one
    (so a login form is protected too). Render it in forms, or return it to an SPA."""
    return issue_token(_sessions(request.app).session_of(request.ctx.session))


def protect(
    app: Sanic[Any, Any],
    *,
    header_name: str = "X-CSRF-Token",
    field_name: str = "csrf_token",
    trusted_origins: Iterable[str] = (),
) -> None:
    """Check every unsafe request of ``app`` (after ``install``): a 403 JSON answer when it fails.

    Args:
        app: The Sanic app, with ``fastapi_sessions.sanic.install(app)`` called already.
        header_name: The request header an SPA sends the token in.
        field_name: The form field (urlencoded or multipart) a form sends the token in.
        trusted_origins: Other origins (``"https://app.example.com"``) whose pages may send unsafe
            requests here; by default only this site's own.
    """
    sessions = _sessions(app)
    trusted = frozenset(origin.lower().rstrip("/") for origin in trusted_origins)

    async def check(request: Request[Any, Any]) -> _Answer | None:
        if request.method in SAFE_METHODS:
            return None
        headers = request.headers
        problem = site_problem(headers, https=request.scheme == "https", trusted=trusted)
        if problem is None:
            secret = secret_of(sessions.session_of(request.ctx.session))
            sent = headers.get(header_name)
            if sent is None and request.content_type.partition(";")[0].strip().lower() in FORMS:
                form = request.form  # parsed by Sanic from the body it read; cached for the handler
                sent = None if form is None else form.get(field_name)
            problem = token_problem(secret, sent, header_name, field_name)
        if problem is None:
            return None
        security_log.warning("CSRF check failed for %s %s: %s", request.method, request.path, problem)
        return _Answer(403, problem)

    # Right after the session loads, before the app's own request middleware.
    app.register_middleware(check, "request", priority=_OUTERMOST - 1)
