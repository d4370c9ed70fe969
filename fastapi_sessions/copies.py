"""Copies of plain session models made without pydantic: snapshots and new instances.

A model is *plain* when each field holds a JSON scalar (int, str, bool, None), a list or a dict of
them, or a nested model whose fields are all scalars, and nothing in it runs code of its own
(validators, serializers, computed fields, ``model_post_init``, private attributes, aliases, extra
fields). For such a model pydantic's JSON-mode dump of a field equals a shallow copy of its value, and
``Model()`` equals a copy of one pristine instance. The copies cost a few hundred instructions where
the serializer costs 14,000 (a snapshot of the benchmark's 7-field model with two lists and a nested
model) and ``Model()`` 70,000 (pydantic deep-copies each mutable default), measured with callgrind.

A value assigned without validation (``session.cart = ("a",)``, ``session.prefs = OtherModel()``) is
not of its declared shape: the copy refuses it (``NotPlain``) and the caller falls back to pydantic.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import BaseMetadata
from pydantic import BaseModel

__all__ = ["NotPlain", "Snapshotter", "plain_new", "plain_snapshotter", "plain_unchanged"]

_SCALARS = (int, str, bool, type(None))
Copy = Callable[[Any], Any]
Snapshotter = Callable[[BaseModel], dict[str, Any]]


class NotPlain(Exception):  # a signal between two functions, never seen by users
    """A value that is not of its field's declared shape: use pydantic's serializer instead."""


def scalar(annotation: Any) -> bool:
    """Whether every value of ``annotation`` is an immutable JSON scalar (int, str, bool or None)."""
    if annotation in _SCALARS:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(type(value) in _SCALARS for value in get_args(annotation))
    if origin is Union or origin is types.UnionType:
        return all(scalar(arg) for arg in get_args(annotation))
    return False


def dumps_as_stored(model: type[BaseModel]) -> bool:
    """Whether ``model`` dumps its fields as they are held, under their own names: no root model,
    extra fields, serializers, aliases, exclusions or constraints that change the dump."""
    if getattr(model, "__pydantic_root_model__", False) or model.model_config.get("extra") == "allow":
        return False
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers:
        return False
    for name, info in model.model_fields.items():
        if info.alias not in (None, name) or info.serialization_alias not in (None, name):
            return False
        if info.exclude or getattr(info, "exclude_if", None) is not None:
            return False
        if not all(isinstance(item, BaseMetadata) for item in info.metadata):  # e.g. a PlainSerializer
            return False
    return True


def runs_no_code(model: type[BaseModel]) -> bool:
    """Whether ``model`` dumps its fields as they are, under their own names, and builds an instance
    from its defaults alone: ``dumps_as_stored``, and no validators, computed fields, post-init or
    private attributes."""
    if not dumps_as_stored(model):
        return False
    decorators = model.__pydantic_decorators__
    if any(
        (
            decorators.validators,
            decorators.field_validators,
            decorators.root_validators,
            decorators.model_validators,
            decorators.computed_fields,
        )
    ):
        return False
    return model.__pydantic_post_init__ is None and not model.__private_attributes__


def _same(value: Any) -> Any:
    return value


def _list(value: Any) -> Any:
    if type(value) is not list:
        raise NotPlain
    return value.copy()


def _dict(value: Any) -> Any:
    if type(value) is not dict:
        raise NotPlain
    return value.copy()


def _nested(model: type[BaseModel]) -> Copy:
    def copy(value: Any) -> Any:
        if type(value) is not model:
            raise NotPlain
        return value.__dict__.copy()

    return copy


def _optional(copy: Copy) -> Copy:
    def optional(value: Any) -> Any:
        return None if value is None else copy(value)

    return optional


def _field_copy(annotation: Any) -> Copy | None:
    """How to snapshot a value of ``annotation``, or None when a copy would not equal its dump."""
    if scalar(annotation):
        return _same
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Union or origin is types.UnionType:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(args) == 2:
            inner = _field_copy(others[0])
            return None if inner is None else _optional(inner)
        return None
    if origin is list and len(args) == 1 and scalar(args[0]):
        return _list
    if origin is dict and len(args) == 2 and args[0] is str and scalar(args[1]):
        return _dict
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and runs_no_code(annotation)
        and all(scalar(info.annotation) for info in annotation.model_fields.values())
    ):
        return _nested(annotation)
    return None


def plain_snapshotter(model: type[BaseModel]) -> Snapshotter | None:
    """A function that snapshots an instance of ``model`` as its JSON-mode dump would, raising
    ``NotPlain`` for a value not of its declared shape; None when ``model`` is not plain."""
    if not runs_no_code(model):
        return None
    copies: list[tuple[str, Copy]] = []
    for name, info in model.model_fields.items():
        copy = _field_copy(info.annotation)
        if copy is None:
            return None
        if copy is not _same:
            copies.append((name, copy))

    def snapshot(instance: BaseModel) -> dict[str, Any]:
        data = instance.__dict__.copy()
        for name, copy in copies:
            data[name] = copy(data[name])
        return data

    return snapshot


def plain_unchanged(model: type[BaseModel]) -> Callable[[BaseModel, dict[str, Any]], bool] | None:
    """A test of whether an instance of ``model`` still equals a snapshot, made without copying the
    lists and dicts (only nested models are looked into); None when ``model`` is not plain.

    False means "perhaps changed": the caller then compares a full snapshot.
    """
    if plain_snapshotter(model) is None:
        return None
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((name, annotation))
        elif not scalar(annotation) and any(
            isinstance(arg, type) and issubclass(arg, BaseModel) for arg in get_args(annotation)
        ):
            return None  # an optional nested model: rare enough to leave to the full comparison

    def unchanged(instance: BaseModel, snapshot: dict[str, Any]) -> bool:
        data = instance.__dict__
        if nested:
            data = data.copy()
            for name, kind in nested:
                value = data[name]
                if type(value) is not kind:
                    return False
                data[name] = value.__dict__
        # A list equals the snapshot's copy of it while its items do; a tuple assigned in its
        # place never does, and the caller's full comparison decides.
        return data == snapshot

    return unchanged


def _instance(
    model: type[BaseModel], values: dict[str, Any], fields_set: frozenset[str] = frozenset()
) -> Any:
    """An instance of ``model`` holding ``values``, as pydantic builds one (``model_construct``)."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def _default_copy(value: Any) -> Copy | None:
    """How to give each new instance its own copy of the default ``value``, or None."""
    if type(value) in _SCALARS:
        return None  # immutable: shared, as pydantic shares it
    if type(value) is list and all(type(item) in _SCALARS for item in value):
        return list.copy
    if type(value) is dict and all(type(k) is str and type(v) in _SCALARS for k, v in value.items()):
        return dict.copy
    kind = type(value)
    if isinstance(value, BaseModel) and _field_copy(kind) is not None:
        fields, fields_set = value.__dict__, frozenset(value.__pydantic_fields_set__)
        return lambda _: _instance(kind, fields.copy(), fields_set)
    raise NotPlain


def plain_new(model: type[BaseModel]) -> Callable[[], Any] | None:
    """A function that makes ``model()`` without pydantic, or None when ``model`` is not plain or a
    default is made by a factory other than ``list`` or ``dict``."""
    if plain_snapshotter(model) is None:
        return None
    defaults: dict[str, Any] = {}
    copies: list[tuple[str, Copy]] = []
    for name, info in model.model_fields.items():
        factory = info.default_factory
        if factory is not None and factory not in (list, dict):
            return None  # its own code, perhaps a different value each time (a timestamp)
        default = info.default if factory is None else factory()
        try:
            copy = _default_copy(default)
        except NotPlain:
            return None
        defaults[name] = default
        if copy is not None:
            copies.append((name, copy))

    def new() -> Any:
        values = defaults.copy()
        for name, copy in copies:
            values[name] = copy(values[name])
        return _instance(model, values)

    made, expected = new(), model()
    if made.__dict__ != expected.__dict__ or type(made.__dict__) is not type(expected.__dict__):
        return None
    return new
