"""A custom store: a wrapper that counts and logs every operation of the store it wraps.

A store is any object with the six async methods of ``fastapi_sessions.SessionStore``; nothing to
inherit. This one delegates each of them to another store, which makes it a template for caching,
metrics, tracing or fault-injection layers, and shows the protocol method by method.

Usage:
    pip install -e . uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    python examples/custom_store.py              # serves http://127.0.0.1:8000 (PORT=... to change)

    GET  /        shows the session (no cookie yet: no store call at all)
    POST /visit   counts a visit in the session
    GET  /stats   the store operations so far, by name (this route does not use the session)
    POST /reset   destroys the session

Run the shipped conformance suite against it (see tests/test_examples.py):

    class TestCountingStore(StoreConformance):
        @pytest.fixture
        async def store_harness(self):
            clock = FakeClock()
            yield StoreHarness(CountingStore(MemoryStore(clock=clock)), clock.time, fake_wait(clock))
"""

import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionStore
from fastapi_sessions.stores import MemoryStore, SessionChange, SessionRecord, WriteResult

log = logging.getLogger("examples.custom_store")


class CountingStore:
    """Delegates to ``inner``; counts each operation by name and logs it at DEBUG.

    Store keys are hashes of session IDs, so logging them hands out no cookie; a 12-character prefix
    is plenty to correlate log lines.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()

    def _note(self, operation: str, key: str) -> None:
        self.counts[operation] += 1
        log.debug("session store %s %s", operation, key[:12])

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        # The record, or None when absent or expired. With `touch`, also restart its TTL (to at most
        # meta.expires_at) without rewriting it: that is how the idle timeout slides.
        self._note("load", key)
        return await self.inner.load(key, touch=touch)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        # Only if `key` is free: OK, or EXISTS (never overwrite).
        self._note("create", key)
        return await self.inner.create(key, record, ttl=ttl)

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        # Only an existing record (MISSING otherwise: never resurrect); CONFLICT when `expected` is
        # given and a field it names holds another value; on OK the version goes up by one.
        self._note("update", key)
        return await self.inner.update(key, change, ttl=ttl, expected=expected)

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        # regenerate(): move the record with `change` applied, atomically; MISSING, EXISTS, CONFLICT.
        self._note("rename", old_key)
        return await self.inner.rename(old_key, new_key, change, ttl=ttl, expected=expected)

    async def delete(self, key: str) -> None:
        # Remove if present; deleting an absent key is fine.
        self._note("delete", key)
        await self.inner.delete(key)

    async def aclose(self) -> None:
        # The manager calls this only for stores it built from SESSION_STORE_URL; a store passed to
        # SessionManager(store=...) is yours to close (see the lifespan below).
        await self.inner.aclose()


class Visits(BaseModel):
    count: int = 0


store = CountingStore(MemoryStore())
sessions = SessionManager(Visits, store=store)  # SESSION_SECRET_KEY etc. from the environment


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await store.aclose()


app = FastAPI(title="fastapi_sessions: a custom store", lifespan=lifespan)
sessions.install(app)
Session = Annotated[Visits, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> Visits:
    return session


@app.post("/visit")
async def visit(session: Session) -> Visits:
    session.count += 1
    return session


@app.get("/stats")
async def stats() -> dict[str, int]:
    return dict(store.counts)


@app.post("/reset")
async def reset(session: Session) -> Visits:
    sessions.destroy(session)
    return session


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
