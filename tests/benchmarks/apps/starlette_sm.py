"""Starlette's ``SessionMiddleware`` (signed-cookie sessions), as its docs show it."""

from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

from apps import LOGIN, SECRET, System


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        return {"user": request.session["user_id"]}

    @app.get("/write")
    async def write(request: Request) -> dict[str, int]:
        request.session["counter"] = request.session["counter"] + 1
        return {"n": request.session["counter"]}

    @app.get("/login")
    async def login(request: Request) -> dict[str, bool]:
        request.session.update(LOGIN)
        return {"ok": True}

    return System(app)
