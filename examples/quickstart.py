"""Log in, fill a cart, log out: typed sessions on the in-memory store, with no set-up at all.

Usage:
    pip install -e . uvicorn
    python examples/quickstart.py                # serves http://127.0.0.1:8000 (PORT=... to change)

    # or, as in production, with a key of your own and uvicorn's command line:
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn --app-dir examples quickstart:app

Then log in from a browser at http://localhost:8000/login, try the routes at http://localhost:8000/docs
(Swagger UI), or use curl:
    GET  /login              a login form for browsers; it posts the name as a form field
    POST /login?user=alice   regenerates the session ID, stores the user, redirects (303) to /
    POST /cart/{item}        appends to the cart
    GET  /                   shows the session
    POST /logout             destroys the session and expires the cookie, redirects to /

The cookie is ``Secure`` by default, and stays so here. Browsers treat http://localhost as a secure
origin, so the demo works there; recent curl versions (7.88 checked) do the same for localhost and
127.0.0.1, so a cookie jar works:
    curl -c jar -b jar -X POST 'http://127.0.0.1:8000/login?user=alice'
    curl -c jar -b jar -X POST http://127.0.0.1:8000/cart/apple
    curl -b jar http://127.0.0.1:8000/
If yours does not send the cookie back, carry it by hand: -H 'Cookie: session=<value from Set-Cookie>'.
Do not turn ``SESSION_COOKIE_SECURE`` off to make curl happy: it would be off in production too.
"""

import os
import secrets
import sys
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings


class UserSession(BaseModel):
    """What this app keeps per browser. Every field has a default: a new session starts empty."""

    user: str | None = None
    cart: list[str] = []


def load_settings() -> SessionSettings:
    """``SESSION_*`` from the environment; a throwaway key when ``SESSION_SECRET_KEY`` is not set."""
    if os.environ.get("SESSION_SECRET_KEY"):
        return SessionSettings()
    print(
        "warning: SESSION_SECRET_KEY is not set; using a random key, so sessions won't survive a restart.",
        file=sys.stderr,
    )
    return SessionSettings(secret_key=secrets.token_urlsafe(32))


# SESSION_STORE_URL defaults to memory://: sessions live in this process only.
sessions = SessionManager(UserSession, settings=load_settings())
app = FastAPI(title="fastapi_sessions quickstart")
sessions.install(app)
Session = Annotated[UserSession, Depends(sessions.get_session)]


@app.get("/")
async def show(session: Session) -> UserSession:
    """Reading the session writes nothing, and a visitor without a session gets no cookie."""
    return session


LOGIN_PAGE = """<!doctype html>
<title>Log in</title>
<form method="post" action="/login">
  <label>Name <input name="user" required maxlength="64"></label>
  <button>Log in</button>
</form>
"""


@app.get("/login", response_class=HTMLResponse)
async def login_page() -> str:
    """A plain HTML form: what a browser user sees first."""
    return LOGIN_PAGE


async def user_name(
    request: Request, user: Annotated[str | None, Query(min_length=1, max_length=64)] = None
) -> str:
    """The name from ``?user=`` (curl, /docs) or from the login page's form field.

    The form is read with the standard library (it is URL-encoded), so the demo needs no
    python-multipart; an app that has it would declare ``user: Annotated[str, Form()]``.
    """
    if user is None:
        user = parse_qs((await request.body()).decode(errors="replace")).get("user", [""])[0]
        if not 1 <= len(user) <= 64:
            raise HTTPException(422, "Give a user name of 1 to 64 characters.")
    return user


@app.post("/login")
async def login(user: Annotated[str, Depends(user_name)], session: Session) -> RedirectResponse:
    """A privilege change: regenerate the ID so that a session ID known before login is worthless."""
    # A real app checks a password here.
    sessions.regenerate(session)
    session.user = user
    # The new cookie rides on the redirect: the hook adds it to whatever response goes out.
    return RedirectResponse("/", status_code=303)


@app.post("/cart/{item}")
async def add_to_cart(item: str, session: Session) -> dict[str, list[str]]:
    """Nested mutation is detected: no need to reassign ``session.cart``."""
    session.cart.append(item)
    return {"cart": session.cart}


@app.post("/logout")
async def logout(session: Session) -> RedirectResponse:
    """Delete the record and expire the cookie; the old cookie is worthless from now on."""
    sessions.destroy(session)
    return RedirectResponse("/", status_code=303)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
