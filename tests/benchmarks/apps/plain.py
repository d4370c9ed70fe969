"""The floors: plain FastAPI without sessions, and the same with one trivial dependency.

``plain`` answers the same bodies as the session systems with no session at all. ``plain-depends``
takes, on ``/read`` and ``/write``, one ``async def`` dependency that returns a constant (and, like
``get_session``, receives the ``HTTPConnection``): what FastAPI charges any design that hands the
session over through ``Depends()``. It is its own app, with the routes in the same order, because the
position of a route in the table costs time too (each route before it is tried first).

No ``from __future__ import annotations`` in the app modules: FastAPI must resolve the annotations of
routes defined inside ``build()``.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from apps import LOGIN, System


async def _trivial(connection: HTTPConnection) -> int:
    return LOGIN["user_id"]  # type: ignore[return-value]


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    if variant == "depends":

        @app.get("/read")
        async def read_depends(value: Annotated[int, Depends(_trivial)]) -> dict[str, int]:
            return {"user": value}

        @app.get("/write")
        async def write_depends(value: Annotated[int, Depends(_trivial)]) -> dict[str, int]:
            return {"n": 2}

    else:

        @app.get("/read")
        async def read() -> dict[str, int]:
            return {"user": LOGIN["user_id"]}  # type: ignore[dict-item]

        @app.get("/write")
        async def write() -> dict[str, int]:
            return {"n": 2}

    @app.get("/login")
    async def login() -> dict[str, bool]:
        return {"ok": True}

    return System(app)
