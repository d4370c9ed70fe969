"""The article's app, with only its imports renamed and a real key.

The article imported ``pselfastapise_async.session.SessionMiddleware`` and
``pselfastapise_async.backends.memory.MemoryBackend``, and used the placeholder key
``"your-super-secret-key"``, which this library refuses at start-up. The key comes from the
environment here; nothing else is changed.

Usage:
    pip install -e . uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn --app-dir examples article_app:app

    GET /login     stores username and user_id in request.session
    GET /profile   reads them back
    GET /logout    request.session.clear(): the stored session is deleted, the cookie expired

``cookie_https_only=False``, as in the article, lets the cookie travel over plain http: keep it for
local development only (the default is a Secure cookie).
"""

import os

from fastapi import FastAPI, Request

from fastapi_sessions import SessionMiddleware
from fastapi_sessions.backends.memory import MemoryBackend

app = FastAPI()
app.add_middleware(
    SessionMiddleware,
    backend=MemoryBackend(),
    cookie_https_only=False,
    secret_key=os.environ.get("SESSION_SECRET_KEY"),
    max_age=3600,
)


@app.get("/login")
async def login(request: Request) -> dict[str, str]:
    request.session["username"] = "Alice"
    request.session["user_id"] = 1
    return {"message": "Logged in as Alice"}


@app.get("/profile")
async def profile(request: Request) -> dict[str, object]:
    user_id = request.session.get("user_id")
    if user_id is None:
        return {"error": "Not logged in"}
    return {"user_id": user_id, "username": request.session.get("username")}


@app.get("/logout")
async def logout(request: Request) -> dict[str, str]:
    request.session.clear()
    return {"message": "Logged out"}
