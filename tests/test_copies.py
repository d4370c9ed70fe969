"""Plain models are snapshotted and created without pydantic: the copies must equal what pydantic makes,
and anything not plain must go through pydantic as before."""

from __future__ import annotations

import time
import warnings
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    computed_field,
    field_validator,
    model_validator,
)

from fastapi_sessions.codec import ModelCodec
from fastapi_sessions.copies import NotPlain, plain_new, plain_snapshotter, plain_unchanged


class Prefs(BaseModel):
    theme: str = "light"
    language: str = "en"
    page_size: int = 20


class Cart(BaseModel):
    """Shaped like the README's cart app, with every kind of plain field."""

    user_id: int = 0
    name: str = ""
    roles: list[str] = []
    cart: list[str] = Field(default_factory=list)
    counts: dict[str, int] = {}
    prefs: Prefs = Prefs()
    chosen: Prefs = Prefs(theme="dark")
    maybe: list[str] | None = None
    kind: Literal["a", "b"] = "a"
    flag: bool | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    return model.__pydantic_serializer__.to_python(model, mode="json", by_alias=True, round_trip=True)


def test_a_new_plain_model_equals_what_pydantic_makes() -> None:
    new = plain_new(Cart)
    assert new is not None
    made, expected = new(), Cart()
    assert type(made) is Cart
    assert made == expected
    assert made.__dict__ == expected.__dict__
    assert made.model_fields_set == expected.model_fields_set == set()
    assert made.chosen.model_fields_set == expected.chosen.model_fields_set == {"theme"}
    assert made.model_dump() == expected.model_dump()


def test_each_new_plain_model_has_its_own_mutable_defaults() -> None:
    new = plain_new(Cart)
    assert new is not None
    first, second = new(), new()
    first.roles.append("admin")
    first.cart.append("sku")
    first.counts["x"] = 1
    first.prefs.theme = "dark"
    assert second == Cart()
    assert Cart.model_fields["prefs"].default == Prefs()  # the default itself is untouched


def test_a_plain_snapshot_equals_the_json_dump() -> None:
    snapshot = plain_snapshotter(Cart)
    assert snapshot is not None
    model = Cart(user_id=1, roles=["a"], counts={"k": 2}, prefs=Prefs(theme="x"), maybe=["m"], flag=True)
    assert snapshot(model) == dump(model)
    assert snapshot(Cart()) == dump(Cart())


def test_a_plain_snapshot_is_a_copy_that_later_changes_do_not_reach() -> None:
    snapshot = plain_snapshotter(Cart)
    assert snapshot is not None
    model = Cart(roles=["a"])
    before = snapshot(model)
    model.roles.append("b")
    model.prefs.theme = "dark"
    model.counts["n"] = 1
    assert before == dump(Cart(roles=["a"]))
    assert snapshot(model) != before


@given(
    user_id=st.integers(),
    name=st.text(),
    roles=st.lists(st.text()),
    counts=st.dictionaries(st.text(), st.integers()),
    theme=st.text(),
    maybe=st.none() | st.lists(st.text()),
)
def test_plain_snapshots_equal_the_json_dump_for_any_values(
    user_id: int, name: str, roles: list[str], counts: dict[str, int], theme: str, maybe: list[str] | None
) -> None:
    snapshot = plain_snapshotter(Cart)
    assert snapshot is not None
    model = Cart(
        user_id=user_id, name=name, roles=roles, counts=counts, prefs=Prefs(theme=theme), maybe=maybe
    )
    assert snapshot(model) == dump(model)


class SubPrefs(Prefs):
    extra_field: str = "x"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("roles", ("a", "b")),  # a tuple, assigned without validation
        ("counts", [("k", 1)]),
        ("prefs", SubPrefs()),  # a subclass dumps as its declared class
        ("prefs", {"theme": "dark"}),
    ],
)
def test_a_value_assigned_without_validation_is_snapshotted_by_pydantic(field: str, value: Any) -> None:
    snapshot = plain_snapshotter(Cart)
    assert snapshot is not None
    model = Cart()
    setattr(model, field, value)
    with pytest.raises(NotPlain):
        snapshot(model)
    codec = ModelCodec(Cart)
    with warnings.catch_warnings():  # pydantic warns of the unexpected type, and dumps it
        warnings.simplefilter("ignore")
        assert codec.snapshot(model) == dump(model)


class Validated(BaseModel):
    roles: list[str] = []

    @field_validator("roles")
    @classmethod
    def lower(cls, roles: list[str]) -> list[str]:
        return [role.lower() for role in roles]


class AfterModel(BaseModel):
    roles: list[str] = []

    @model_validator(mode="after")
    def check(self) -> AfterModel:
        return self


class Computed(BaseModel):
    roles: list[str] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.roles)


class Aliased(BaseModel):
    roles: list[str] = Field(default=[], alias="r")


class Private(BaseModel):
    roles: list[str] = []
    _seen: int = PrivateAttr(default=0)


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")
    roles: list[str] = []


class Stamped(BaseModel):
    roles: list[str] = []
    at: int = Field(default_factory=time.time_ns)


class Nested(BaseModel):
    items: list[Prefs] = []


class Serialized(BaseModel):
    roles: Annotated[list[str], PlainSerializer(lambda value: ",".join(value))] = []


class DeepNested(BaseModel):
    cart: Cart = Cart()


@pytest.mark.parametrize(
    "model", [Validated, AfterModel, Computed, Aliased, Private, Extra, Nested, Serialized, DeepNested]
)
def test_a_model_that_runs_code_or_nests_deeper_is_not_plain(model: type[BaseModel]) -> None:
    assert plain_snapshotter(model) is None
    assert plain_new(model) is None


def test_a_default_made_by_a_factory_of_its_own_is_made_by_pydantic() -> None:
    assert plain_snapshotter(Stamped) is not None  # its values copy as they are
    assert plain_new(Stamped) is None  # but each new session must call time.time_ns()


def test_the_codec_takes_the_copies_for_a_plain_model() -> None:
    codec = ModelCodec(Cart)
    model = codec.new()
    assert model == Cart()
    model.cart.append("sku")
    model.prefs.language = "fr"
    changed = codec.changed(model, codec.defaults)
    assert changed == dump(model)
    assert codec.changed(model, changed) is None


def test_the_unchanged_test_sees_every_change_a_snapshot_would() -> None:
    snapshot, unchanged = plain_snapshotter(Cart), plain_unchanged(Cart)
    assert snapshot is not None
    assert unchanged is not None
    model = Cart(roles=["a"], counts={"k": 1})
    before = snapshot(model)
    assert unchanged(model, before)
    changes = [
        lambda m: m.roles.append("b"),
        lambda m: m.counts.update(k=2),
        lambda m: setattr(m.prefs, "theme", "dark"),
        lambda m: setattr(m, "prefs", SubPrefs()),
        lambda m: setattr(m, "roles", ("a",)),  # equal items, but not the list the dump makes
        lambda m: setattr(m, "user_id", 7),
    ]
    for change in changes:
        changed = Cart(roles=["a"], counts={"k": 1})
        change(changed)
        assert not unchanged(changed, before)


def test_a_model_with_an_optional_nested_model_is_compared_in_full() -> None:
    class Maybe(BaseModel):
        prefs: Prefs | None = None

    assert plain_snapshotter(Maybe) is not None
    assert plain_unchanged(Maybe) is None
    codec = ModelCodec(Maybe)
    model = codec.new()
    model.prefs = Prefs()
    assert codec.changed(model, codec.defaults) == {"prefs": Prefs().model_dump()}
