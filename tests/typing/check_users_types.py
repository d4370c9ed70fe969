"""Type-checked, never run by pytest: ``mypy --strict tests/typing/check_users_types.py`` must pass.

It proves from the consumer side that the users helpers take each door's own session type: the typed
door's model, the classic door's ``SessionDict``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel
from typing_extensions import assert_type

from fastapi_sessions import (
    ActiveSession,
    SessionDict,
    SessionManager,
    SessionUsers,
    request_session,
    session_users,
)


class UserSession(BaseModel):
    cart: list[str] = []


sessions = SessionManager(UserSession)
app = FastAPI()
Session = Annotated[UserSession, Depends(sessions.get_session)]
assert_type(sessions.users, SessionUsers[UserSession])


@app.post("/login")
async def login(session: Session, request: Request) -> list[ActiveSession]:
    sessions.users.login(session, "alice", request)
    return await sessions.users.list_sessions("alice", current=session)


@app.post("/classic")
async def classic(request: Request) -> int:
    users = session_users(request)
    assert_type(users, SessionUsers[SessionDict])
    users.login(request_session(request), "alice", request)
    return await users.revoke_all("alice", keep=request_session(request))
