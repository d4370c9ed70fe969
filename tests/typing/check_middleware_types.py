"""Type-checked, never run by pytest: the middleware door type-checks from the consumer side.

``app.add_middleware(SessionMiddleware, ...)`` and ``Middleware(SessionMiddleware, ...)`` accept the
middleware with its keywords, and ``request_session`` hands back a ``SessionDict`` with the session
operations.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from typing_extensions import assert_type

from fastapi_sessions import SessionDict, SessionMiddleware, SessionSettings, request_session
from fastapi_sessions.stores import MemoryStore


def build() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=MemoryStore(), cookie_https_only=False, max_age=3600)

    @app.post("/login")
    async def login(request: Request) -> None:
        session = request_session(request)
        assert_type(session, SessionDict)
        session.regenerate()
        session["username"] = "Alice"
        session.set_expiry(timedelta(days=30))

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request.session.clear()

    return app


def starlette_app() -> Starlette:
    settings = SessionSettings(secret_key="not-checked-by-mypy-" * 2)
    return Starlette(middleware=[Middleware(SessionMiddleware, settings=settings, paths=["/app"])])
