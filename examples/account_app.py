"""An account area built on sessions: login, CSRF, flash messages, guarded routes, re-authentication,
a list of the user's devices with "log out everywhere", and automatic ID rotation, on one typed session.

Usage:
    pip install -e . uvicorn
    python examples/account_app.py               # serves http://127.0.0.1:8000 (PORT=... to change)

    # a key of your own, rotation every 15 minutes (the default here), Redis instead of memory:
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    export SESSION_ROTATE_INTERVAL=900 SESSION_STORE_URL=redis://localhost:6379/0
    uvicorn --app-dir examples account_app:app

An SPA (or curl) first gets a CSRF token, then sends it in ``X-CSRF-Token`` with every POST:
    GET  /csrf                        {"token": ...}: a fresh mask of this session's CSRF secret
    POST /login?user=ada&password=... logs in (demo: the password is "demo"), new session ID and token
    GET  /                            who is logged in, the cart, and the flash messages (read once)
    POST /cart/{item}                 logged in only (401 otherwise; /docs shows the cookie scheme)
    GET  /account/sessions            the user's sessions: created, last seen, user agent, current
    POST /account/sessions/{id}/revoke   ends one of them
    POST /account/logout-everywhere   ends all but this one; needs a login at most 5 minutes old
    POST /logout                      ends the session; a flash message says so on the next page

With curl (which, recent enough, returns the Secure cookie to 127.0.0.1):
    curl -s -c jar -b jar http://127.0.0.1:8000/csrf          # copy the token it prints
    curl -c jar -b jar -X POST -H "X-CSRF-Token: <token>" 'http://127.0.0.1:8000/login?user=ada&password=demo'
"""

import os
import secrets
import sys
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from fastapi_sessions import ActiveSession, CsrfProtect, SessionManager, SessionSettings


class UserSession(BaseModel):
    """The app's own data; who is logged in is kept by the library (``sessions.users.login``)."""

    user: str | None = None
    cart: list[str] = []


def load_settings() -> SessionSettings:
    """``SESSION_*`` from the environment; a throwaway key when none is set, and ID rotation every 15
    minutes unless ``SESSION_ROTATE_INTERVAL`` says otherwise."""
    defaults: dict[str, object] = {}
    if not os.environ.get("SESSION_SECRET_KEY"):
        print("warning: SESSION_SECRET_KEY is not set; using a random key.", file=sys.stderr)
        defaults["secret_key"] = secrets.token_urlsafe(32)
    if "SESSION_ROTATE_INTERVAL" not in os.environ:
        defaults["rotate_interval"] = 900
    return SessionSettings(**defaults)


sessions = SessionManager(UserSession, settings=load_settings())
csrf = CsrfProtect(sessions)
app = FastAPI(title="fastapi_sessions account example", dependencies=[Depends(csrf)])
sessions.install(app)

Session = Annotated[UserSession, Depends(sessions.get_session)]
LoggedIn = Annotated[UserSession, Depends(sessions.require_login)]
RecentLogin = Annotated[UserSession, Depends(sessions.require_fresh(login_within=timedelta(minutes=5)))]


@app.get("/csrf")
async def csrf_endpoint(token: Annotated[str, Depends(csrf.token)]) -> dict[str, str]:
    """The token an SPA sends back in ``X-CSRF-Token``; a new mask on every call."""
    return {"token": token}


@app.post("/login")
async def login(user: str, password: str, session: Session, request: Request) -> dict[str, str]:
    """Check the password, then one call does the rest: new ID, the user bound, when and from what.

    The CSRF secret of the anonymous session ends with it: fetch ``/csrf`` again.
    """
    if not secrets.compare_digest(password, "demo"):  # your password check goes here
        raise HTTPException(403, "Wrong user name or password.")
    sessions.users.login(session, user, request)
    session.user = user
    sessions.flash(session, f"Welcome, {user}.", "success")
    return {"user": user}


@app.get("/")
async def home(session: Session) -> dict[str, object]:
    """The session and its flash messages; reading them takes them (the next page has none)."""
    messages = [{"category": f.category, "message": f.message} for f in sessions.flashes(session)]
    return {"user": session.user, "cart": session.cart, "messages": messages}


@app.post("/cart/{item}")
async def add(item: str, session: LoggedIn) -> list[str]:
    """Logged-in users only: anyone else gets a 401 saying so."""
    session.cart.append(item)
    return session.cart


@app.get("/account/sessions")
async def devices(session: LoggedIn) -> list[ActiveSession]:
    """Where this user is logged in; ``current`` marks this browser."""
    assert session.user is not None  # noqa: S101 - a logged-in session of this app has its user
    return await sessions.users.list_sessions(session.user, current=session)


@app.post("/account/sessions/{session_id}/revoke")
async def revoke(session_id: str, session: LoggedIn) -> dict[str, bool]:
    """End one of this user's sessions (a lost phone); a handle of another user's ends nothing."""
    assert session.user is not None  # noqa: S101
    return {"revoked": await sessions.users.revoke(session.user, session_id)}


@app.post("/account/logout-everywhere")
async def logout_everywhere(session: RecentLogin) -> dict[str, int]:
    """After a password change, say: every other session of the user ends. Asks for a recent login."""
    assert session.user is not None  # noqa: S101
    ended = await sessions.users.revoke_all(session.user, keep=session)
    sessions.flash(session, f"Logged out {ended} other session(s).")
    return {"ended": ended}


@app.post("/logout")
async def logout(session: Session) -> dict[str, bool]:
    """End the session (it leaves the user's list); the message lives in the next, anonymous one."""
    sessions.destroy(session)
    sessions.flash(session, "You are logged out.")
    return {"ok": True}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
