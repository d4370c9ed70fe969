"""Log in, fill a cart, log out: server-side sessions in a Sanic app, as ``request.ctx.session``.

Usage:
    pip install -e '.[sanic]'
    python examples/sanic_app.py                 # serves http://127.0.0.1:8000 (PORT=... to change)

    # or, as in production, with a key of your own and Sanic's command line (from examples/):
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    cd examples && sanic sanic_app:app

Then, from a browser at http://localhost:8000/ or with curl:
    POST /login?user=alice   regenerates the session ID, stores the user, redirects (303) to /
    POST /cart/{item}        appends to the cart
    GET  /                   shows the session
    POST /logout             ends the session (record deleted, cookie expired), redirects to /

The session is a dict of JSON values; a nested change (``cart.append``) is saved without any call.
The cookie is ``Secure``; browsers, and recent curl versions, send it back to http://localhost:
    curl -c jar -b jar -X POST 'http://127.0.0.1:8000/login?user=alice'
    curl -c jar -b jar -X POST http://127.0.0.1:8000/cart/apple
    curl -b jar http://127.0.0.1:8000/
The sessions live in this process's memory: set SESSION_STORE_URL=redis://... to keep them in Redis
(pip install -e '.[sanic,redis]'), which every worker of a multi-worker server must do.
"""

import os
import secrets
import sys

from sanic import Request, Sanic
from sanic.exceptions import BadRequest
from sanic.response import HTTPResponse, json, redirect

from fastapi_sessions import SessionDict, SessionSettings
from fastapi_sessions.sanic import install


def load_settings() -> SessionSettings:
    """``SESSION_*`` from the environment; a throwaway key when ``SESSION_SECRET_KEY`` is not set."""
    if os.environ.get("SESSION_SECRET_KEY"):
        return SessionSettings()
    print(
        "warning: SESSION_SECRET_KEY is not set; using a random key, so sessions won't survive a restart.",
        file=sys.stderr,
    )
    return SessionSettings(secret_key=secrets.token_urlsafe(32))


app = Sanic("sanic_sessions_example")
# The store comes from SESSION_STORE_URL (memory:// by default), and is closed when the server stops.
sessions = install(app, settings=load_settings())


@app.get("/")
async def show(request: Request) -> HTTPResponse:
    """Reading the session writes nothing, and a visitor without a session gets no cookie."""
    session: SessionDict = request.ctx.session
    return json({"user": session.get("user"), "cart": session.get("cart", [])})


@app.post("/login")
async def login(request: Request) -> HTTPResponse:
    """A privilege change: regenerate the ID so that a session ID known before login is worthless."""
    user = request.args.get("user", "")
    if not 0 < len(user) <= 64:
        raise BadRequest("Pass ?user=<name> (1 to 64 characters).")
    # A real app checks a password here.
    session: SessionDict = request.ctx.session
    session.regenerate()
    session["user"] = user
    # The new cookie rides on the redirect: the door adds it to whatever response goes out.
    return redirect("/", status=303)


@app.post("/cart/<item:str>")
async def add_to_cart(request: Request, item: str) -> HTTPResponse:
    """Nested mutation is detected: the list is changed in place, and saved."""
    session: SessionDict = request.ctx.session
    cart: list[str] = session.setdefault("cart", [])
    cart.append(item)
    return json({"cart": cart})


@app.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    """``clear()`` ends the session: the record is deleted and the cookie expired."""
    request.ctx.session.clear()
    return redirect("/", status=303)


if __name__ == "__main__":
    # One process: the in-memory store lives in it (Sanic's default runs a separate worker).
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), single_process=True)
