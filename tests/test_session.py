"""The per-request session as one object: loaded once, closed when the response starts, never losing a
late change without a word, and one rule for failures (logged once, ID collisions, dead records)."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse

from fastapi_sessions import SessionManager, SessionUsageError
from fastapi_sessions.session import LATE_CHANGE
from fastapi_sessions.stores import MemoryStore, SessionChange, SessionRecord, WriteResult
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import TestClient, UserSession, make_app, make_settings

pytestmark = pytest.mark.anyio


class CollidingStore(RecordingStore):
    """A store whose every new key is taken, as if the random source repeated itself."""

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        self._enter("create", key)
        return WriteResult.EXISTS

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        self._enter("rename", new_key)
        return WriteResult.EXISTS


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


@pytest.fixture
def sessions(store: RecordingStore, clock: FakeClock) -> SessionManager[UserSession]:
    return SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)


def late_app(sessions: SessionManager[UserSession]) -> FastAPI:
    """The quickstart's app plus routes that touch the session after the response started."""
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/stream/again")
    async def stream_again(request: Request, session: Session) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            again = await sessions.get_session(request)
            yield b"same" if again is session else b"reloaded"
            again.cart.append("late")

        return StreamingResponse(body())

    @app.get("/stream/first")
    async def stream_first(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            session = await sessions.get_session(request)
            yield ",".join(session.cart).encode()
            session.cart.append("late")

        return StreamingResponse(body())

    @app.get("/background/change")
    async def background_change(session: Session, tasks: BackgroundTasks) -> dict[str, bool]:
        def later() -> None:
            session.user_id = 99

        tasks.add_task(later)
        return {"ok": True}

    @app.get("/background/regenerate")
    async def background_regenerate(session: Session, tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(sessions.regenerate, session)
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: Session) -> None:
        await websocket.accept()
        again = await sessions.get_session(websocket)
        await websocket.send_json({"same": again is session, "cart": session.cart})
        session.cart.append("late")
        await websocket.close()

    return app


@pytest.fixture
async def client(sessions: SessionManager[UserSession]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(late_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        yield c


def late_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage() == LATE_CHANGE]


async def test_get_session_again_in_a_streaming_body_returns_the_same_session_without_reloading(
    client: httpx.AsyncClient, store: RecordingStore, sessions: SessionManager[UserSession]
) -> None:
    await client.post("/cart/a")
    store.reset()
    response = await client.get("/stream/again")
    assert response.text == "same"
    assert store.calls["load"] == 1, "the session is loaded once per request"
    assert sessions.live == {}, "the request's session left the registry"


async def test_change_in_a_streaming_body_is_not_saved_and_says_so(
    client: httpx.AsyncClient, store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/cart/a")
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await client.get("/stream/again")
    assert len(late_warnings(caplog)) == 1
    assert (await client.get("/me")).json()["cart"] == ["a"]


async def test_session_first_asked_for_in_a_streaming_body_reads_and_reports_its_lost_change(
    client: httpx.AsyncClient,
    store: RecordingStore,
    sessions: SessionManager[UserSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await client.post("/cart/a")
    store.reset()
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        response = await client.get("/stream/first")
    assert response.text == "a", "the session can still be read"
    assert store.writes() == 0
    assert len(late_warnings(caplog)) == 1
    assert sessions.live == {}


async def test_change_in_a_background_task_is_not_saved_and_says_so(
    client: httpx.AsyncClient, store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/cart/a")
    store.reset()
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await client.get("/background/change")
    assert store.writes() == 0
    assert late_warnings(caplog) == [LATE_CHANGE]
    assert "before the endpoint returns" in LATE_CHANGE, "the warning names the fix"
    assert (await client.get("/me")).json()["user_id"] is None


async def test_regenerate_in_a_background_task_is_refused_with_the_fix(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/cart/a")
    with pytest.raises(SessionUsageError, match=r"regenerate\(\) was called after the response started"):
        await client.get("/background/regenerate")


async def test_unchanged_and_changed_requests_log_no_late_change_warning(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        await client.post("/cart/a")
        await client.get("/me")
        await client.post("/login/7")
        await client.post("/logout")
    assert late_warnings(caplog) == []


def test_websocket_after_accept_gets_the_same_session_and_its_late_change_is_reported(
    sessions: SessionManager[UserSession], caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(late_app(sessions), base_url="https://testserver") as client:
        client.post("/cart/a")
        cookie = {"cookie": f"session={client.cookies['session']}"}  # ws:// would not send a Secure one
        with (
            caplog.at_level(logging.WARNING, logger="fastapi_sessions"),
            client.websocket_connect("/ws", headers=cookie) as ws,
        ):
            assert ws.receive_json() == {"same": True, "cart": ["a"]}
        assert client.get("/me").json()["cart"] == ["a"]
    assert late_warnings(caplog) == [LATE_CHANGE]
    assert sessions.live == {}


async def test_degrade_serves_the_read_only_session_when_deleting_a_dead_record_fails(
    store: RecordingStore, clock: FakeClock
) -> None:
    sessions = SessionManager(
        UserSession, settings=make_settings(on_store_error="degrade"), store=store, clock=clock
    )
    transport = httpx.ASGITransport(make_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        await client.post("/cart/a")
        key = store.keys[-1][1]
        await store.inner.update(key, SessionChange({"cart": b"5"}), ttl=100)  # no longer fits
        store.failing = {"delete"}
        response = await client.get("/me")
    assert response.status_code == 200
    assert response.json() == {"user_id": None, "cart": [], "prefs": {}}
    assert "set-cookie" not in response.headers


async def test_failing_dead_record_delete_still_answers_503_by_default(
    store: RecordingStore, clock: FakeClock
) -> None:
    sessions = SessionManager(UserSession, settings=make_settings(), store=store, clock=clock)
    transport = httpx.ASGITransport(make_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        await client.post("/cart/a")
        key = store.keys[-1][1]
        await store.inner.update(key, SessionChange({"cart": b"5"}), ttl=100)
        store.failing = {"delete"}
        assert (await client.get("/me")).status_code == 503


async def test_a_store_failure_at_commit_is_logged_once_at_error(
    client: httpx.AsyncClient, store: RecordingStore, caplog: pytest.LogCaptureFixture
) -> None:
    await client.post("/cart/a")
    store.failing = {"update"}
    with caplog.at_level(logging.ERROR, logger="fastapi_sessions"):
        response = await client.post("/cart/b")
    assert response.status_code == 503
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "update a session" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("path", "operation"), [("/cart/a", "create a session"), ("/login/7", "regenerate a session")]
)
async def test_id_collisions_answer_503_with_a_security_error_for_creation_and_regeneration(
    clock: FakeClock, path: str, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    inner = MemoryStore(clock=clock)
    sessions = SessionManager(UserSession, settings=make_settings(), store=inner, clock=clock)
    transport = httpx.ASGITransport(make_app(sessions))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        await client.post("/cart/seed")
        if path == "/cart/a":  # a new session: creation
            client.cookies.clear()
        sessions.engine.store = CollidingStore(inner)
        with caplog.at_level(logging.WARNING):
            response = await client.post(path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "set-cookie" not in response.headers
    collisions = [r for r in caplog.records if r.name == "fastapi_sessions.security"]
    assert [r.getMessage() for r in collisions] == [
        "Session ID collision; the random source may be broken"
    ] * 3
    assert any(operation in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert len(inner) == 1, "nothing was written"


async def test_registry_is_empty_after_a_request_whose_endpoint_raised(
    sessions: SessionManager[UserSession],
) -> None:
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/boom")
    async def boom(session: Session) -> None:
        session.user_id = 1
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        assert (await client.get("/boom")).status_code == 500
    assert sessions.live == {}
