"""Log in, fill a cart, log out: typed sessions on the in-memory store, with no set-up at all.

Usage:
    pip install -e . uvicorn
    python examples/quickstart.py                # serves http://127.0.0.1:8000 (PORT=... to change)

    # or, as in production, with a key of your own and uvicorn's command line:
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn --app-dir examples quickstart:app

Then try the routes from a browser at http://localhost:8000/docs (Swagger UI), or with curl:
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

from fastapi import Depends, FastAPI, Query
from fastapi.responses import RedirectResponse
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


@app.post("/login")
async def login(
    user: Annotated[str, Query(min_length=1, max_length=64)], session: Session
) -> RedirectResponse:
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
