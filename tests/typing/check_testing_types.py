"""Type-checked, never run by pytest: ``mypy --strict tests/typing`` must pass.

It proves from the consumer side that ``seed_session`` returns ``None`` for Starlette's ``TestClient``
(called as is) and a coroutine for an ``httpx.AsyncClient`` (mypy reports one left unawaited), with
the manager or the app.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.testclient import TestClient
from typing_extensions import assert_type

from fastapi_sessions import SessionManager
from fastapi_sessions.testing import seed_session


class UserSession(BaseModel):
    user: str | None = None


def seeded_in_a_sync_test(app: FastAPI, sessions: SessionManager[UserSession]) -> None:
    client = TestClient(app, base_url="https://testserver")  # (`with` makes it Any for Starlette 1.x)
    assert_type(seed_session(client, sessions, UserSession(user="alice")), None)
    assert_type(seed_session(client, app, {"user": "alice"}, cookie_name="session"), None)


async def seeded_in_an_async_test(app: FastAPI, sessions: SessionManager[UserSession]) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="https://testserver"
    ) as client:
        pending = seed_session(client, sessions, UserSession(user="alice"))
        await assert_type(pending, Coroutine[Any, Any, None])
        await seed_session(client, app, {"user": "alice"})
