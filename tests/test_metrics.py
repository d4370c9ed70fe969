"""OpenTelemetry metrics (SESSION_METRICS, the [otel] extra): each instrument moves after the action it
counts, through every door, read with the SDK's in-memory reader; nothing is imported or recorded
without the extra; attributes never carry a session's ID, key or user."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk.metrics", reason="needs the [otel] extra and the SDK")

from fastapi import Depends, FastAPI, Request
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)

from fastapi_sessions import SessionManager, SessionMiddleware, request_session
from fastapi_sessions import metrics as session_metrics_module
from fastapi_sessions.metrics import METER_NAME, SessionMetrics
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.stores.metered import MeteredStore, unwrapped
from fastapi_sessions.testing import (
    FakeClock,
    RecordingStore,
    StoreConformance,
    StoreHarness,
    fake_wait,
    session_cookie,
)

from .conftest import SECRET, UserSession, go_down, make_app, make_settings

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
Points = dict[tuple[str, frozenset[tuple[str, Any]]], float]


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """A fresh SDK MeterProvider with an in-memory reader, as the process' session metrics.

    The global provider can be set once per process; the doors built in a test take these metrics
    instead (the global path is tested in subprocesses below).
    """
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(session_metrics_module, "_shared", SessionMetrics(provider.get_meter(METER_NAME)))
    yield reader
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> Points:
    """Every data point of our meter: counters by value, histograms by count."""
    found: Points = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name != METER_NAME:
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = frozenset((point.attributes or {}).items())
                    if isinstance(point, HistogramDataPoint):
                        found[(metric.name, attributes)] = point.count
                    else:
                        assert isinstance(point, NumberDataPoint)
                        found[(metric.name, attributes)] = point.value
    return found


OPERATION = "fastapi_sessions.operation"


def value(found: Points, name: str, **attributes: str) -> float:
    """The point of ``fastapi_sessions.<name>`` with exactly these attributes (0 when absent):
    ``operation=``, ``phase=``, ``reason=`` are ``fastapi_sessions.*``, ``error=`` is ``error.type``."""
    names = {"error": "error.type"}
    key = frozenset((names.get(k, f"{METER_NAME}.{k}"), v) for k, v in attributes.items())
    return found.get((f"{METER_NAME}.{name}", key), 0)


def calls(found: Points, operation: str) -> float:
    """How many ``operation`` store calls the duration histogram recorded (successful ones)."""
    return value(found, "store.operation.duration", operation=operation)


def manager(store: Any, clock: FakeClock | None = None, **settings: Any) -> SessionManager[UserSession]:
    return SessionManager(UserSession, settings=make_settings(**settings), store=store, clock=clock)


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t")


@pytest.fixture
async def typed(reader: InMemoryMetricReader, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(make_app(manager(MemoryStore(clock=clock), clock))) as client:
        yield client


# -- the typed door ------------------------------------------------------------------------------


async def test_the_typed_door_counts_created_loaded_updated_and_destroyed_sessions(
    typed: httpx.AsyncClient, reader: InMemoryMetricReader
) -> None:
    await typed.post("/cart/apple")  # a new session
    found = points(reader)
    assert value(found, "sessions.created") == 1
    assert calls(found, "create") == 1
    assert value(found, "sessions.loaded") == 0

    await typed.get("/me")  # a plain read
    found = points(reader)
    assert value(found, "sessions.loaded") == 1
    assert calls(found, "load") == 1
    assert value(found, "sessions.updated") == 0

    await typed.post("/cart/pear")  # a change: loaded and rewritten
    found = points(reader)
    assert (value(found, "sessions.loaded"), value(found, "sessions.updated")) == (2, 1)
    assert calls(found, "update") == 1

    await typed.post("/login/7")  # regenerate: a rename is a rewrite too
    found = points(reader)
    assert value(found, "sessions.updated") == 2
    assert calls(found, "rename") == 1

    await typed.post("/logout")
    found = points(reader)
    assert value(found, "sessions.destroyed") == 1
    assert calls(found, "delete") == 1
    assert value(found, "sessions.created") == 1  # a destroyed session left unchanged starts none


async def test_a_request_without_a_session_records_nothing(
    typed: httpx.AsyncClient, reader: InMemoryMetricReader
) -> None:
    await typed.get("/bare")
    await typed.get("/me")  # no cookie: a new, unchanged session is never stored
    assert not any(count for count in points(reader).values())


# -- the classic door and Sanic ------------------------------------------------------------------


async def test_the_classic_door_counts_like_the_typed_one(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, backend=MemoryStore(clock=clock), clock=clock, secret_key=SECRET)

    @app.post("/count")
    async def count(request: Request) -> int:
        request.session["n"] = request.session.get("n", 0) + 1
        return int(request.session["n"])

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request_session(request).destroy()

    async with client_of(app) as client:
        for _ in range(3):
            await client.post("/count")
        await client.post("/logout")
    found = points(reader)
    assert value(found, "sessions.created") == 1
    assert value(found, "sessions.loaded") == 3
    assert value(found, "sessions.updated") == 2
    assert value(found, "sessions.destroyed") == 1
    assert calls(found, "load") == 3


async def test_the_sanic_door_counts_and_its_store_is_the_one_passed_in(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    pytest.importorskip("sanic")
    pytest.importorskip("sanic_testing")
    from sanic.request import Request as SanicRequest
    from sanic.response import HTTPResponse, text

    from fastapi_sessions.sanic import install

    from .sanic_support import new_app, serving

    store = MemoryStore(clock=clock)
    app = new_app()
    sessions = install(app, backend=store, clock=clock, secret_key=SECRET)
    assert sessions.store is store  # the door shows the store it was given, not the timing wrapper

    @app.post("/count")
    async def count(request: SanicRequest) -> HTTPResponse:
        request.ctx.session["n"] = request.ctx.session.get("n", 0) + 1
        return text(str(request.ctx.session["n"]))

    async with serving(app) as client:
        assert (await client.post("/count")).text == "1"
        assert (await client.post("/count")).text == "2"
    found = points(reader)
    assert (value(found, "sessions.created"), value(found, "sessions.loaded")) == (1, 1)
    assert value(found, "sessions.updated") == 1


# -- failures: 503, degraded, 409 ----------------------------------------------------------------


def closed_port() -> int:
    """A local TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_unreachable_counts_a_load_error_and_a_503(reader: InMemoryMetricReader) -> None:
    pytest.importorskip("redis")
    from fastapi_sessions.stores.redis import RedisStore

    store = RedisStore.from_url(f"redis://127.0.0.1:{closed_port()}", timeout=5)
    sessions = manager(store)
    try:
        async with client_of(make_app(sessions)) as client:
            client.cookies.set("session", session_cookie(sessions, "x" * 43))
            response = await client.get("/me")
    finally:
        await store.aclose()
    assert response.status_code == 503
    found = points(reader)
    assert value(found, "responses.unavailable", phase="load") == 1
    assert value(found, "responses.unavailable", phase="commit") == 0
    errors = [dict(key[1]) for key in found if key[0] == f"{METER_NAME}.store.errors"]
    assert len(errors) == 1
    operation, error = errors[0][OPERATION], errors[0]["error.type"]
    assert operation == "load"
    assert error.startswith("redis.exceptions.")  # the exception's class, fully qualified
    assert value(found, "store.errors", operation="load", error=error) == 1
    assert value(found, "store.operation.duration", operation="load", error=error) == 1  # timed too


async def test_a_store_failing_at_commit_counts_an_update_error_and_a_commit_503(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))  # the shipped double of a custom store
    async with client_of(make_app(manager(store, clock))) as client:
        await client.post("/cart/apple")
        store.failing = {"update"}
        assert (await client.post("/cart/pear")).status_code == 503
    found = points(reader)
    assert value(found, "responses.unavailable", phase="commit") == 1
    assert value(found, "store.errors", operation="update", error="ConnectionError") == 1
    assert value(found, "sessions.updated") == 0


@pytest.mark.parametrize(
    ("operation", "path", "seeded"),
    [("create", "/cart/apple", False), ("rename", "/login/7", True), ("delete", "/logout", True)],
)
async def test_each_failing_store_operation_is_counted_by_its_name(
    reader: InMemoryMetricReader, clock: FakeClock, operation: str, path: str, seeded: bool
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    async with client_of(make_app(manager(store, clock))) as client:
        if seeded:
            await client.post("/cart/apple")
        store.failing = {operation}
        assert (await client.post(path)).status_code == 503
    found = points(reader)
    assert value(found, "store.errors", operation=operation, error="ConnectionError") == 1
    assert value(found, "store.operation.duration", operation=operation, error="ConnectionError") == 1
    assert value(found, "responses.unavailable", phase="commit") == 1


async def test_degraded_answers_are_counted_and_are_no_503(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    async with client_of(make_app(manager(store, clock, on_store_error="degrade"))) as client:
        await client.post("/cart/apple")
        go_down(store)
        assert (await client.get("/me")).status_code == 200
    found = points(reader)
    assert value(found, "responses.degraded") == 1
    assert value(found, "responses.unavailable", phase="load") == 0
    assert value(found, "store.errors", operation="load", error="ConnectionError") == 1


async def test_a_409_is_counted_as_a_conflict(reader: InMemoryMetricReader, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    sessions = manager(store, clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/cart/{item}")
    async def add(item: str, session: Session) -> list[str]:
        session.cart.append(item)
        return session.cart

    @app.post("/vanish")
    async def vanish(session: Session) -> None:
        session.cart.append("lost")
        await store.clear()  # another request ended the session meanwhile

    async with client_of(app) as client:
        await client.post("/cart/apple")
        assert (await client.post("/vanish")).status_code == 409
    assert value(points(reader), "responses.conflict") == 1


# -- MemoryStore's evictions ---------------------------------------------------------------------


async def test_memory_store_evictions_and_reclaimed_expired_sessions_are_counted(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    store = MemoryStore(max_entries=3, clock=clock)
    async with client_of(make_app(manager(store, clock, max_age=600))) as client:
        for item in "abcd":  # four visitors, room for three
            client.cookies.clear()
            await client.post(f"/cart/{item}")
        assert value(points(reader), "sessions.evicted", reason="capacity") == 1
        clock.advance(601)  # all three expire; the next write reclaims them
        client.cookies.clear()
        await client.post("/cart/e")
    found = points(reader)
    assert value(found, "sessions.evicted", reason="expired") == 3
    assert value(found, "sessions.evicted", reason="capacity") == 1


async def test_evictions_are_counted_under_the_encryption_wrapper(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    """SESSION_ENCRYPTION_KEYS wraps the store the door is given; its evictions still count."""
    pytest.importorskip("cryptography")
    store = MemoryStore(max_entries=2, clock=clock)
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    sessions = manager(store, clock, encryption_keys=[key])
    from fastapi_sessions.stores.encrypted import EncryptedStore

    assert isinstance(unwrapped(sessions.engine.store), EncryptedStore)
    async with client_of(make_app(sessions)) as client:
        for item in "abc":
            client.cookies.clear()
            await client.post(f"/cart/{item}")
    assert value(points(reader), "sessions.evicted", reason="capacity") == 1


@pytest.mark.postgres
async def test_postgres_purges_are_counted_as_reclaimed_expired_sessions(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    pytest.importorskip("asyncpg")
    from fastapi_sessions.stores.postgres import PostgresStore

    from .postgres_support import asyncpg, postgres_schema

    async with postgres_schema() as (dsn, schema):
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            store = PostgresStore(pool, table=f"{schema}.sessions", clock=clock)
            await store.create_table()
            async with client_of(make_app(manager(store, clock, max_age=600))) as client:
                for item in "ab":
                    client.cookies.clear()
                    await client.post(f"/cart/{item}")
            clock.advance(601)
            assert await store.purge_expired() == 2
        finally:
            await pool.close()
    found = points(reader)
    assert value(found, "sessions.evicted", reason="expired") == 2
    assert value(found, "sessions.created") == 2


# -- what attributes hold ------------------------------------------------------------------------

ALLOWED_ATTRIBUTES = {OPERATION, "fastapi_sessions.phase", "fastapi_sessions.reason", "error.type"}


async def test_attributes_are_few_and_never_hold_an_id_a_key_or_a_user(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    store = RecordingStore(MemoryStore(clock=clock))
    async with client_of(make_app(manager(store, clock))) as client:
        await client.post("/cart/apple")
        await client.post("/login/4242")
        cookie = client.cookies["session"]
        await client.get("/me")
        go_down(store)
        await client.get("/me")
    keys = {key for _, key in store.keys}
    secrets = {cookie, cookie.split(".")[0], "4242", *keys}
    for (_, attributes), _count in points(reader).items():
        for name, text in attributes:
            assert name in ALLOWED_ATTRIBUTES
            assert not any(secret in str(text) for secret in secrets), (name, text)


# -- the wrapper keeps the store what it was ------------------------------------------------------


class TestMeteredStoreContract(StoreConformance):
    """The timing wrapper forwards every argument: the store it wraps keeps its contract."""

    @pytest.fixture
    async def store_harness(self, reader: InMemoryMetricReader) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        metrics = session_metrics_module.session_metrics("on")
        assert metrics is not None
        store = metrics.timed(MemoryStore(clock=clock))
        assert isinstance(store, MeteredStore)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


async def test_the_wrapper_hands_other_methods_to_the_store_it_wraps(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    store = MemoryStore(clock=clock)
    wrapped = manager(store, clock).engine.store
    assert isinstance(wrapped, MeteredStore)
    assert repr(wrapped) == f"MeteredStore({store!r})"
    await wrapped.clear()  # MemoryStore's own method, untimed
    assert calls(points(reader), "load") == 0


def test_off_leaves_the_store_unwrapped(reader: InMemoryMetricReader, clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    sessions = manager(store, clock, metrics="off")
    assert sessions.engine.metrics is None
    assert sessions.engine.store is store
    assert store.on_dropped is None
    on = manager(store, clock, metrics="on")
    assert unwrapped(on.engine.store) is store


async def test_a_store_without_expected_works_with_metrics_on_and_version_checks_still_refuse_it(
    reader: InMemoryMetricReader, clock: FakeClock
) -> None:
    class PlainStore(RecordingStore):
        """A custom store written before expected= existed."""

        async def update(self, key: str, change: Any, *, ttl: float) -> Any:  # type: ignore[override]
            return await super().update(key, change, ttl=ttl)

        async def rename(self, old_key: str, new_key: str, change: Any, *, ttl: float) -> Any:  # type: ignore[override]
            return await super().rename(old_key, new_key, change, ttl=ttl)

    store = PlainStore(MemoryStore(clock=clock))
    async with client_of(make_app(manager(store, clock))) as client:
        await client.post("/cart/apple")
        assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
    with pytest.raises(ValueError, match="expected="):
        manager(store, concurrency="version_check")


def test_a_store_without_the_user_index_is_named_as_itself(reader: InMemoryMetricReader) -> None:
    from fastapi_sessions import SessionConfigError

    from .broken_stores import RowStore

    sessions = manager(RowStore(FakeClock()))
    with pytest.raises(SessionConfigError, match="RowStore does not have it"):
        sessions.users._indexing()


# -- the global provider, OpenTelemetry absent (subprocesses: a fresh process each) ---------------


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"SESSION_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin", **env}
    return subprocess.run(  # our own interpreter on our own code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=environment,
    )


APP = """
    import asyncio, sys
    from typing import Annotated
    import httpx
    from fastapi import Depends, FastAPI
    from pydantic import BaseModel
    from fastapi_sessions import SessionManager

    class Cart(BaseModel):
        n: int = 0

    sessions = SessionManager(Cart)
    app = FastAPI()
    sessions.install(app)

    @app.post("/add")
    async def add(cart: Annotated[Cart, Depends(sessions.get_session)]) -> int:
        cart.n += 1
        return cart.n

    async def visit() -> None:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
            await client.post("/add")
            await client.post("/add")
"""

READ = """
    def read(reader):
        found = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if scope.scope.name == "fastapi_sessions":
                        points = metric.data.data_points
                        found[metric.name] = sum(getattr(p, "count", None) or p.value for p in points)
        return found
"""


STARLETTE_APP = """
    import asyncio, sys
    sys.modules["opentelemetry"] = None  # the [otel] extra is not installed
    import httpx
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from fastapi_sessions import SessionMiddleware

    async def add(request):
        request.session["n"] = request.session.get("n", 0) + 1
        return PlainTextResponse(str(request.session["n"]))

    routes = [Route("/add", add, methods=["POST"])]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware)])

    async def visit() -> None:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
            await client.post("/add")
            assert (await client.post("/add")).text == "2"
        return app.middleware_stack
"""


def test_without_opentelemetry_nothing_is_imported_or_recorded() -> None:
    """A Starlette app (recent FastAPI, 0.165 here, imports the OpenTelemetry API) with it blocked."""
    code = (
        textwrap.dedent(STARLETTE_APP)
        + """
stack = asyncio.run(visit())
while not isinstance(stack, SessionMiddleware):
    stack = stack.app
assert stack.engine.metrics is None, "metrics without OpenTelemetry"
assert stack.engine.store is stack.store, "the store was wrapped"
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry."))
assert not loaded, loaded
import fastapi_sessions.metrics as m
assert m._shared is None
print("ok")
"""
    )
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_metrics_on_without_opentelemetry_says_what_to_install() -> None:
    result = run(textwrap.dedent(STARLETTE_APP) + "\nasyncio.run(visit())\n", SESSION_METRICS="on")
    assert result.returncode != 0
    assert "ImportError: SESSION_METRICS=on needs the OpenTelemetry API: " in result.stderr
    assert "pip install 'pselfastapise-async[otel]'" in result.stderr


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_provider_set_before_or_after_the_app_is_built_gets_the_metrics(when: str) -> None:
    """The global MeterProvider may be set up after the app: OpenTelemetry's proxies forward to it."""
    setup = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
"""
    app = textwrap.dedent(APP)
    code = (setup + app if when == "before" else app + setup) + textwrap.dedent(READ)
    code += """
asyncio.run(visit())
found = read(reader)
print(found["fastapi_sessions.sessions.created"], found["fastapi_sessions.sessions.loaded"],
      found["fastapi_sessions.store.operation.duration"])
"""
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "3"]  # a create; a load and an update


# -- the docs' Prometheus example ------------------------------------------------------------------

PROMETHEUS_VISIT = """
import asyncio
import httpx
from main import app

async def visit() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        await client.post("/cart/apple")
        await client.post("/cart/pear")
        print((await client.get("/metrics/")).text)

asyncio.run(visit())
"""


def test_the_docs_prometheus_example_serves_the_session_metrics(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    from .test_docs import blocks

    (main,) = [block for block in blocks(ROOT / "docs" / "metrics.md") if block.title == "main.py"]
    (tmp_path / "main.py").write_text(main.source, encoding="utf-8")
    result = subprocess.run(  # our own interpreter on our own docs
        [sys.executable, "-c", PROMETHEUS_VISIT],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"SESSION_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    exposed = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in result.stdout.splitlines()
        if line.startswith("fastapi_sessions_") and 'fastapi_sessions_operation="load"' not in line
    }
    assert exposed["fastapi_sessions_sessions_created_total"] == 1
    assert exposed["fastapi_sessions_sessions_loaded_total"] == 1
    assert exposed["fastapi_sessions_sessions_updated_total"] == 1
    assert "fastapi_sessions_store_operation_duration_seconds_bucket" in exposed
