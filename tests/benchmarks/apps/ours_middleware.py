"""Ours through the classic door: ``SessionMiddleware`` and ``request.session``, as the docs show.

The same four routes as ``starlette_sm.py``, line for line: only the import differs. Defaults
everywhere but the key (so the cookie is ``Secure``: the in-process driver speaks https), and the
store: ``MemoryStore`` (the default) or ``RedisStore``, given as ``backend``.
"""

from typing import Any

from fastapi import FastAPI, Request

from apps import LOGIN, SECRET, System
from fastapi_sessions import SessionMiddleware


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    store: dict[str, Any] = {}
    if variant == "redis":
        from fastapi_sessions.stores.redis import RedisStore

        assert redis_url is not None
        store["backend"] = RedisStore.from_url(redis_url)
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, **store)

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

    def held() -> int:
        """Sessions in the MemoryStore the middleware made (it exists once the app has run)."""
        layer: Any = app.middleware_stack
        while not isinstance(layer, SessionMiddleware):
            layer = layer.app
        return len(layer.store)  # type: ignore[arg-type]

    return System(app, None if variant == "redis" else held, store.get("backend"))
