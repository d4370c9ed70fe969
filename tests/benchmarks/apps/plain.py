"""The floor: plain FastAPI, no sessions; the same routes answering the same bodies.

No ``from __future__ import annotations`` in the app modules: FastAPI must resolve the annotations of
routes defined inside ``build()``.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI

from apps import LOGIN, System


def _trivial() -> int:
    return 42


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read() -> dict[str, int]:
        return {"user": LOGIN["user_id"]}  # type: ignore[dict-item]

    @app.get("/write")
    async def write() -> dict[str, int]:
        return {"n": 2}

    @app.get("/login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    # Not one of the compared routes: what FastAPI's own Depends machinery costs (a sync dependency
    # returning a constant), for the profile of where a session dependency's time goes.
    @app.get("/depends")
    async def depends(value: Annotated[int, Depends(_trivial)]) -> dict[str, int]:
        return {"user": value}

    @app.get("/depends-async")
    async def depends_async(value: Annotated[int, Depends(_trivial_async)]) -> dict[str, int]:
        return {"user": value}

    return System(app)


async def _trivial_async() -> int:
    return 42
