"""Starting a test with a session in place (a logged-in user, a full cart), the way the app makes one.

``seed_session`` creates the session through the door's own engine (its store, namespace, keys and
cookie attributes) and puts the cookie the app would have sent into the client's cookie jar: the
client's next request is that session, and the routes can regenerate, destroy or change it as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel
from starlette.applications import Starlette

from ..dictsession import SessionDict
from ..engine import SessionEngine
from ..exceptions import SessionNotInstalledError, SessionUsageError
from ..hook import SessionHook
from ..manager import SessionManager
from ..middleware import SessionMiddleware
from ..session import Session

if TYPE_CHECKING:
    import httpx
    from starlette.testclient import TestClient

__all__ = ["seed_session"]

Door = SessionManager[Any] | Starlette
SessionData = BaseModel | Mapping[str, Any]
# Middleware wrap one another through `.app`; a chain longer than this is not a middleware stack.
_MAX_DEPTH = 100


# TestClient first: Starlette 1.x types it as a subclass of Any (its httpx import is conditional),
# which would match the AsyncClient overload too.
@overload
def seed_session(
    client: TestClient, door: Door, data: SessionData, *, cookie_name: str | None = None
) -> None: ...


@overload
def seed_session(
    client: httpx.AsyncClient, door: Door, data: SessionData, *, cookie_name: str | None = None
) -> Coroutine[Any, Any, None]: ...


def seed_session(
    client: TestClient | httpx.AsyncClient,
    door: Door,
    data: SessionData,
    *,
    cookie_name: str | None = None,
) -> Coroutine[Any, Any, None] | None:
    """Start ``client`` off with a stored session holding ``data``: its next request is that session.

    The door's own engine creates the session in its store (its namespace, keys and lifetime), and
    the cookie the app would send goes into the client's jar; the routes can then regenerate, destroy
    or change it as in production. With Starlette's ``TestClient`` it runs on the client's event loop
    (inside ``with TestClient(app)``, where a Redis store's connections live) and returns when done;
    with an ``httpx.AsyncClient``, await it.

        with TestClient(app, base_url="https://testserver") as client:
            seed_session(client, sessions, UserSession(user="alice"))

        async with httpx.AsyncClient(transport=..., base_url="https://testserver") as client:
            await seed_session(client, app, {"user": "alice"})

    Args:
        client: The test client whose next requests carry the session.
        door: The ``SessionManager`` (typed sessions), or the app, for ``SessionMiddleware`` (a typed
            door installed in the app is found too).
        data: An instance of the manager's model, or a dict of JSON values for ``request.session``.
        cookie_name: Which door, when the app has several (their ``SESSION_COOKIE_NAME``).

    Raises:
        SessionUsageError: The cookie is ``Secure`` and the client's base URL is not https (the
            client would never send it), ``data`` is not what the door stores, or the app has
            several doors and no ``cookie_name`` says which.
        SessionNotInstalledError: The app has no session door.
    """
    import httpx

    engine = _engine_of(door, cookie_name)
    _check_can_send(client, engine)
    if isinstance(client, httpx.AsyncClient):
        return _seed_async(client, engine, data)
    portal = client.portal
    if portal is not None:  # inside `with TestClient(app)`: the app's own event loop
        cookie = portal.call(_create, engine, data)
    else:
        from anyio.from_thread import start_blocking_portal

        with start_blocking_portal(**client.async_backend) as portal:  # as each request of it does
            cookie = portal.call(_create, engine, data)
    _into_jar(client, cookie)
    return None


async def _seed_async(client: httpx.AsyncClient, engine: SessionEngine[Any], data: SessionData) -> None:
    _into_jar(client, await _create(engine, data))


async def _create(engine: SessionEngine[Any], data: SessionData) -> bytes:
    """Create a session holding ``data`` as a request would; the ``Set-Cookie`` value."""
    session: Session[Any] = Session(engine, ())
    fresh = await session.load()  # a new session: no cookie, no store call
    if isinstance(fresh, SessionDict):
        if not isinstance(data, Mapping):
            raise SessionUsageError(
                f"This door keeps request.session, a dict: seed it with a dict of JSON values, not a "
                f"{type(data).__name__}."
            )
        fresh.update(data)  # checked as request.session checks it
        current = engine.codec.snapshot(fresh)
    else:
        if not isinstance(data, type(fresh)):
            raise SessionUsageError(
                f"This door's sessions are {type(fresh).__name__} models: seed it with "
                f"{type(fresh).__name__}(...), not a {type(data).__name__}."
            )
        current = engine.codec.snapshot(data)
    session.set_expiry(None)  # the default lifetime, and a record even for data at its defaults
    cookie = await session.commit(current)
    assert cookie is not None  # a created session always sends its cookie
    return cookie


def _engine_of(door: Door, cookie_name: str | None) -> SessionEngine[Any]:
    """The engine of the door ``door`` is or has, the one using ``cookie_name`` if given."""
    if isinstance(door, SessionManager):
        engines = [door.engine]
    elif isinstance(door, Starlette):
        engines = _engines_in(door)
    else:
        raise SessionUsageError(
            f"seed_session needs the SessionManager or the app (for SessionMiddleware), not {door!r}."
        )
    if cookie_name is not None:
        engines = [engine for engine in engines if engine.settings.cookie_name == cookie_name]
    if len(engines) == 1:
        return engines[0]
    if not engines:
        which = "" if cookie_name is None else f" with the cookie name {cookie_name!r}"
        raise SessionNotInstalledError(
            f"No session door{which} in this app: add SessionMiddleware to it, or install the "
            "SessionManager with sessions.install(app) and pass the manager to seed_session."
        )
    names = sorted(engine.settings.cookie_name for engine in engines)
    raise SessionUsageError(
        f"This app has {len(engines)} session doors (cookie names {names}): pass cookie_name= to "
        "seed_session to say which one to seed."
    )


def _engines_in(app: Starlette) -> list[SessionEngine[Any]]:
    """The engines of the session doors in ``app``'s middleware stack, outermost first."""
    if app.middleware_stack is None:  # as Starlette does at the app's first request
        app.middleware_stack = app.build_middleware_stack()
    found: list[SessionEngine[Any]] = []
    node: object = app.middleware_stack
    for _ in range(_MAX_DEPTH):
        if isinstance(node, SessionHook | SessionMiddleware):
            found.append(node.engine)
        node = getattr(node, "app", None)
        if node is None:
            break
    return found


def _check_can_send(client: TestClient | httpx.AsyncClient, engine: SessionEngine[Any]) -> None:
    """Refuse to seed a Secure cookie into a client that would never send it."""
    if engine.settings.cookie_secure and client.base_url.scheme != "https":
        raise SessionUsageError(
            f"The session cookie is Secure (SESSION_COOKIE_SECURE), and a client on "
            f"{client.base_url.scheme}://{client.base_url.host} never sends it back: create the client "
            'with base_url="https://testserver".'
        )


def _into_jar(client: TestClient | httpx.AsyncClient, cookie: bytes) -> None:
    """Put the cookie into the client's jar as if the app had sent it in answer to the client (so the
    jar applies the cookie's own attributes: Path, Secure, Max-Age)."""
    # The client's own flavour of httpx: Starlette's TestClient uses the httpx2 fork where installed.
    flavour = sys.modules[type(client.cookies).__module__.partition(".")[0]]
    request = flavour.Request("GET", client.base_url)
    response = flavour.Response(200, headers=[(b"set-cookie", cookie)], request=request)
    client.cookies.extract_cookies(response)
