"""Ours: ``SessionManager`` with ``MemoryStore`` (the default store), ``RedisStore`` or ``PostgresStore``,
as the docs show; ``memory-encrypted``: MemoryStore with encryption at rest
(``SESSION_ENCRYPTION_KEYS``)."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from apps import LOGIN, MODEL, SECRET, System
from fastapi_sessions import SessionManager, SessionSettings

POSTGRES_URL = "postgresql:///test?host=/var/run/postgresql&table=bench_sessions"
"""The PostgreSQL store's URL without BENCH_POSTGRES_URL: the local socket, a table of its own."""
# A fixed AES-256 key, for the benchmark only (urlsafe base64 of bytes 0..31).
ENCRYPTION_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


class Prefs(BaseModel):
    theme: str = "light"
    language: str = "en"
    page_size: int = 20


class RealisticSession(BaseModel):
    """Shaped like the README's cart app: scalars, two lists and a nested model."""

    user_id: int = 0
    name: str = ""
    email: str = ""
    roles: list[str] = []
    cart: list[str] = []
    prefs: Prefs = Prefs()
    counter: int = 0


class FlatSession(BaseModel):
    user_id: int = 0
    name: str = ""
    role: str = ""
    theme: str = "light"
    counter: int = 0


BenchSession = RealisticSession if MODEL == "realistic" else FlatSession


def build(variant: str | None, redis_url: str | None, clock: Any = None, **options: Any) -> System:
    # Defaults everywhere (cookie_secure=True: the driver speaks https), only the key is given.
    settings = SessionSettings(secret_key=SECRET)
    if variant == "memory-encrypted":
        settings = SessionSettings(secret_key=SECRET, encryption_keys=[ENCRYPTION_KEY])
    store = None
    if variant == "redis":
        from fastapi_sessions.stores.redis import RedisStore

        assert redis_url is not None
        store = RedisStore.from_url(redis_url)
    elif variant == "postgres":
        from fastapi_sessions.stores.postgres import PostgresStore

        store = PostgresStore.from_url(os.environ.get("BENCH_POSTGRES_URL") or POSTGRES_URL)
    elif clock is not None:
        from fastapi_sessions.stores.memory import MemoryStore

        store = MemoryStore(clock=clock)
    sessions = SessionManager(BenchSession, settings=settings, store=store, clock=clock)
    app = FastAPI(lifespan=_lifespan(store) if variant == "postgres" else None)
    sessions.install(app)
    Session = Annotated[BenchSession, Depends(sessions.get_session)]

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: Session) -> dict[str, int]:
        return {"user": session.user_id}

    @app.get("/write")
    async def write(session: Session) -> dict[str, int]:
        session.counter += 1
        return {"n": session.counter}

    @app.get("/login")
    async def login(session: Session) -> dict[str, bool]:
        for name, value in LOGIN.items():
            setattr(session, name, Prefs(**value) if name == "prefs" else value)
        return {"ok": True}

    inner = getattr(sessions.store, "inner", sessions.store)  # under an EncryptedStore
    store_len = None if variant in ("redis", "postgres") else (lambda: len(inner))
    return System(app, store_len, sessions.store)


def _lifespan(store: Any) -> Any:
    """Create the PostgreSQL store's table at start-up and close its pool at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.create_table()
        yield
        await store.aclose()

    return lifespan
