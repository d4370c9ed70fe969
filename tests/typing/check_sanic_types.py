"""Type-checked, never run by pytest: ``mypy --strict tests/typing`` must pass.

It proves from the consumer side that ``fastapi_sessions.sanic.install`` is typed by its ``model``:
the handle is a ``SanicSessions[SessionDict]`` without one and a ``SanicSessions[UserSession]`` with
one, whose operations then take a ``UserSession`` only. Nothing runs at import time.
"""

from __future__ import annotations

from pydantic import BaseModel
from sanic import Sanic
from typing_extensions import assert_type

from fastapi_sessions import SessionDict, SessionSettings
from fastapi_sessions.sanic import SanicSessions, install
from fastapi_sessions.stores import MemoryStore, SessionStore


class UserSession(BaseModel):
    user_id: int | None = None
    cart: list[str] = []


class OtherSession(BaseModel):
    theme: str = "light"


def build() -> None:
    plain = install(Sanic("typing_dict"))
    assert_type(plain, SanicSessions[SessionDict])
    typed = install(Sanic("typing_typed"), model=UserSession, backend=MemoryStore(), max_age=3600)
    assert_type(typed, SanicSessions[UserSession])
    settings = SessionSettings(secret_key="not-checked-by-mypy-" * 2)
    assert_type(
        install(Sanic("typing_settings"), model=OtherSession, settings=settings),
        SanicSessions[OtherSession],
    )


def operations(sessions: SanicSessions[UserSession], session: UserSession, other: OtherSession) -> None:
    sessions.regenerate(session)
    sessions.set_expiry(session, 3600)
    sessions.set_expiry(session, None)
    sessions.destroy(session)
    sessions.regenerate(other)  # type: ignore[arg-type]  # a session of another model is refused
    assert_type(sessions.store, SessionStore)
    assert_type(sessions.settings, SessionSettings)
