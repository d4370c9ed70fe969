"""The codec's shortcut for flat models: a copy of ``__dict__`` stands in for the serializer's snapshot.

It must give exactly the snapshot the serializer would, and must stay off for every model where the
two could differ; the sessions of a flat model then behave like any other (reads never write).
"""

import enum
from datetime import datetime
from typing import Annotated, Any, Literal, Optional

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    RootModel,
    field_serializer,
    model_serializer,
)

from fastapi_sessions import SessionManager
from fastapi_sessions.codec import ModelCodec, dict_is_snapshot
from fastapi_sessions.stores import MemoryStore
from fastapi_sessions.testing import FakeClock, RecordingStore

from .conftest import make_settings


class Flat(BaseModel):
    user_id: int = 0
    name: str = ""
    admin: bool = False
    note: str | None = None
    legacy: Optional[int] = None  # noqa: UP045 - the old spelling is a different annotation object
    role: Literal["guest", "user", "admin"] = "guest"
    short: Annotated[str, Field(max_length=8)] = ""


class Color(enum.Enum):
    RED = "red"


class WithAlias(BaseModel):
    user_id: int = Field(default=0, alias="uid")


class WithSerializationAlias(BaseModel):
    user_id: int = Field(default=0, serialization_alias="uid")


class WithAliasGenerator(BaseModel):
    model_config = ConfigDict(alias_generator=AliasGenerator(serialization_alias=str.upper))
    user_id: int = 0


class WithExclude(BaseModel):
    secret: str = Field(default="", exclude=True)


class WithFieldSerializer(BaseModel):
    name: str = ""

    @field_serializer("name")
    def shout(self, value: str) -> str:
        return value.upper()


class WithModelSerializer(BaseModel):
    name: str = ""

    @model_serializer
    def whole(self) -> dict[str, Any]:
        return {"n": self.name}


class WithPlainSerializer(BaseModel):
    name: Annotated[str, PlainSerializer(lambda value: value[::-1])] = ""


class WithExtra(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""


class WithFloat(BaseModel):
    ratio: float = 0.0


class WithList(BaseModel):
    cart: list[str] = []


class WithEnum(BaseModel):
    color: Color = Color.RED


class WithDatetime(BaseModel):
    seen: datetime | None = None


class WithNested(BaseModel):
    inner: Flat = Flat()


class Root(RootModel[int]):
    root: int = 0


def test_flat_scalar_models_take_the_shortcut() -> None:
    assert dict_is_snapshot(Flat)


@pytest.mark.parametrize(
    "model",
    [
        WithAlias,
        WithSerializationAlias,
        WithAliasGenerator,
        WithExclude,
        WithFieldSerializer,
        WithModelSerializer,
        WithPlainSerializer,
        WithExtra,
        WithFloat,
        WithList,
        WithEnum,
        WithDatetime,
        WithNested,
        Root,
    ],
)
def test_models_whose_dict_may_differ_from_the_snapshot_do_not(model: type[BaseModel]) -> None:
    assert not dict_is_snapshot(model)


@given(
    st.builds(
        Flat,
        user_id=st.integers(),
        name=st.text(),
        admin=st.booleans(),
        note=st.none() | st.text(),
        legacy=st.none() | st.integers(),
        role=st.sampled_from(["guest", "user", "admin"]),
        short=st.text(max_size=8),
    )
)
def test_the_shortcut_gives_exactly_the_serializers_snapshot(session: Flat) -> None:
    codec = ModelCodec(Flat)
    expected = Flat.__pydantic_serializer__.to_python(session, mode="json", by_alias=True, round_trip=True)
    snapshot = codec.snapshot(session)
    assert snapshot == expected
    assert list(snapshot) == list(expected)
    assert snapshot is not session.__dict__, "a copy: later assignments must not move the baseline"
    assert {name: codec.encode(name, value) for name, value in snapshot.items()} == {
        name: codec.encode(name, value) for name, value in expected.items()
    }


@pytest.mark.anyio
async def test_flat_sessions_read_without_writing_and_write_only_what_changed() -> None:
    clock = FakeClock()
    inner = MemoryStore(clock=clock)
    store = RecordingStore(inner)
    sessions = SessionManager(Flat, settings=make_settings(), store=store, clock=clock)
    app = FastAPI()
    sessions.install(app)
    Session = Annotated[Flat, Depends(sessions.get_session)]

    @app.post("/login")
    async def login(session: Session) -> Flat:
        session.user_id, session.name, session.role = 7, "alice", "admin"
        return session

    @app.get("/read")
    async def read(session: Session) -> Flat:
        return session

    @app.post("/rename")
    async def rename(session: Session) -> Flat:
        session.name = "bob"
        return session

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://t") as client:
        await client.post("/login")
        store.reset()
        reply = await client.get("/read")
        assert reply.json()["name"] == "alice", reply.text
        assert store.writes() == 0, "a read must not write"
        assert (await client.post("/rename")).json()["name"] == "bob"
        assert store.calls["update"] == 1
        (entry,) = inner._data.values()
        stored = dict(entry.record().fields)
        assert stored["name"] == b'"bob"'
        assert stored["user_id"] == b"7"
        assert stored["role"] == b'"admin"'
        store.reset()
        assert (await client.get("/read")).json() == {
            **Flat().model_dump(),
            **{"user_id": 7, "name": "bob", "role": "admin"},
        }
        assert store.writes() == 0
