"""starsessions (2.x): its ``SessionMiddleware`` with ``InMemoryStore`` or ``RedisStore``.

As its README shows: the middleware with a store and a 14-day lifetime, and ``await load_session()`` in
the views that use the session (its lazy mode: ``/bare`` never loads).
"""

from typing import Any

from fastapi import FastAPI, Request
from starsessions import InMemoryStore, SessionMiddleware, load_session

from apps import LOGIN, System


def build(variant: str | None, redis_url: str | None, **options: Any) -> System:
    if variant == "redis":
        from redis.asyncio import Redis
        from starsessions.stores.redis import RedisStore

        assert redis_url is not None
        store: Any = RedisStore(connection=Redis.from_url(redis_url))
    else:
        store = InMemoryStore()
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, lifetime=3600 * 24 * 14)

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        await load_session(request)
        return {"user": request.session["user_id"]}

    @app.get("/write")
    async def write(request: Request) -> dict[str, int]:
        await load_session(request)
        request.session["counter"] = request.session["counter"] + 1
        return {"n": request.session["counter"]}

    @app.get("/login")
    async def login(request: Request) -> dict[str, bool]:
        await load_session(request)
        request.session.update(LOGIN)
        return {"ok": True}

    store_len = None if variant == "redis" else (lambda: len(store.data))
    return System(app, store_len, store)
