"""Sessions in Redis: the store to scale out on (several workers, several machines).

Usage:
    pip install -e '.[redis]' uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSION_STORE_URL=redis://127.0.0.1:6379/0     # rediss://... for TLS
    uvicorn --app-dir examples redis_app:app --workers 2

On a Redis Cluster, name several of its nodes instead of SESSION_STORE_URL (see cluster_store)::

    export REDIS_CLUSTER_NODES=10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000

For a Sentinel-managed master, see docs/redis.md.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from redis.asyncio.cluster import ClusterNode, RedisCluster

from fastapi_sessions import SessionManager, SessionSettings
from fastapi_sessions.stores.redis import RedisStore


class ShopSession(BaseModel):
    user_id: int | None = None
    cart: list[str] = []


settings = SessionSettings(
    # Falls back to a local Redis so that `python -m examples.redis_app` works out of the box.
    store_url=os.environ.get("SESSION_STORE_URL", "redis://127.0.0.1:6379/0"),
    store_prefix=os.environ.get("SESSION_STORE_PREFIX", "shop:"),
)


def cluster_store(nodes: str) -> RedisStore:
    """A store on the Redis Cluster whose nodes are listed in ``nodes`` ("host:port,host:port,...").

    The client asks its start-up nodes in turn for the cluster's layout, so with several of them the
    app starts and serves while one is down; with a single one, that node is a single point of failure.
    """
    startup = [
        ClusterNode(host, int(port)) for host, _, port in (n.rpartition(":") for n in nodes.split(","))
    ]
    return RedisStore(RedisCluster(startup_nodes=startup), prefix=settings.store_prefix)


# Without REDIS_CLUSTER_NODES the URL builds a RedisStore; the manager owns its pool and closes it at
# shutdown. Either way nothing connects to Redis before the first request that needs a session.
cluster_nodes = os.environ.get("REDIS_CLUSTER_NODES")
sessions = SessionManager(
    ShopSession, settings=settings, store=cluster_store(cluster_nodes) if cluster_nodes else None
)

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
