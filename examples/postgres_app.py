"""Sessions in PostgreSQL: the database your app has anyway, one row per session.

Usage:
    pip install -e '.[postgres]' uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSION_STORE_URL='postgresql://app:password@127.0.0.1:5432/app?purge_interval=300'
    python examples/postgres_app.py              # or: uvicorn --app-dir examples postgres_app:app

Run directly, it first checks that the server answers and explains what to do if it does not. The
table is created at start-up here for the demo's sake; in production create it once at deploy time
(``await store.create_table()``, or the DDL on the docs' PostgreSQL page). ``purge_interval=300``
removes expired rows every five minutes; without it, run ``store.purge_expired()`` from a cron job.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings, SessionStoreError
from fastapi_sessions.stores.postgres import PostgresStore

LOCAL = "postgresql:///test?host=/var/run/postgresql"
"""A server on this machine's socket, database ``test``: what the example uses without a URL."""


class ShopSession(BaseModel):
    user_id: int | None = None
    cart: list[str] = []


settings = SessionSettings(store_url=os.environ.get("SESSION_STORE_URL", LOCAL))
sessions = SessionManager(ShopSession, settings=settings)  # builds a PostgresStore from the URL


def postgres_store() -> PostgresStore:
    """The store the manager built: a PostgresStore, unless SESSION_STORE_URL names another."""
    if not isinstance(sessions.store, PostgresStore):
        raise SystemExit("This example needs SESSION_STORE_URL=postgresql://...")
    return sessions.store


store = postgres_store()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await store.create_table()  # idempotent; the manager closes the store's pool at shutdown
    yield


app = FastAPI(title="fastapi_sessions on PostgreSQL", lifespan=lifespan)
sessions.install(app)
Session = Annotated[ShopSession, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> ShopSession:
    """One statement: the read, with the idle timeout's rolling expiry in the same statement."""
    return session


@app.post("/login/{user_id}")
async def login(user_id: int, session: Session) -> RedirectResponse:
    """Regenerate (one statement moves the row to its new key), then redirect."""
    sessions.regenerate(session)
    session.user_id = user_id
    return RedirectResponse("/", status_code=303)


@app.post("/cart/{item}")
async def add(item: str, session: Session) -> dict[str, list[str]]:
    """Read plus one UPDATE that merges only the changed field into the row."""
    session.cart.append(item)
    return {"cart": session.cart}


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


async def server_answers() -> str:
    """'' when the store's server answers, else why not."""
    try:
        await store.stats()
    except SessionStoreError as exc:
        if "does not exist" in str(exc):  # the server answers; the table comes at start-up
            return ""
        return str(exc)
    finally:
        await store.aclose()
    return ""


if __name__ == "__main__":
    problem = asyncio.run(server_answers())
    if problem:
        print(
            f"{problem}\n\nThis example needs a PostgreSQL server. Point SESSION_STORE_URL at one, e.g.\n"
            "  export SESSION_STORE_URL='postgresql://user:password@127.0.0.1:5432/dbname'\n"
            "or start one (docker run -e POSTGRES_HOST_AUTH_METHOD=trust -p 5432:5432 postgres).",
            file=sys.stderr,
        )
        sys.exit(1)
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
