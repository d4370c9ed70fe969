"""Type-checked, never run by pytest: ``mypy --strict tests/typing/check_session_types.py`` must pass.

It proves from the consumer side that ``SessionManager`` is generic in the user's model: the dependency
returns that model, and ``Annotated[UserSession, Depends(...)]`` endpoints type-check. Not named
``test_*.py``, so pytest does not collect it; nothing runs at import time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from starlette.requests import HTTPConnection
from typing_extensions import assert_type

from fastapi_sessions import SessionManager, SessionSettings
from fastapi_sessions.stores import MemoryStore


class UserSession(BaseModel):
    user_id: int | None = None
    cart: list[str] = []


class OtherSession(BaseModel):
    theme: str = "light"


def needs_a_user_session_dependency(dependency: Callable[[HTTPConnection], Awaitable[UserSession]]) -> None:
    """Accepts only a dependency that resolves to a ``UserSession``."""


def build() -> FastAPI:
    sessions = SessionManager(UserSession)
    assert_type(sessions, SessionManager[UserSession])
    needs_a_user_session_dependency(sessions.get_session)
    assert_type(sessions.model, type[UserSession])

    configured = SessionManager(
        OtherSession,
        settings=SessionSettings(secret_key="not-checked-by-mypy-" * 2),
        store=MemoryStore(),
    )
    assert_type(configured, SessionManager[OtherSession])

    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/me")
    async def me(session: Session) -> UserSession:
        assert_type(session, UserSession)
        return session

    @app.post("/login/{user_id}")
    async def login(user_id: int, session: Session) -> RedirectResponse:
        sessions.regenerate(session)
        session.user_id = user_id
        return RedirectResponse("/me", status_code=303)

    @app.post("/cart/{item}")
    def add(item: str, session: Session) -> list[str]:
        session.cart.append(item)
        sessions.set_expiry(session, 3600)
        return session.cart

    @app.post("/logout")
    async def logout(session: Session) -> None:
        sessions.destroy(session)

    return app


async def direct_call(sessions: SessionManager[UserSession], connection: HTTPConnection) -> int | None:
    session = await sessions.get_session(connection)
    assert_type(session, UserSession)
    return session.user_id
