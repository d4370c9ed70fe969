"""A tiny app for tests/test_redis_workers.py, run by uvicorn with several worker processes.

All configuration comes from the environment (``SESSION_STORE_URL``, ``SESSION_STORE_PREFIX``,
``SESSION_SECRET_KEY``, ``SESSION_COOKIE_SECURE``), as in a deployed app.
"""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` alias.

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionManager


class WorkerSession(BaseModel):
    value: str | None = None


sessions = SessionManager(WorkerSession)
app = FastAPI()
sessions.install(app)
Session = Annotated[WorkerSession, Depends(sessions.get_session)]


@app.post("/set/{value}")
async def set_value(value: str, session: Session) -> dict[str, str | int | None]:
    session.value = value
    return {"value": session.value, "pid": os.getpid()}


@app.get("/get")
async def get_value(session: Session) -> dict[str, str | int | None]:
    return {"value": session.value, "pid": os.getpid()}
