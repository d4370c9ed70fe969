"""The PyPI ``fastapi-sessions`` (0.3.x, jordanisaacs) with its ``InMemoryBackend``, as its README shows.

Its top-level module is also named ``fastapi_sessions``: this runs only in a subprocess whose
``PYTHONPATH`` starts with the directory it was installed into (``pip install --target``).
"""

import os
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi_sessions.backends.implementations import InMemoryBackend
from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie
from fastapi_sessions.session_verifier import SessionVerifier
from pydantic import BaseModel

import fastapi_sessions
from apps import LOGIN, SECRET, System

_peer = os.environ.get("BENCH_PEER_PATH", "")
if not (_peer and os.path.realpath(fastapi_sessions.__file__).startswith(os.path.realpath(_peer))):
    raise RuntimeError(f"imported the wrong fastapi_sessions: {fastapi_sessions.__file__}")


class SessionData(BaseModel):
    user_id: int = 0
    name: str = ""
    role: str = ""
    theme: str = "light"
    counter: int = 0


class BasicVerifier(SessionVerifier[UUID, SessionData]):
    def __init__(
        self,
        *,
        identifier: str,
        auto_error: bool,
        backend: InMemoryBackend[UUID, SessionData],
        auth_http_exception: HTTPException,
    ) -> None:
        self._identifier = identifier
        self._auto_error = auto_error
        self._backend = backend
        self._auth_http_exception = auth_http_exception

    @property
    def identifier(self) -> str:
        return self._identifier

    @property
    def backend(self) -> InMemoryBackend[UUID, SessionData]:
        return self._backend

    @property
    def auto_error(self) -> bool:
        return self._auto_error

    @property
    def auth_http_exception(self) -> HTTPException:
        return self._auth_http_exception

    def verify_session(self, model: SessionData) -> bool:
        return True


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    cookie = SessionCookie(
        cookie_name="cookie",
        identifier="general_verifier",
        auto_error=True,
        secret_key=SECRET,
        cookie_params=CookieParameters(),
    )
    backend = InMemoryBackend[UUID, SessionData]()
    verifier = BasicVerifier(
        identifier="general_verifier",
        auto_error=True,
        backend=backend,
        auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
    )
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read", dependencies=[Depends(cookie)])
    async def read(data: Annotated[SessionData, Depends(verifier)]) -> dict[str, int]:
        return {"user": data.user_id}

    @app.get("/write")
    async def write(
        session_id: Annotated[UUID, Depends(cookie)], data: Annotated[SessionData, Depends(verifier)]
    ) -> dict[str, int]:
        data.counter += 1
        await backend.update(session_id, data)
        return {"n": data.counter}

    @app.get("/login")
    async def login(response: Response) -> dict[str, bool]:
        session = uuid4()
        await backend.create(session, SessionData(**LOGIN))
        cookie.attach_to_response(response, session)
        return {"ok": True}

    return System(app, lambda: len(backend.data), backend)
