"""Ours: ``SessionManager`` with ``MemoryStore`` (the default store) or ``RedisStore``, as the docs show;
``memory-encrypted``: MemoryStore with encryption at rest (``SESSION_ENCRYPTION_KEYS``)."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from apps import LOGIN, SECRET, System
from fastapi_sessions import SessionManager, SessionSettings

# A fixed AES-256 key, for the benchmark only (urlsafe base64 of bytes 0..31).
ENCRYPTION_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


class BenchSession(BaseModel):
    user_id: int = 0
    name: str = ""
    role: str = ""
    theme: str = "light"
    counter: int = 0


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
    elif clock is not None:
        from fastapi_sessions.stores.memory import MemoryStore

        store = MemoryStore(clock=clock)
    sessions = SessionManager(BenchSession, settings=settings, store=store, clock=clock)
    app = FastAPI()
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
            setattr(session, name, value)
        return {"ok": True}

    inner = getattr(sessions.store, "inner", sessions.store)  # under an EncryptedStore
    store_len = None if variant == "redis" else (lambda: len(inner))
    return System(app, store_len, sessions.store)
