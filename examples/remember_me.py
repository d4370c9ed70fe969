"""A "remember me" login: a persistent cookie for 30 days, an idle timeout for every session.

Usage:
    pip install -e . uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    python examples/remember_me.py               # serves http://127.0.0.1:8000 (PORT=... to change)

    POST /login?user=alice                 a browser-session cookie: gone when the browser closes
    POST /login?user=alice&remember=true   a cookie with Max-Age: 30 days, across browser restarts
    GET  /                                 shows the session
    POST /logout                           destroys the session, expires the cookie

How the three limits combine:
    SESSION_MAX_AGE (30 days here)     the absolute lifetime of every session, counted from its
                                       creation; set_expiry() is capped by it, so it must be at least
                                       as long as the longest "remember me".
    SESSION_IDLE_TIMEOUT (7 days here) a session unused for this long ends on the server, remembered
                                       or not; every request that reads it restarts the window.
    set_expiry(session, 30 days)       makes the cookie persistent (Max-Age) and sets this session's
                                       own deadline; without it the cookie dies with the browser.
"""

import os
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings

REMEMBER_FOR = timedelta(days=30)


class Account(BaseModel):
    user: str | None = None
    remembered: bool = False


# SESSION_SECRET_KEY (and any other SESSION_* variable) comes from the environment; these two are
# part of the app's design, so they are fixed here (keyword arguments win over the environment).
settings = SessionSettings(
    max_age=int(REMEMBER_FOR.total_seconds()),
    idle_timeout=int(timedelta(days=7).total_seconds()),
)
sessions = SessionManager(Account, settings=settings)
app = FastAPI(title="fastapi_sessions: remember me")
sessions.install(app)
Session = Annotated[Account, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> Account:
    return session


@app.post("/login")
async def login(
    user: Annotated[str, Query(min_length=1, max_length=64)],
    session: Session,
    remember: bool = False,
) -> RedirectResponse:
    sessions.regenerate(session)  # a privilege change: always a new ID
    session.user = user
    session.remembered = remember
    # Always say which: None turns a cookie remembered by an earlier login back into a
    # browser-session cookie.
    sessions.set_expiry(session, REMEMBER_FOR if remember else None)
    return RedirectResponse("/", status_code=303)


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
