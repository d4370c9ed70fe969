"""Sessions in Redis: the store to scale out on (several workers, several machines).

Usage:
    pip install -e '.[redis]' uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSION_STORE_URL=redis://127.0.0.1:6379/0     # rediss://... for TLS
    uvicorn --app-dir examples redis_app:app --workers 2

Or hand the store a client you manage yourself (Sentinel master, Redis Cluster)::

    from redis.asyncio.cluster import RedisCluster
    from fastapi_sessions.stores.redis import RedisStore

    store = RedisStore(RedisCluster(host="10.0.0.1", port=7000), prefix="shop:")
    sessions = SessionManager(ShopSession, store=store)
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings


class ShopSession(BaseModel):
    user_id: int | None = None
    cart: list[str] = []


settings = SessionSettings(
    # Falls back to a local Redis so that `python -m examples.redis_app` works out of the box.
    store_url=os.environ.get("SESSION_STORE_URL", "redis://127.0.0.1:6379/0"),
    store_prefix=os.environ.get("SESSION_STORE_PREFIX", "shop:"),
)
# The URL builds a RedisStore; the manager owns its pool and closes it at shutdown. Nothing
# connects to Redis before the first request that needs a session.
sessions = SessionManager(ShopSession, settings=settings)

app = FastAPI(title="fastapi_sessions on Redis")
sessions.install(app)
Session = Annotated[ShopSession, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> ShopSession:
    """One Redis command: the read, with the rolling expiry refreshed in the same script."""
    return session


@app.post("/login/{user_id}")
async def login(user_id: int, session: Session) -> RedirectResponse:
    """Regenerate (one atomic script), then redirect: the cookie rides on the redirect."""
    sessions.regenerate(session)
    session.user_id = user_id
    return RedirectResponse("/", status_code=303)


@app.post("/cart/{item}")
async def add(item: str, session: Session) -> dict[str, list[str]]:
    """Read plus one write; only the changed field is sent to Redis."""
    session.cart.append(item)
    return {"cart": session.cart}


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
