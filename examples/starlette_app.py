"""Both doors in a plain Starlette app (no FastAPI): a typed session and ``request.session``.

Usage:
    pip install -e . uvicorn
    export SESSION_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    uvicorn --app-dir examples starlette_app:app

Routes:
    POST /login?user=alice   typed session: regenerates the ID, stores the user, redirects (303) to /
    GET  /                   the typed session (user, visits: counted on every call)
    POST /logout             destroys the typed session, redirects to /
    POST /prefs/{theme}      request.session["theme"] = theme (the middleware door, cookie "prefs")
    GET  /prefs              request.session as it is

The two set-ups share one store but use two cookie names, ``session`` and ``prefs``: each opens only
its own sessions. The cookies are ``Secure``; browsers send them to http://localhost.
"""

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fastapi_sessions import SessionManager, SessionMiddleware, SessionSettings
from fastapi_sessions.stores import MemoryStore


class UserSession(BaseModel):
    """The typed session: every field has a default, so a new session starts empty."""

    user: str | None = None
    visits: int = 0


store = MemoryStore()
sessions = SessionManager(UserSession, store=store)


async def home(request: Request) -> Response:
    session = await sessions.get_session(request)
    session.visits += 1
    return JSONResponse({"user": session.user, "visits": session.visits})


async def login(request: Request) -> Response:
    session = await sessions.get_session(request)
    sessions.regenerate(session)
    session.user = request.query_params.get("user", "anonymous")
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    sessions.destroy(await sessions.get_session(request))
    return RedirectResponse("/", status_code=303)


async def set_theme(request: Request) -> Response:
    request.session["theme"] = request.path_params["theme"]
    return JSONResponse(dict(request.session))


async def prefs(request: Request) -> Response:
    return JSONResponse(dict(request.session))


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/prefs/{theme}", set_theme, methods=["POST"]),
        Route("/prefs", prefs),
    ],
    middleware=[
        Middleware(
            SessionMiddleware,
            backend=store,
            settings=SessionSettings(cookie_name="prefs"),
            paths=["/prefs"],
        )
    ],
)
sessions.install(app)
