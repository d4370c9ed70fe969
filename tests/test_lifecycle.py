"""The session lifecycle end to end: load, dirty detection, regenerate, destroy, expiry, rotation."""

# No `from __future__ import annotations`: FastAPI must resolve the local `Session` aliases.

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_sessions import SessionManager
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore, session_store_key

from .conftest import OLD_SECRET, SECRET, UserSession, make_app

pytestmark = pytest.mark.anyio

Factory = Callable[..., SessionManager[UserSession]]


def cookie_of(response: httpx.Response) -> str | None:
    """The raw value of our cookie in the response's Set-Cookie, or None."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "session":
            return rest.split(";", 1)[0]
    return None


async def get_with_cookie(client: httpx.AsyncClient, path: str, cookie: str) -> httpx.Response:
    """GET with exactly this session cookie, whatever the client's jar holds."""
    client.cookies.clear()
    return await client.get(path, headers={"cookie": f"session={cookie}"})


def session_id_of(cookie: str) -> str:
    return cookie.split(".", 1)[0]


@pytest.fixture
def store(clock: FakeClock) -> RecordingStore:
    return RecordingStore(MemoryStore(clock=clock))


async def test_untouched_new_session_sets_no_cookie_and_writes_nothing(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.get("/me")
    assert response.json() == {"user_id": None, "cart": [], "prefs": {}}
    assert cookie_of(response) is None
    assert store.writes() == 0
    assert len(store.inner) == 0


async def test_first_change_creates_the_session_and_sets_the_cookie(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.post("/cart/apple")
    cookie = cookie_of(response)
    assert cookie is not None
    assert store.calls == {"create": 1}
    assert (await client.get("/me")).json()["cart"] == ["apple"]


async def test_nested_mutation_is_persisted_and_unchanged_reads_write_nothing(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/cart/a")
    response = await client.post("/cart/b")  # list.append on a loaded session
    assert cookie_of(response) is None, "an existing session's cookie is not re-sent on change"
    assert store.calls["update"] == 1
    before = store.writes()
    for _ in range(3):
        response = await client.get("/me")
        assert response.json()["cart"] == ["a", "b"]
        assert cookie_of(response) is None
    assert store.writes() == before


async def test_only_changed_fields_are_written(
    sessions: SessionManager[UserSession], store: RecordingStore
) -> None:
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[UserSession, Depends(sessions.get_session)]
    seen: list[Any] = []

    @app.post("/both")
    async def both(session: Session) -> None:
        session.user_id, session.cart = 1, ["x"]

    @app.post("/prefs")
    async def prefs(session: Session) -> None:
        session.prefs["lang"] = "fr"

    original_update = store.update

    async def spy(key: str, change: Any, **kwargs: Any) -> Any:
        seen.append(dict(change.fields))
        return await original_update(key, change, **kwargs)

    store.update = spy  # type: ignore[method-assign]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/both")
        await c.post("/prefs")
    assert seen == [{"prefs": b'{"lang":"fr"}'}]


async def test_regenerate_issues_a_new_id_keeps_data_and_deletes_the_old_record(
    client: httpx.AsyncClient, store: RecordingStore, clock: FakeClock
) -> None:
    first = cookie_of(await client.post("/cart/a"))
    assert first is not None
    old_key = session_store_key(session_id_of(first))
    created_at = store.inner._data[old_key].record().meta.created_at
    clock.advance(10)
    response = await client.post("/login/7", follow_redirects=False)
    assert response.status_code == 303
    second = cookie_of(response)
    assert second is not None
    assert session_id_of(second) != session_id_of(first)
    assert store.calls["rename"] == 1
    assert old_key not in store.inner._data
    new_key = session_store_key(session_id_of(second))
    kept = store.inner._data[new_key].record().meta.created_at
    assert kept == created_at, "regenerate keeps the creation time"
    assert (await client.get("/me")).json() == {"user_id": 7, "cart": ["a"], "prefs": {}}
    replay = await get_with_cookie(client, "/me", first)
    assert replay.json()["user_id"] is None, "the pre-login cookie must stop working"


async def test_regenerate_on_a_new_session_just_creates_it(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    response = await client.post("/login/3", follow_redirects=False)
    assert cookie_of(response) is not None
    assert store.calls == {"create": 1}


async def test_regenerate_alone_on_a_new_session_creates_nothing(
    sessions: SessionManager[UserSession], store: RecordingStore
) -> None:
    app = make_app(sessions)

    @app.post("/just-regenerate")
    async def just_regenerate(session: Annotated[UserSession, Depends(sessions.get_session)]) -> None:
        sessions.regenerate(session)

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        response = await client.post("/just-regenerate")
    assert response.status_code == 200
    assert cookie_of(response) is None, "an empty new session gets no cookie, regenerated or not"
    assert store.writes() == 0


async def test_destroy_deletes_the_record_expires_the_cookie_and_replay_is_anonymous(
    client: httpx.AsyncClient, store: RecordingStore
) -> None:
    await client.post("/login/5", follow_redirects=False)
    cookie = client.cookies["session"]
    response = await client.post("/logout", follow_redirects=False)
    assert response.headers["set-cookie"].startswith('session=""; Max-Age=0; Expires=Thu, 01 Jan 1970')
    assert len(store.inner) == 0
    replay = await get_with_cookie(client, "/me", cookie)
    assert replay.json()["user_id"] is None
    assert len(store.inner) == 0, "loading a destroyed ID creates nothing"


async def test_destroy_then_change_starts_a_new_session_under_a_new_id(
    sessions: SessionManager[UserSession], store: RecordingStore
) -> None:
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/logout-with-message")
    async def logout(session: Session) -> dict[str, Any]:
        sessions.destroy(session)
        assert session == UserSession(), "destroy puts the model back to its defaults"
        session.prefs["flash"] = "You have been logged out"
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        first = cookie_of(await c.post("/login/9", follow_redirects=False))
        assert first is not None
        response = await c.post("/logout-with-message")
        second = cookie_of(response)
        assert second is not None
        assert second != '""'
        assert session_id_of(second) != session_id_of(first)
        assert session_store_key(session_id_of(first)) not in store.inner._data
        assert (await c.get("/me")).json() == {
            "user_id": None,
            "cart": [],
            "prefs": {"flash": "You have been logged out"},
        }


async def test_destroy_of_a_cookieless_session_sends_no_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/logout", follow_redirects=False)
    assert "set-cookie" not in response.headers


async def test_absolute_timeout_is_never_extended_by_use(
    manager_factory: Factory, clock: FakeClock, store: RecordingStore
) -> None:
    app = make_app(manager_factory(max_age=100, idle_timeout=40))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/cart/a")
        for _ in range(4):  # every idle/2: the idle timer never fires
            clock.advance(20)
            assert (await c.get("/me")).json()["cart"] == ["a"]
        clock.advance(21)  # 101 s after creation
        assert (await c.get("/me")).json()["cart"] == []


async def test_idle_timeout_expires_an_unused_session_and_reads_keep_it_alive(
    manager_factory: Factory, clock: FakeClock, store: RecordingStore
) -> None:
    app = make_app(manager_factory(idle_timeout=60))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/cart/a")
        for _ in range(5):
            clock.advance(50)
            assert (await c.get("/me")).json()["cart"] == ["a"]
        writes = store.writes()
        assert writes == 1, "rolling expiry refreshes the TTL without rewriting the data"
        clock.advance(61)
        assert (await c.get("/me")).json()["cart"] == []


async def test_set_expiry_makes_a_persistent_cookie_capped_by_max_age(
    manager_factory: Factory, clock: FakeClock
) -> None:
    sessions = manager_factory(max_age=3600)
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/remember/{seconds}")
    async def remember(seconds: int, session: Session) -> None:
        sessions.set_expiry(session, timedelta(seconds=seconds) if seconds else None)
        session.user_id = 1

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        default = await c.post("/cart/a")
        assert "Max-Age" not in default.headers["set-cookie"], "browser-session cookie by default"
        clock.advance(600)
        response = await c.post("/remember/600")
        assert "Max-Age=600;" in response.headers["set-cookie"]
        response = await c.post("/remember/86400")
        # capped by the absolute lifetime: 3600 s from creation, 600 s of which have passed
        assert "Max-Age=3000;" in response.headers["set-cookie"]
        response = await c.post("/remember/0")
        assert "Max-Age" not in response.headers["set-cookie"]


async def test_a_remembered_session_dies_at_its_own_expiry(
    manager_factory: Factory, clock: FakeClock
) -> None:
    sessions = manager_factory()
    app = make_app(sessions)
    Session = Annotated[UserSession, Depends(sessions.get_session)]

    @app.post("/short")
    async def short(session: Session) -> None:
        sessions.set_expiry(session, 30)
        session.user_id = 1

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/short")
        clock.advance(29)
        assert (await c.get("/me")).json()["user_id"] == 1
        clock.advance(2)
        assert (await c.get("/me")).json()["user_id"] is None


async def test_a_fallback_key_cookie_is_accepted_and_reissued_under_the_current_key(
    store: RecordingStore, clock: FakeClock
) -> None:
    from .conftest import make_settings

    old = SessionManager(
        UserSession, settings=make_settings(secret_key=OLD_SECRET), store=store, clock=clock
    )
    rotated = SessionManager(
        UserSession,
        settings=make_settings(secret_key=SECRET, secret_key_fallbacks=[OLD_SECRET]),
        store=store,
        clock=clock,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(make_app(old)), base_url="https://t") as c:
        cookie = cookie_of(await c.post("/cart/a"))
    assert cookie is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(make_app(rotated)), base_url="https://t"
    ) as c:
        response = await get_with_cookie(c, "/me", cookie)
        assert response.json()["cart"] == ["a"]
        reissued = cookie_of(response)
        assert reissued is not None
        assert reissued != cookie
        assert session_id_of(reissued) == session_id_of(cookie)
        writes = store.writes()
        again = await get_with_cookie(c, "/me", reissued)
        assert cookie_of(again) is None
        assert store.writes() == writes


async def test_computed_fields_are_not_stored_and_forbid_models_keep_their_sessions(
    store: RecordingStore, clock: FakeClock
) -> None:
    from pydantic import BaseModel, ConfigDict, computed_field

    from .conftest import make_settings

    class Cart(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[str] = []

        @computed_field  # type: ignore[prop-decorator]
        @property
        def count(self) -> int:
            return len(self.items)

    sessions = SessionManager(Cart, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    CartSession = Annotated[Cart, Depends(sessions.get_session)]

    @app.post("/add/{item}")
    async def add(item: str, session: CartSession) -> Cart:
        session.items.append(item)
        return session

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post("/add/a")
        response = await c.post("/add/b")
        assert response.json() == {"items": ["a", "b"], "count": 2}
    (entry,) = store.inner._data.values()
    assert set(entry.record().fields) == {"items"}


async def test_max_size_counts_values_even_when_the_stored_document_is_longer(
    store: RecordingStore, clock: FakeClock
) -> None:
    """MemoryStore hands over the whole JSON document; its field names must not count as session size."""
    from pydantic import BaseModel

    from fastapi_sessions import SessionTooLargeError

    from .conftest import make_settings

    class LongNames(BaseModel):
        a_field_name_long_enough_to_matter_number_one: str = ""
        a_field_name_long_enough_to_matter_number_two: str = ""

    sessions = SessionManager(LongNames, settings=make_settings(max_size=64), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[LongNames, Depends(sessions.get_session)]

    @app.post("/set/{one}/{two}")
    async def put(one: str, two: str, session: Session) -> LongNames:
        session.a_field_name_long_enough_to_matter_number_one = one
        session.a_field_name_long_enough_to_matter_number_two = two
        return session

    @app.get("/read")
    async def read(session: Session) -> LongNames:
        return session

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as c:
        await c.post(f"/set/{'a' * 18}/{'b' * 18}")  # values: 2 x 20 bytes; the document: 131
        (entry,) = store.inner._data.values()
        loaded = entry.record()
        assert loaded.document is not None
        assert len(loaded.document) > 64 >= loaded.size
        assert (await c.get("/read")).json()["a_field_name_long_enough_to_matter_number_one"] == "a" * 18
        reply = await c.post(f"/set/{'c' * 18}/{'d' * 18}")
        assert reply.status_code == 200, "a write within SESSION_MAX_SIZE must be stored"
        assert (
            dict(entry.record().fields)["a_field_name_long_enough_to_matter_number_two"]
            == b'"' + b"d" * 18 + b'"'
        )
        with pytest.raises(SessionTooLargeError):
            await c.post(f"/set/{'e' * 18}/{'f' * 60}")  # values: 20 + 62 bytes
    assert (
        dict(entry.record().fields)["a_field_name_long_enough_to_matter_number_two"]
        == b'"' + b"d" * 18 + b'"'
    )
