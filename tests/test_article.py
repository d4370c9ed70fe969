"""The article's three snippets run with only the imports renamed and a strong key: its middleware
app (on FastAPI and on plain Starlette), ``RedisBackend(host=..., port=..., db=...)``, and a custom
``Backend`` subclass with async ``read``, ``write``, ``destroy`` and ``clear``."""

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fastapi_sessions import SessionMiddleware
from fastapi_sessions.backends import Backend
from fastapi_sessions.backends.memory import MemoryBackend

from .conftest import SECRET

pytestmark = pytest.mark.anyio


class DictBackend(Backend):
    """The article's custom store: subclass Backend, implement four async methods."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def read(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    async def write(self, key: str, data: dict[str, Any], ttl: int) -> None:
        self.data[key] = data

    async def destroy(self, key: str) -> None:
        self.data.pop(key, None)

    async def clear(self) -> None:
        self.data.clear()


def fastapi_app(backend: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        SessionMiddleware, backend=backend, cookie_https_only=False, secret_key=SECRET, max_age=3600
    )

    @app.get("/login")
    async def login(request: Request) -> dict[str, str]:
        request.session["username"] = "Alice"
        request.session["user_id"] = 1
        return {"message": "Logged in"}

    @app.get("/profile")
    async def profile(request: Request) -> dict[str, Any]:
        return {"user_id": request.session.get("user_id"), "username": request.session.get("username")}

    @app.get("/logout")
    async def logout(request: Request) -> dict[str, str]:
        request.session.clear()
        return {"message": "Logged out"}

    return app


def starlette_app(backend: Any) -> Starlette:
    async def login(request: Request) -> Response:
        request.session["username"] = "Alice"
        request.session["user_id"] = 1
        return JSONResponse({"message": "Logged in"})

    async def profile(request: Request) -> Response:
        return JSONResponse(
            {"user_id": request.session.get("user_id"), "username": request.session.get("username")}
        )

    async def logout(request: Request) -> Response:
        request.session.clear()
        return JSONResponse({"message": "Logged out"})

    app = Starlette(routes=[Route("/login", login), Route("/profile", profile), Route("/logout", logout)])
    app.add_middleware(
        SessionMiddleware, backend=backend, cookie_https_only=False, secret_key=SECRET, max_age=3600
    )
    return app


@pytest.fixture(params=["memory", "redis", "custom"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryBackend()
    elif request.param == "custom":
        yield DictBackend()
    else:
        pytest.importorskip("redis")
        from fastapi_sessions.backends.redis import RedisBackend

        url = urlsplit(request.getfixturevalue("redis_server_url"))
        prefix = request.getfixturevalue("redis_prefix")  # our own keys, removed afterwards
        redis_backend = RedisBackend(
            host=url.hostname or "localhost",
            port=url.port or 6379,
            db=int(url.path[1:] or 0),
            prefix=prefix,
        )
        yield redis_backend
        await redis_backend.aclose()


@pytest.mark.parametrize("build", [fastapi_app, starlette_app], ids=["fastapi", "starlette"])
async def test_the_articles_app_logs_in_reads_and_logs_out(
    build: Callable[[Any], Any], backend: Any
) -> None:
    transport = httpx.ASGITransport(build(backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/profile")).json() == {"user_id": None, "username": None}
        assert (await client.get("/login")).json() == {"message": "Logged in"}
        cookie = client.cookies["session"]
        assert (await client.get("/profile")).json() == {"user_id": 1, "username": "Alice"}
        logout = await client.get("/logout")
        assert "Max-Age=0" in logout.headers["set-cookie"]
        client.cookies.clear()
        replay = await client.get("/profile", headers={"cookie": f"session={cookie}"})
        assert replay.json() == {"user_id": None, "username": None}, "logout really ended it"


async def test_the_custom_backend_holds_one_record_per_session_and_none_after_logout() -> None:
    backend = DictBackend()
    transport = httpx.ASGITransport(fastapi_app(backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get("/login")
        (record,) = backend.data.values()
        assert record["session"] == {"username": "Alice", "user_id": 1}
        await client.get("/logout")
    assert backend.data == {}
