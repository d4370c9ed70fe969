"""Helpers for the tests of the Sanic door (import it after ``pytest.importorskip("sanic")``).

Two ways to serve a Sanic app in a test:

* :class:`Browser`, sanic-testing's ASGI client. It starts and stops the app around *every* request
  (its server listeners included), which is all most tests need.
* :func:`serving`, for tests about the server's life: the app is started once through the ASGI
  lifespan, serves any number of requests, and is stopped once, as a real server does it.
"""

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import httpx
from sanic import Sanic

with warnings.catch_warnings():
    # sanic-testing imports websockets.legacy, which websockets 14+ deprecates at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message="websockets.legacy")
    from sanic_testing.testing import SanicASGITestClient

__all__ = ["Browser", "new_app", "serving"]

# sanic-testing's client builds http:// URLs from relative paths; the session cookie is Secure, and
# httpx sends it back over https only.
ORIGIN = "https://mockserver"
# Sanic's own ASGI entry point. A sanic-testing client, once made, replaces Sanic.__call__ for every app
# with one that ignores the lifespan; this module is imported while the tests are collected, before.
_SANIC_CALL = Sanic.__call__


def new_app() -> Sanic[Any, Any]:
    """A Sanic app under a name of its own (Sanic keeps every app in a registry by name)."""
    return Sanic(f"t{uuid4().hex}", configure_logging=False)


class Browser:
    """sanic-testing's ASGI client of ``app`` over https, keeping its cookies across requests (one
    client per app: ``app.asgi_client`` is made once)."""

    def __init__(self, app: Sanic[Any, Any], origin: str = ORIGIN) -> None:
        self.client: SanicASGITestClient = app.asgi_client
        self.origin = origin

    @property
    def cookies(self) -> httpx.Cookies:
        return self.client.cookies

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        _, response = await self.client.request(method, self.origin + path, **kwargs)
        assert response is not None
        # A plain httpx response, read like every other test's (sanic-testing's makes .json a property).
        response.__class__ = httpx.Response
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def replay(self, path: str, cookie: str | bytes, name: str = "session") -> httpx.Response:
        """GET ``path`` with exactly this cookie, whatever the jar holds (bytes: sent as they are)."""
        self.cookies.clear()
        value = cookie if isinstance(cookie, bytes) else cookie.encode("latin-1")
        return await self.get(path, headers={"cookie": name.encode() + b"=" + value})


@asynccontextmanager
async def serving(app: Sanic[Any, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started once (ASGI lifespan), an https client for it, and the app stopped at the end."""
    # As sanic-testing sets it: at start-up Sanic then rewrites its own methods (TouchUp) from their
    # original code for each app, where outside test mode it rewrites them once, for the process.
    Sanic.test_mode = True
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def expect(kind: str) -> None:
        message = await outbox.get()
        assert message["type"] == kind, message

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    lifespan = asyncio.ensure_future(_SANIC_CALL(app, scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    await expect("lifespan.startup.complete")
    try:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await expect("lifespan.shutdown.complete")
        await lifespan
