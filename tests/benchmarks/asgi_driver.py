"""A raw ASGI client: the scope dict built by hand, no HTTP client in between, browser-like cookies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

HOST = b"bench.example"


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def set_cookies(self) -> list[bytes]:
        return [value for name, value in self.headers if name.lower() == b"set-cookie"]


@dataclass
class CookieJar:
    """What a browser keeps for one host: name -> value, updated from every ``Set-Cookie``."""

    cookies: dict[bytes, bytes] = field(default_factory=dict)
    header: bytes | None = None

    def set_raw(self, name: str, value: str) -> None:
        """Hold this cookie as if a server had set it (for the floor's identical Cookie header)."""
        self.cookies[name.encode()] = value.encode()
        self.header = b"; ".join(n + b"=" + v for n, v in self.cookies.items())

    def update(self, response: Response) -> None:
        changed = False
        for raw in response.set_cookies():
            pair, _, attributes = raw.partition(b";")
            name, _, value = pair.strip().partition(b"=")
            lowered = attributes.lower()
            if b"max-age=0" in lowered or b"expires=thu, 01 jan 1970" in lowered:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
            changed = True
        if changed:
            self.header = b"; ".join(n + b"=" + v for n, v in self.cookies.items()) or None


class Client:
    """Drives one ASGI app in this event loop: lifespan once, then requests one at a time."""

    def __init__(self, app: Any, *, scheme: str = "https") -> None:
        self.app = app
        self.scheme = scheme
        self.state: dict[str, Any] = {}
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._lifespan = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

    async def stop(self) -> None:
        if self._lifespan is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        await self._lifespan

    async def get(self, path: str, cookie: bytes | None = None) -> Response:
        headers = [(b"host", HOST), (b"accept", b"*/*")]
        if cookie is not None:
            headers.append((b"cookie", cookie))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": self.scheme,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("bench.example", 443),
            "state": dict(self.state),
        }
        cycle = _Cycle(scope)
        await self.app(scope, cycle.receive, cycle.send)
        return Response(cycle.start["status"], list(cycle.start.get("headers", [])), b"".join(cycle.body))


class _Cycle:
    """One request as a server keeps it: like uvicorn's ``RequestResponseCycle``, it holds the scope,
    and its methods are the ``receive`` and ``send`` the app gets. A library that makes the scope
    point back at ``send`` thus makes a reference cycle here, as it would under uvicorn, and pays for
    it in garbage collection."""

    __slots__ = ("body", "received", "scope", "start")

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.received = False
        self.start: dict[str, Any] = {}
        self.body: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if self.received:
            return {"type": "http.disconnect"}
        self.received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.start.update(message)
        elif message["type"] == "http.response.body":
            self.body.append(message.get("body", b""))


class Browser:
    """One visitor: a client and its cookie jar. ``/login`` is always a new visitor (no cookie sent)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.jar = CookieJar()

    async def login(self) -> Response:
        response = await self.client.get("/login")
        self.jar.update(response)
        return response

    async def visit(self, path: str) -> Response:
        if path == "/login":
            return await self.client.get(path)
        response = await self.client.get(path, self.jar.header)
        self.jar.update(response)
        return response
