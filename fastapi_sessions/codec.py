"""Between the user's Pydantic model and stored fields: one JSON document per top-level field.

Loading validates the stored fields, joined into one JSON object, in a single pydantic-core call;
dirty detection compares one ``to_python(mode="json")`` snapshot per side, so nested mutation
(``session.cart.append(...)``) is seen without hooks on the model. For a flat model of immutable
scalars a copy of the instance ``__dict__`` is that snapshot already, and no serializer runs.
"""

from __future__ import annotations

import types
from typing import Any, Generic, Literal, Protocol, TypeVar, Union, get_args, get_origin

from annotated_types import BaseMetadata
from pydantic import BaseModel
from pydantic_core import to_json

from .exceptions import READ_ONLY, SessionConfigError, SessionStoreUnavailable

__all__ = ["Codec", "ModelCodec", "Snapshot"]

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D")
Snapshot = dict[str, Any]
_SCALARS = (int, str, bool, type(None))


def _scalar(annotation: Any) -> bool:
    """Whether every value of ``annotation`` is an immutable JSON scalar (int, str, bool or None)."""
    if annotation in _SCALARS:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(type(value) in _SCALARS for value in get_args(annotation))
    if origin is Union or origin is types.UnionType:
        return all(_scalar(arg) for arg in get_args(annotation))
    return False


def dict_is_snapshot(model: type[BaseModel]) -> bool:
    """Whether a copy of an instance's ``__dict__`` equals its snapshot, so no serializer need run.

    True for the common flat session (ids, names, roles, flags): every field an immutable JSON scalar,
    stored under its own name, with nothing that changes how it serializes.
    """
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
        if not all(isinstance(item, BaseMetadata) for item in info.metadata):
            return False
        if not _scalar(info.annotation):
            return False
    return True


class Codec(Protocol[D]):
    """What the engine needs of a kind of session data: a typed model (:class:`ModelCodec`) or the
    classic door's dict (``classic.DictCodec``)."""

    @property
    def defaults(self) -> Snapshot:
        """The snapshot of a new session."""
        ...

    def new(self) -> D:
        """A new, empty session."""
        ...

    def new_read_only(self) -> D:
        """A new session whose changes raise ``SessionStoreUnavailable`` (the degraded stand-in)."""
        ...

    def decode(self, document: bytes) -> D:
        """Session data from a stored JSON document; raises ``ValueError`` when it does not fit."""
        ...

    def snapshot(self, data: D) -> Snapshot:
        """The data as JSON-ready Python values, one per stored field: what dirty checks compare."""
        ...

    def same(self, data: D, snapshot: Snapshot) -> bool:
        """Whether ``data``'s snapshot now equals ``snapshot``; without building one where it can."""
        ...

    def reset(self, data: D) -> None:
        """Put ``data`` back to a new session's, in place."""
        ...

    def encode(self, value: Any) -> bytes:
        """One field's JSON-ready value as JSON bytes."""
        ...


class ModelCodec(Generic[M]):
    """Validates, snapshots and encodes one session model class."""

    __slots__ = ("_copy_dict", "_defaults", "_model", "_read_only", "_serializer")

    def __init__(self, model: type[M]) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise SessionConfigError(f"The session model must be a pydantic BaseModel, not {model!r}.")
        required = [name for name, info in model.model_fields.items() if info.is_required()]
        if required:
            raise SessionConfigError(
                f"Every field of the session model {model.__name__} needs a default, because a new "
                f"session starts empty; give these fields a default: {', '.join(required)}."
            )
        self._model = model
        self._serializer = model.__pydantic_serializer__
        self._copy_dict = dict_is_snapshot(model)
        self._defaults = self.snapshot(model())
        self._read_only: type[M] | None = None

    def new(self) -> M:
        """A session model with every field at its default."""
        return self._model()

    def new_read_only(self) -> M:
        """A default session whose attribute assignments raise ``SessionStoreUnavailable`` (503).

        Served when the store is down and ``SESSION_ON_STORE_ERROR=degrade``; it is an instance of
        the user's model class, so every ``isinstance`` check and type still holds.
        """
        if self._read_only is None:

            def refuse(instance: BaseModel, name: str, value: Any) -> None:
                raise SessionStoreUnavailable(READ_ONLY)

            self._read_only = type(self._model.__name__, (self._model,), {"__setattr__": refuse})
        return self._read_only()

    @property
    def defaults(self) -> Snapshot:
        """The snapshot of a new session."""
        return self._defaults

    def decode(self, document: bytes) -> M:
        """Validate a stored JSON document; raises ``ValueError`` (pydantic's ``ValidationError``)."""
        # The validator itself: model_validate_json adds a Python frame and five keywords to the call.
        model: M = self._model.__pydantic_validator__.validate_json(document)
        return model

    def snapshot(self, model: M) -> Snapshot:
        """The model as JSON-ready Python data, keyed like the stored fields."""
        if self._copy_dict:  # immutable scalars only: the same dict, without a serializer run
            return model.__dict__.copy()
        # round_trip: values valid as input again, and computed fields left out (they are derived).
        data: Snapshot = self._serializer.to_python(model, mode="json", by_alias=True, round_trip=True)
        return data

    def same(self, model: M, snapshot: Snapshot) -> bool:
        """Whether ``model``'s snapshot now equals ``snapshot``."""
        if self._copy_dict:  # the dict is the snapshot: compare it without copying it
            return model.__dict__ == snapshot
        return self.snapshot(model) == snapshot

    def reset(self, model: M) -> None:
        """Put every field of ``model`` back to its default, in place."""
        fresh = self._model()
        for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__"):
            object.__setattr__(model, slot, getattr(fresh, slot))
        object.__setattr__(model, "__pydantic_private__", fresh.__pydantic_private__)

    @staticmethod
    def encode(value: Any) -> bytes:
        """One field's JSON-ready value as JSON bytes."""
        return to_json(value)
