"""Type-checked, never run by pytest: ``mypy --strict tests/typing`` must pass.

It proves from the consumer side that the guards answer the door's session type (the model, or a
``SessionDict``), that ``require_login`` and ``RequireLogin``, imported lazily by
``fastapi_sessions``, are the real objects to the type checker (not ``Any``), and that the flash
functions are typed.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from starlette.requests import HTTPConnection
from typing_extensions import assert_type

from fastapi_sessions import (
    Flash,
    FlashCategory,
    RequireLogin,
    SessionDict,
    SessionLoginRequired,
    SessionManager,
    get_flashed_messages,
    require_login,
)
from fastapi_sessions.exceptions import LoginProblem
from fastapi_sessions.guards import SessionGuard


class Cart(BaseModel):
    items: list[str] = []


sessions = SessionManager(Cart)
assert_type(sessions.require_login, SessionGuard[Cart])
assert_type(sessions.require_fresh(login_within=timedelta(minutes=5)), SessionGuard[Cart])
assert_type(require_login, RequireLogin)
assert_type(RequireLogin(used_within=60), RequireLogin)


async def guarded(connection: HTTPConnection) -> None:
    assert_type(await sessions.require_login(connection), Cart)
    assert_type(await require_login(connection), SessionDict)
    assert_type(get_flashed_messages(connection), list[str])
    assert_type(get_flashed_messages(connection, with_categories=True), list[tuple[FlashCategory, str]])


def flashes(cart: Cart) -> list[Flash]:
    sessions.flash(cart, "Saved", "success")
    return sessions.flashes(cart)


def problem(exc: SessionLoginRequired) -> LoginProblem:
    return exc.problem
