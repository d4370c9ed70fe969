"""A custom store in four methods: a ``Backend`` that keeps one JSON file per session.

Subclass ``fastapi_sessions.backends.Backend``, implement ``read``, ``write``, ``destroy`` and ``clear``,
and pass an instance as ``SessionManager(..., store=...)``: the manager wraps it in an adapter that
does the rest (versions, expiry, regenerate, a lock per session within the process). Each method
here is one file operation; for PostgreSQL each would be one statement on a table
``sessions (key text PRIMARY KEY, data jsonb, expires timestamptz)``, as docs/custom-store.md shows.

Like every ``Backend``, it keeps its concurrency promises within one process only: with several
worker processes, two requests of one session that write at the same time can lose a change (see
"What a whole-record backend gives up" in docs/custom-store.md).

Usage:
    pip install -e . uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSIONS_DIR=/tmp/sessions            # where the files go (default: ./sessions)
    python examples/custom_backend.py            # serves http://127.0.0.1:8000 (PORT=... to change)
    python examples/custom_backend.py clear      # logs everyone out: deletes every session file

    POST /login?user=alice   a new session ID (the old file is removed), the user stored
    POST /cart/{item}        adds an item to the cart
    GET  /                   shows the session
    POST /logout             destroys the session: its file is deleted, the cookie expired
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import CorruptRecordError, SessionManager
from fastapi_sessions.backends import Backend


class FileBackend(Backend):
    """``<directory>/<key>.json`` per session, holding ``{"expires": <epoch seconds>, "data": ...}``.

    The directory belongs to the sessions alone: ``clear()`` deletes every ``*.json`` in it. File
    operations block, so each method runs in a worker thread. Files of sessions nobody visits again
    stay until ``clear()`` or a sweep (``find DIR -name '*.json' -mmin +1440 -delete`` for a day).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # A key is 24 URL-safe base64 characters (a hash of the session ID): a safe file name.
        return self.directory / f"{key}.json"

    async def read(self, key: str) -> dict[str, Any] | None:
        return await anyio.to_thread.run_sync(self._read, key)

    def _read(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            expires = float(stored["expires"])
            data: dict[str, Any] = stored["data"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            # Not a file we wrote. CorruptRecordError is the one error that means "garbage, start a
            # new session" (the file is then destroyed); any other error is an outage (a 503).
            raise CorruptRecordError(f"{path.name} is not a session file ({exc!r})") from exc
        if expires <= time.time():  # past its ttl: nothing can write this key again, drop it
            path.unlink(missing_ok=True)
            return None
        return data

    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        await anyio.to_thread.run_sync(self._write, key, data, ttl)

    def _write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        # A new file renamed over the old one: a reader sees one or the other, never half a write.
        # mkstemp makes it readable by this user only.
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump({"expires": time.time() + ttl, "data": data}, file)
        os.replace(temporary, self._path(key))

    async def destroy(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._destroy, key)

    def _destroy(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def clear(self) -> None:
        await anyio.to_thread.run_sync(self._clear)

    def _clear(self) -> None:
        for path in self.directory.glob("*.json"):
            path.unlink(missing_ok=True)


class UserSession(BaseModel):
    user: str | None = None
    cart: list[str] = []


backend = FileBackend(os.environ.get("SESSIONS_DIR", "sessions"))
sessions = SessionManager(UserSession, store=backend)  # SESSION_SECRET_KEY etc. from the environment
app = FastAPI(title="fastapi_sessions: a custom backend")
sessions.install(app)
Session = Annotated[UserSession, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> UserSession:
    return session


@app.post("/login")
async def login(user: str, session: Session) -> RedirectResponse:
    sessions.regenerate(session)  # a new ID on every privilege change
    session.user = user
    return RedirectResponse("/", status_code=303)


@app.post("/cart/{item}")
async def add(item: str, session: Session) -> dict[str, list[str]]:
    session.cart.append(item)
    return {"cart": session.cart}


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    if sys.argv[1:] == ["clear"]:
        anyio.run(backend.clear)
        print(f"Deleted every session in {backend.directory}/")
    else:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
