"""``SessionDict``, the classic doors' session data: a dict of JSON values with the session operations,
and its codec; plus the corners of the per-request ``Session`` that only a dict door reaches."""

from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket

from fastapi_sessions import (
    SessionDict,
    SessionMiddleware,
    SessionStoreUnavailable,
    SessionUsageError,
    request_session,
)
from fastapi_sessions.dictsession import DictCodec, check_json
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import SECRET, TestClient, go_down

pytestmark = pytest.mark.anyio


def test_every_json_type_passes_the_check() -> None:
    check_json({"a": [1, 2.5, True, None, "x", {"b": []}]}, "v")


def test_the_check_names_the_path_of_a_bad_key_deep_inside() -> None:
    with pytest.raises(TypeError, match=r"v\['a'\]\[0\] has the key 1"):
        check_json({"a": [{1: 2}]}, "v")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (1, True),
        (0, False),
        (1, 1.0),
        (True, 1.0),
        ([1], [True]),
        ({"n": 0}, {"n": False}),
        ([1, 2], [1.0, 2]),
    ],
    ids=[
        "int-to-true",
        "int-to-false",
        "int-to-float",
        "true-to-float",
        "nested-list",
        "nested-dict",
        "floats",
    ],
)
def test_a_change_between_values_python_calls_equal_is_still_a_change(before: Any, after: Any) -> None:
    """1 == True == 1.0 in Python, not in JSON: the snapshots must tell them apart, or the change is
    silently not saved."""
    session = SessionDict({}, {"v": before})
    baseline = DictCodec.snapshot(session)
    session["v"] = after
    assert DictCodec.snapshot(session) != baseline
    assert DictCodec.encode("v", DictCodec.snapshot(session)["v"]) == DictCodec.encode("v", after)


def test_a_snapshot_does_not_change_when_the_data_does() -> None:
    session = SessionDict({}, {"cart": ["a"], "n": 1})
    baseline = DictCodec.snapshot(session)
    session["cart"].append("b")
    assert DictCodec.snapshot(session) != baseline
    assert baseline["cart"] != DictCodec.snapshot(session)["cart"]


def test_setdefault_returns_what_is_there_and_ior_checks_values() -> None:
    session = SessionDict({}, {"cart": ["a"]})
    assert session.setdefault("cart", []) == ["a"]
    session |= {"n": 1}
    assert session == {"cart": ["a"], "n": 1}
    with pytest.raises(TypeError, match="is a bytes"):
        session |= {"raw": b"x"}
    assert repr(session) == "SessionDict({'cart': ['a'], 'n': 1})"


def test_the_read_only_stand_in_refuses_every_change() -> None:
    session = DictCodec({}).new_read_only()
    changes: list[Any] = [
        lambda: session.__setitem__("a", 1),
        lambda: session.__delitem__("a"),
        lambda: session.pop("a"),
        session.popitem,
        lambda: session.setdefault("a", 1),
        lambda: session.update(a=1),
    ]
    for change in changes:
        with pytest.raises(SessionStoreUnavailable):
            change()


def test_a_stored_document_that_is_not_an_object_does_not_decode() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        DictCodec({}).decode(b"[1, 2]")


def test_reset_empties_in_place() -> None:
    session = SessionDict({}, {"a": 1})
    DictCodec.reset(session)
    assert session == {}


def app_with(store: RecordingStore, clock: FakeClock, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=store, clock=clock, secret_key=SECRET, **options)

    @app.post("/set")
    async def set_(request: Request) -> None:
        request.session["user"] = "alice"

    @app.post("/destroy-then-set")
    async def destroy_then_set(request: Request) -> None:
        request_session(request).destroy()
        request.session["flash"] = "bye"

    @app.get("/twice")
    async def twice(request: Request) -> bool:
        return request_session(request) is request.session

    @app.get("/outside")
    async def outside(request: Request) -> None:
        request_session(request)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()

    return app


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    from fastapi_sessions.stores import MemoryStore

    return RecordingStore(MemoryStore(clock=clock))


async def test_destroy_then_set_starts_a_new_session_under_a_new_id(
    store: RecordingStore, clock: FakeClock
) -> None:
    transport = httpx.ASGITransport(app_with(store, clock))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        await c.post("/set")
        old = c.cookies["session"]
        await c.post("/destroy-then-set")
        assert c.cookies["session"] != old
    assert store.calls["delete"] == 1
    assert store.calls["create"] == 2
    assert len(store.inner) == 1


async def test_request_session_outside_the_paths_says_why(store: RecordingStore, clock: FakeClock) -> None:
    transport = httpx.ASGITransport(app_with(store, clock, paths=["/set"]))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        with pytest.raises(SessionUsageError, match="not loaded on this path"):
            await c.get("/outside")


def test_a_websocket_whose_session_cannot_load_is_closed_with_1011(
    store: RecordingStore, clock: FakeClock
) -> None:
    from starlette.websockets import WebSocketDisconnect

    with TestClient(app_with(store, clock, cookie_secure=False)) as client:
        client.post("/set")
        cookie = {"cookie": f"session={client.cookies['session']}"}
        go_down(store)
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws", headers=cookie):
            pass
    assert closed.value.code == 1011


class YieldingStore(RecordingStore):
    """Suspends inside every load, as a store on the network does."""

    async def load(self, key: str, *, touch: float | None = None) -> Any:
        await anyio.lowlevel.checkpoint()
        return await super().load(key, touch=touch)


async def test_two_concurrent_loads_in_one_request_give_one_session(clock: FakeClock) -> None:
    from fastapi_sessions.session import Session
    from fastapi_sessions.stores import MemoryStore

    store = YieldingStore(MemoryStore(clock=clock))
    middleware = SessionMiddleware(app_with(store, clock), backend=store, clock=clock, secret_key=SECRET)
    transport = httpx.ASGITransport(app_with(store, clock))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
        await c.post("/set")
        headers = [(b"cookie", f"session={c.cookies['session']}".encode())]
    session = Session(middleware.engine, headers, middleware.live)
    results: list[Any] = []

    async def load() -> None:
        results.append(await session.load())

    async with anyio.create_task_group() as group:
        group.start_soon(load)
        group.start_soon(load)
    assert results == [{"user": "alice"}, {"user": "alice"}]
    assert results[0] is results[1], "the later load is dropped for the first one"
    assert await session.load() is results[0]
    assert list(middleware.live.values()) == [session]
    session.release()
    assert middleware.live == {}
