"""The apps in examples/: imported from their files and driven through their flows, and the quickstart
served by its own ``__main__`` over real HTTP.

Each test imports a fresh copy of the example (a new in-memory store), so the tests are independent.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_sessions import SessionStore
from fastapi_sessions.backends import as_store
from fastapi_sessions.backends.adapter import BackendStore
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, StoreConformance, StoreHarness, fake_wait, session_store_key

from .conftest import TestClient

try:  # at collection, before any sanic-testing client exists (see sanic_support)
    from . import sanic_support
except ImportError:  # the [sanic] extra is not installed: its example is not driven
    sanic_support = None  # type: ignore[assignment]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEY = "examples-k3y-for-tests-only-0123456789-abcdef"
THIRTY_DAYS = 30 * 24 * 3600

Loader = Callable[[str], ModuleType]


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> Loader:
    """Import ``examples/<name>.py`` as a new module, registered in sys.modules for this test only."""

    def load(name: str) -> ModuleType:
        module_name = f"_example_{name}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        return module

    return load


def client_for(app: FastAPI) -> httpx.AsyncClient:
    # https: the session cookie is Secure, and httpx only sends it back over https.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://testserver")


def set_cookie(response: httpx.Response) -> str | None:
    """The whole Set-Cookie header for the ``session`` cookie, or None."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("session="):
            return header
    return None


def cookie_value(response: httpx.Response) -> str:
    """The value of the ``session`` cookie the response sets (failing if it sets none)."""
    header = set_cookie(response)
    assert header is not None, f"no session cookie in {response.headers}"
    return header.partition("=")[2].split(";", 1)[0]


def attributes(header: str) -> dict[str, str]:
    """The attributes of a Set-Cookie header, names lower-cased (flags map to '')."""
    parts = [part.strip() for part in header.split(";")[1:]]
    return {name.lower(): value for name, _, value in (part.partition("=") for part in parts)}


async def replay(client: httpx.AsyncClient, path: str, cookie: str) -> httpx.Response:
    """GET ``path`` with exactly this session cookie, whatever the client's jar holds."""
    client.cookies.clear()
    return await client.get(path, headers={"cookie": f"session={cookie}"})


# -- quickstart --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_quickstart_needs_no_setup_and_warns_once_about_its_random_key(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    module = load_example("quickstart")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "SESSION_SECRET_KEY is not set" in err
    async with client_for(module.app) as client:
        response = await client.get("/")
        assert response.json() == {"user": None, "cart": []}
        assert set_cookie(response) is None, "an untouched new session sets no cookie"


# -- account_app: issue 14's features together ------------------------------------------------


async def csrf_header(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.get("/csrf")
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["token"]}


@pytest.mark.anyio
async def test_account_app_login_flash_guard_devices_log_out_everywhere_and_logout(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account example end to end: CSRF on every POST, the login helper, flash messages read
    once, a guarded route (401, and the cookie scheme in OpenAPI), the user's devices, log out
    everywhere else, logout with a message; rotation is on by default."""
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.delenv("SESSION_ROTATE_INTERVAL", raising=False)
    module = load_example("account_app")
    assert module.sessions.settings.rotate_interval == 900
    assert module.app.openapi()["paths"]["/cart/{item}"]["post"]["security"] == [{"session": []}]
    async with client_for(module.app) as laptop, client_for(module.app) as phone:
        assert (await laptop.post("/login", params={"user": "ada", "password": "demo"})).status_code == 403
        refused = await laptop.post("/cart/apple", headers=await csrf_header(laptop))
        assert refused.status_code == 401
        wrong = await laptop.post(
            "/login", params={"user": "ada", "password": "nope"}, headers=await csrf_header(laptop)
        )
        assert wrong.status_code == 403
        for client in (laptop, phone):
            login = await client.post(
                "/login", params={"user": "ada", "password": "demo"}, headers=await csrf_header(client)
            )
            assert login.status_code == 200, login.text
        home = (await laptop.get("/")).json()
        assert home["messages"] == [{"category": "success", "message": "Welcome, ada."}]
        assert (await laptop.get("/")).json()["messages"] == [], "a flash message is read once"
        added = await laptop.post("/cart/apple", headers=await csrf_header(laptop))
        assert added.json() == ["apple"]

        devices = (await laptop.get("/account/sessions")).json()
        assert sorted(d["current"] for d in devices) == [False, True]
        ended = await laptop.post("/account/logout-everywhere", headers=await csrf_header(laptop))
        assert ended.json() == {"ended": 1}
        assert (await phone.get("/")).json()["user"] is None, "the phone is logged out"
        assert [d["current"] for d in (await laptop.get("/account/sessions")).json()] == [True]

        assert (await laptop.post("/logout", headers=await csrf_header(laptop))).status_code == 200
        after = (await laptop.get("/")).json()
        assert after["user"] is None
        assert [m["message"] for m in after["messages"]] == ["You are logged out."]


@pytest.mark.anyio
async def test_quickstart_uses_the_key_from_the_environment_when_set(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    module = load_example("quickstart")
    assert capsys.readouterr().err == ""
    assert module.sessions.settings.signing_keys() == [KEY]


@pytest.mark.anyio
async def test_quickstart_login_cart_logout_flow(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    module = load_example("quickstart")
    async with client_for(module.app) as client:
        anonymous = await client.post("/cart/apple")
        assert anonymous.json() == {"cart": ["apple"]}
        before_login = cookie_value(anonymous)

        login = await client.post("/login", params={"user": "alice"})
        assert login.status_code == 303
        assert login.headers["location"] == "/"
        header = set_cookie(login)
        assert header is not None, "the cookie rides on the returned RedirectResponse"
        attrs = attributes(header)
        assert {"secure", "httponly", "path", "samesite"} <= attrs.keys()
        assert attrs["samesite"] == "Lax"
        assert "max-age" not in attrs, "a browser-session cookie by default"
        logged_in = cookie_value(login)
        assert logged_in != before_login, "login regenerates the session ID"

        assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
        assert (await client.get("/")).json() == {"user": "alice", "cart": ["apple", "pear"]}
        assert (await replay(client, "/", before_login)).json() == {"user": None, "cart": []}

        client.cookies.set("session", logged_in)
        logout = await client.post("/logout")
        assert logout.status_code == 303
        expired = set_cookie(logout)
        assert expired is not None
        assert attributes(expired)["max-age"] == "0"
        assert (await client.get("/")).json() == {"user": None, "cart": []}

        replayed = await replay(client, "/", logged_in)
        assert replayed.json() == {"user": None, "cart": []}, "the pre-logout cookie is dead"
        assert set_cookie(replayed) is None


@pytest.mark.anyio
async def test_quickstart_login_form_posts_the_name_as_a_form_field(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /login is an HTML form for browsers; its URL-encoded POST logs in like ``?user=`` does,
    and an empty, missing or overlong name is refused with 422 as the query parameter's is."""
    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    module = load_example("quickstart")
    async with client_for(module.app) as client:
        page = await client.get("/login")
        assert page.headers["content-type"].startswith("text/html")
        assert '<form method="post" action="/login">' in page.text
        assert 'name="user"' in page.text
        assert set_cookie(page) is None, "the login page itself starts no session"

        for refused in ({"user": ""}, {"name": "alice"}, {"user": "x" * 65}):
            answer = await client.post("/login", data=refused)
            assert answer.status_code == 422, refused
            assert set_cookie(answer) is None
        assert (await client.post("/login", params={"user": ""})).status_code == 422

        login = await client.post("/login", data={"user": "alice"})
        assert login.status_code == 303
        assert login.headers["location"] == "/"
        assert set_cookie(login) is not None
        assert (await client.get("/")).json() == {"user": "alice", "cart": []}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(client: httpx.Client, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60  # a hang guard
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the quickstart exited with {server.returncode}:\n{log.read_text()}")
        try:
            if client.get("/").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the quickstart did not answer within 60 s:\n{log.read_text()}")


def test_quickstart_runs_as_a_script_and_serves_the_flow_over_real_http(tmp_path: Path) -> None:
    """``python examples/quickstart.py`` with no SESSION_* set-up, on PORT, driven over a socket."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSION_")}
    env["PORT"] = str(port)
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "quickstart.py")],
            cwd=tmp_path,  # no stray .env
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                wait_until_serving(client, server, log)

                def call(method: str, path: str, cookie: str | None) -> httpx.Response:
                    # httpx keeps a Secure cookie out of plain-http requests: carry it by hand.
                    client.cookies.clear()
                    headers = {"cookie": f"session={cookie}"} if cookie else {}
                    return client.request(method, path, headers=headers)

                login = call("POST", "/login?user=alice", None)
                assert login.status_code == 303
                cookie = cookie_value(login)
                assert call("POST", "/cart/apple", cookie).json() == {"cart": ["apple"]}
                assert call("GET", "/", cookie).json() == {"user": "alice", "cart": ["apple"]}
                logout = call("POST", "/logout", cookie)
                assert logout.status_code == 303
                expired = set_cookie(logout)
                assert expired is not None
                assert attributes(expired)["max-age"] == "0"
                assert call("GET", "/", cookie).json() == {"user": None, "cart": []}
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    assert "SESSION_SECRET_KEY is not set" in log.read_text()


# -- remember_me -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_remember_me_makes_a_persistent_cookie_only_when_asked(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    module = load_example("remember_me")
    settings = module.sessions.settings
    assert settings.idle_timeout is not None
    assert settings.idle_timeout < settings.max_age
    assert settings.max_age >= THIRTY_DAYS, "set_expiry is capped by max_age"
    async with client_for(module.app) as client:
        plain = await client.post("/login", params={"user": "alice"})
        assert plain.status_code == 303
        header = set_cookie(plain)
        assert header is not None
        assert "max-age" not in attributes(header)
        assert (await client.get("/")).json() == {"user": "alice", "remembered": False}

        remembered = await client.post("/login", params={"user": "alice", "remember": "true"})
        header = set_cookie(remembered)
        assert header is not None
        attrs = attributes(header)
        assert THIRTY_DAYS - 5 <= int(attrs["max-age"]) <= THIRTY_DAYS
        assert "expires" in attrs
        assert (await client.get("/")).json() == {"user": "alice", "remembered": True}
        cookie = cookie_value(remembered)

        again = await client.post("/login", params={"user": "bob"})
        header = set_cookie(again)
        assert header is not None
        assert "max-age" not in attributes(header), "a later plain login forgets the remember-me"
        assert (await client.get("/")).json() == {"user": "bob", "remembered": False}
        assert (await replay(client, "/", cookie)).json() == {"user": None, "remembered": False}

        client.cookies.set("session", cookie_value(again))
        logout = await client.post("/logout")
        expired = set_cookie(logout)
        assert expired is not None
        assert attributes(expired)["max-age"] == "0"
        assert (await replay(client, "/", cookie_value(again))).json() == {
            "user": None,
            "remembered": False,
        }


# -- custom_store ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_custom_store_counts_operations_and_is_a_session_store(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    module = load_example("custom_store")
    assert isinstance(module.store, SessionStore)
    async with client_for(module.app) as client:
        assert (await client.get("/")).json() == {"count": 0}
        assert (await client.get("/stats")).json() == {}, "no cookie, no store call"
        assert (await client.post("/visit")).json() == {"count": 1}
        assert (await client.post("/visit")).json() == {"count": 2}
        assert (await client.get("/")).json() == {"count": 2}
        assert (await client.get("/stats")).json() == {"create": 1, "load": 2, "update": 1}
        cookie = client.cookies["session"]
        reset = await client.post("/reset")
        assert reset.json() == {"count": 0}
        expired = set_cookie(reset)
        assert expired is not None
        assert attributes(expired)["max-age"] == "0"
        assert (await client.get("/stats")).json() == {"create": 1, "load": 3, "update": 1, "delete": 1}
        assert (await replay(client, "/", cookie)).json() == {"count": 0}


class TestCustomStoreExampleContract(StoreConformance):
    """The example's wrapper passes the shipped conformance suite, as a user's store would."""

    @pytest.fixture
    async def store_harness(
        self, load_example: Loader, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[StoreHarness]:
        monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
        clock = FakeClock()
        store = load_example("custom_store").CountingStore(MemoryStore(clock=clock))
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_app_login_cart_logout_on_a_real_redis(
    load_example: Loader,
    monkeypatch: pytest.MonkeyPatch,
    redis_server_url: str,
    redis_prefix: str,
) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.setenv("SESSION_STORE_URL", redis_server_url)
    monkeypatch.setenv("SESSION_STORE_PREFIX", redis_prefix)
    module = load_example("redis_app")
    from fastapi_sessions.stores.redis import RedisStore

    assert isinstance(module.sessions.store, RedisStore)
    async with client_for(module.app) as client:
        login = await client.post("/login/5", follow_redirects=False)
        assert login.status_code == 303
        first = cookie_value(login)
        assert (await client.post("/cart/tea")).json() == {"cart": ["tea"]}
        assert (await client.get("/")).json() == {"user_id": 5, "cart": ["tea"]}
        logout = await client.post("/logout", follow_redirects=False)
        assert attributes(set_cookie(logout) or "")["max-age"] == "0"
        assert (await replay(client, "/", first)).json() == {"user_id": None, "cart": []}
    await module.sessions.store.aclose()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_postgres_app_login_cart_logout_on_a_real_postgres(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("asyncpg")
    from .postgres_support import postgres_schema, store_url

    async with postgres_schema() as (dsn, schema):
        monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
        monkeypatch.setenv("SESSION_STORE_URL", store_url(dsn, f"{schema}.sessions"))
        module = load_example("postgres_app")
        assert await module.server_answers() == ""
        await module.store.create_table()  # the app's lifespan does it; the test client runs none
        async with client_for(module.app) as client:
            login = await client.post("/login/5", follow_redirects=False)
            assert login.status_code == 303
            first = cookie_value(login)
            assert (await client.post("/cart/tea")).json() == {"cart": ["tea"]}
            assert (await client.get("/")).json() == {"user_id": 5, "cart": ["tea"]}
            logout = await client.post("/logout", follow_redirects=False)
            assert attributes(set_cookie(logout) or "")["max-age"] == "0"
            assert (await replay(client, "/", first)).json() == {"user_id": None, "cart": []}
        await module.store.aclose()


# -- starlette_app -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_starlette_app_typed_and_middleware_doors_side_by_side(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    module = load_example("starlette_app")
    transport = httpx.ASGITransport(module.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.get("/")).json() == {"user": None, "visits": 1}
        login = await client.post("/login", params={"user": "alice"})
        assert login.status_code == 303
        assert (await client.get("/")).json() == {"user": "alice", "visits": 2}
        assert (await client.post("/prefs/dark")).json() == {"theme": "dark"}
        assert (await client.get("/prefs")).json() == {"theme": "dark"}
        assert set(client.cookies.keys()) == {"session", "prefs"}
        logout = await client.post("/logout")
        assert attributes(set_cookie(logout) or "")["max-age"] == "0"
        assert (await client.get("/")).json() == {"user": None, "visits": 1}
        assert (await client.get("/prefs")).json() == {"theme": "dark"}, "the other session lives on"


# -- custom_backend ----------------------------------------------------------------------------


def session_files(directory: Path) -> dict[str, Any]:
    """The session files in ``directory``, by store key, as JSON."""
    return {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}


def overwrite(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.fixture
def sessions_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.setenv("SESSIONS_DIR", str(tmp_path / "sessions"))
    return tmp_path / "sessions"


@pytest.mark.anyio
async def test_custom_backend_keeps_one_file_per_session_through_login_cart_logout(
    load_example: Loader, sessions_dir: Path
) -> None:
    module = load_example("custom_backend")
    assert isinstance(module.sessions.store, BackendStore)
    async with client_for(module.app) as client:
        assert (await client.post("/cart/apple")).json() == {"cart": ["apple"]}
        anonymous = client.cookies["session"]
        assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
        (stored,) = session_files(sessions_dir).values()
        assert stored["data"]["session"] == {"user": None, "cart": ["apple", "pear"]}

        login = await client.post("/login", params={"user": "alice"})
        assert login.status_code == 303
        logged_in = cookie_value(login)
        assert logged_in != anonymous, "login regenerates the session ID"
        assert list(session_files(sessions_dir)) == [session_store_key(logged_in.split(".")[0])]
        assert (await client.get("/")).json() == {"user": "alice", "cart": ["apple", "pear"]}
        assert (await replay(client, "/", anonymous)).json() == {"user": None, "cart": []}

        client.cookies.set("session", logged_in)
        logout = await client.post("/logout")
        assert attributes(set_cookie(logout) or "")["max-age"] == "0"
        assert session_files(sessions_dir) == {}


@pytest.mark.anyio
async def test_custom_backend_answers_a_damaged_file_with_a_fresh_session_and_removes_it(
    load_example: Loader, sessions_dir: Path
) -> None:
    module = load_example("custom_backend")
    async with client_for(module.app) as client:
        await client.post("/login", params={"user": "alice"})
        (key,) = session_files(sessions_dir)
        overwrite(sessions_dir / f"{key}.json", "{not json")
        response = await client.get("/")
        assert response.status_code == 200
        assert response.json() == {"user": None, "cart": []}
        assert session_files(sessions_dir) == {}, "the damaged file is removed"


def test_custom_backend_clear_command_deletes_every_session_file_and_nothing_else(
    sessions_dir: Path, tmp_path: Path
) -> None:
    sessions_dir.mkdir()
    (sessions_dir / "a.json").write_text("{}")
    (sessions_dir / "b.json").write_text("{}")
    (sessions_dir / "notes.txt").write_text("not a session")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_backend.py"), "clear"],
        cwd=tmp_path,
        env={**os.environ, "SESSIONS_DIR": str(sessions_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Deleted every session" in result.stdout
    assert sorted(path.name for path in sessions_dir.iterdir()) == ["notes.txt"]


class TestCustomBackendExampleContract(StoreConformance):
    """The example's backend, through the adapter, passes the shipped conformance suite."""

    @pytest.fixture
    async def store_harness(self, load_example: Loader, sessions_dir: Path) -> AsyncIterator[StoreHarness]:
        clock = FakeClock()
        store = as_store(load_example("custom_backend").FileBackend(sessions_dir), clock=clock)
        yield StoreHarness(store, clock.time, fake_wait(clock))
        await store.aclose()


# -- article_app ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_article_app_login_profile_logout(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    module = load_example("article_app")
    transport = httpx.ASGITransport(module.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/profile")).json() == {"error": "Not logged in"}
        login = await client.get("/login")
        header = set_cookie(login)
        assert header is not None
        assert "secure" not in attributes(header), "cookie_https_only=False, as in the article"
        assert (await client.get("/profile")).json() == {"user_id": 1, "username": "Alice"}
        logout = await client.get("/logout")
        assert attributes(set_cookie(logout) or "")["max-age"] == "0"
        assert (await client.get("/profile")).json() == {"error": "Not logged in"}


def test_article_app_refuses_to_start_without_a_key(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi_sessions import SessionConfigError

    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    module = load_example("article_app")
    with pytest.raises(SessionConfigError, match="SESSION_SECRET_KEY is not set"), TestClient(module.app):
        pass


# -- sanic_app -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sanic_app_login_cart_logout_flow_and_its_store_is_closed_at_shutdown(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Served as a server runs it: started once, the whole flow, stopped once."""
    if sanic_support is None:
        pytest.skip("needs the [sanic] extra")
    monkeypatch.delenv("SESSION_SECRET_KEY", raising=False)
    module = load_example("sanic_app")
    assert "SESSION_SECRET_KEY is not set" in capsys.readouterr().err
    store = module.sessions.store
    assert isinstance(store, MemoryStore)
    closed: list[bool] = []

    async def aclose() -> None:
        closed.append(True)

    monkeypatch.setattr(store, "aclose", aclose)
    async with sanic_support.serving(module.app) as client:
        anonymous = await client.get("/")
        assert anonymous.json() == {"user": None, "cart": []}
        assert set_cookie(anonymous) is None, "an untouched new session sets no cookie"
        assert (await client.post("/cart/apple")).json() == {"cart": ["apple"]}
        before_login = client.cookies["session"]

        login = await client.post("/login", params={"user": "alice"})
        assert login.status_code == 303
        assert login.headers["location"] == "/"
        header = set_cookie(login)
        assert header is not None, "the cookie rides on the redirect"
        assert {"secure", "httponly", "path", "samesite"} <= attributes(header).keys()
        logged_in = cookie_value(login)
        assert logged_in != before_login, "login regenerates the session ID"
        assert (await client.post("/login")).status_code == 400

        assert (await client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}
        assert (await client.get("/")).json() == {"user": "alice", "cart": ["apple", "pear"]}
        assert (await replay(client, "/", before_login)).json() == {"user": None, "cart": []}

        client.cookies.set("session", logged_in)
        logout = await client.post("/logout")
        assert logout.status_code == 303
        assert attributes(set_cookie(logout) or "")["max-age"] == "0"
        assert (await replay(client, "/", logged_in)).json() == {"user": None, "cart": []}
        assert len(store) == 0
        await client.post("/cart/tea")
        assert len(store) == 1
    assert closed == [True], "the store the app made is closed when the server stops"


# -- encrypted_app -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_encrypted_app_stores_ciphertexts_only_and_reads_them_back(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.setenv("SESSION_ENCRYPTION_KEYS", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    module = load_example("encrypted_app")
    async with client_for(module.app) as client:
        assert (await client.get("/stored")).status_code == 404
        login = await client.post("/login", params={"user": "alice", "iban": "DE89370400440532013000"})
        assert login.status_code == 303
        assert (await client.get("/")).json() == {"user": "alice", "iban": "DE89370400440532013000"}
        stored = (await client.get("/stored")).json()
        assert set(stored) == {"user", "iban", "$fs:enc"}
        assert not any("alice" in value or "DE89" in value for value in stored.values())
        assert (await client.post("/logout")).status_code == 303
        assert (await client.get("/")).json() == {"user": None, "iban": None}


def test_encrypted_app_refuses_to_start_without_keys(
    load_example: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.setenv("SESSION_SECRET_KEY", KEY)
    monkeypatch.delenv("SESSION_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(SystemExit, match="SESSION_ENCRYPTION_KEYS"):
        load_example("encrypted_app")


# -- metrics_app: in a process of its own, as it sets the process' one MeterProvider ---------------

_METRICS_VISIT = """
import asyncio, importlib.util, sys
import httpx

spec = importlib.util.spec_from_file_location("metrics_app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

async def visit() -> None:
    transport = httpx.ASGITransport(module.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        assert (await client.post("/cart/apple")).json() == ["apple"]
        assert (await client.get("/cart")).json() == ["apple"]
        print((await client.get("/metrics/")).text)

asyncio.run(visit())
"""


def test_metrics_app_shows_its_sessions_to_prometheus() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    result = subprocess.run(  # our own interpreter on our own example
        [sys.executable, "-c", _METRICS_VISIT, str(EXAMPLES / "metrics_app.py")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SESSION_SECRET_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    counters = {
        line.split("{")[0]: line.rsplit(" ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("fastapi_sessions_sessions_")
    }
    assert counters["fastapi_sessions_sessions_created_total"] == "1.0"
    assert counters["fastapi_sessions_sessions_loaded_total"] == "1.0"
