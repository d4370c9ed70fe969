"""Between the user's Pydantic model and stored fields: one JSON document per top-level field.

Loading validates the stored fields, joined into one JSON object, in a single pydantic-core call;
dirty detection compares one ``to_python(mode="json")`` snapshot per side, so nested mutation
(``session.cart.append(...)``) is seen without hooks on the model. For a flat model of immutable
scalars a copy of the instance ``__dict__`` is that snapshot already, and no serializer runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_core import CoreConfig, SchemaSerializer, to_json

from .copies import NotPlain, dumps_as_stored, plain_new, plain_snapshotter, plain_unchanged, scalar
from .exceptions import READ_ONLY, SessionConfigError, SessionStoreUnavailable, SessionValueError
from .values import encode, too_deep, unencodable

__all__ = ["Codec", "ModelCodec", "Snapshot"]

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D")
Snapshot = dict[str, Any]


def dict_is_snapshot(model: type[BaseModel]) -> bool:
    """Whether a copy of an instance's ``__dict__`` equals its snapshot, so no serializer need run.

    True for the common flat session (ids, names, roles, flags): every field an immutable JSON scalar,
    stored under its own name, with nothing that changes how it serializes.
    """
    return dumps_as_stored(model) and all(scalar(info.annotation) for info in model.model_fields.values())


class Codec(Protocol[D]):
    """What the engine needs of a kind of session data: a typed model (``ModelCodec``) or the
    classic door's dict (``classic.DictCodec``)."""

    @property
    def defaults(self) -> Snapshot:
        """The snapshot of a new session."""
        ...

    @property
    def keeps_unknown_fields(self) -> bool:
        """Whether a stored field the data does not define would reach it, or fail it, when
        decoded: the engine then keeps the library's own field out of the document."""
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

    def changed(self, data: D, snapshot: Snapshot) -> Snapshot | None:
        """``data``'s snapshot now if it differs from ``snapshot``, else None; told without building
        one where the codec can."""
        ...

    def reset(self, data: D) -> None:
        """Put ``data`` back to a new session's, in place."""
        ...

    def encode(self, name: str, value: Any) -> bytes:
        """Field ``name``'s JSON-ready value as JSON bytes; ``SessionValueError`` if it cannot be
        stored so that it loads back (see ``fastapi_sessions.values``)."""
        ...


class ModelCodec(Generic[M]):
    """Validates, snapshots and encodes one session model class."""

    __slots__ = (
        "_copy_dict",
        "_copy_fields",
        "_defaults",
        "_keeps_unknown",
        "_model",
        "_new",
        "_non_finite",
        "_read_only",
        "_serializer",
        "_unchanged",
    )

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
        self._serializer = _serializer_keeping_non_finite(model)
        # NaN and Infinity are stored (as JSON's NaN/Infinity, which pydantic reads back into any
        # float) only if the model asks for them in its JSON; else they are refused.
        self._non_finite = model.model_config.get("ser_json_inf_nan") in ("constants", "strings")
        self._copy_dict = dict_is_snapshot(model)
        # Plain models (lists of scalars, flat nested models) snapshot and start without pydantic.
        self._copy_fields = None if self._copy_dict else plain_snapshotter(model)
        self._unchanged = None if self._copy_dict else plain_unchanged(model)
        self._new: Callable[[], M] = plain_new(model) or model
        self._keeps_unknown = bool(getattr(model, "__pydantic_root_model__", False)) or (
            model.model_config.get("extra") in ("allow", "forbid")
        )
        self._defaults = self.snapshot(model())
        self._read_only: type[M] | None = None

    def new(self) -> M:
        """A session model with every field at its default."""
        return self._new()

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

    @property
    def keeps_unknown_fields(self) -> bool:
        """True for a model that keeps (``extra="allow"``) or forbids unknown fields, or a root model."""
        return self._keeps_unknown

    def decode(self, document: bytes) -> M:
        """Validate a stored JSON document; raises ``ValueError`` (pydantic's ``ValidationError``)."""
        # The validator itself: model_validate_json adds a Python frame and five keywords to the call.
        model: M = self._model.__pydantic_validator__.validate_json(document)
        return model

    def snapshot(self, model: M) -> Snapshot:
        """The model as JSON-ready Python data, keyed like the stored fields."""
        if self._copy_dict:  # immutable scalars only: the same dict, without a serializer run
            return model.__dict__.copy()
        if self._copy_fields is not None:
            try:
                return self._copy_fields(model)
            except NotPlain:  # a value assigned without validation: the serializer knows what to do
                pass
        # round_trip: values valid as input again, and computed fields left out (they are derived).
        try:
            data: Snapshot = self._serializer.to_python(model, mode="json", by_alias=True, round_trip=True)
        except ValueError as exc:  # pydantic-core's own error, or a UnicodeEncodeError from a key
            raise self._unserializable(model, exc) from None
        return data

    def _unserializable(self, model: M, exc: ValueError) -> SessionValueError:
        """The error for a model that cannot be dumped, naming the field that fails on its own."""
        for name, value in model.__dict__.items():
            try:
                self._serializer.to_python(model, mode="json", round_trip=True, include={name})
            except ValueError:
                if "depth" in str(exc):  # pydantic-core gives up at about 255 levels
                    return too_deep(name)
                return unencodable(name, value, exc)
        return SessionValueError(type(model).__name__, f"cannot be written as JSON ({exc})", "")

    def changed(self, model: M, snapshot: Snapshot) -> Snapshot | None:
        """``model``'s snapshot now if it differs from ``snapshot``, else None."""
        if self._copy_dict:  # the dict is the snapshot: compare it, and copy it only if it changed
            return None if model.__dict__ == snapshot else model.__dict__.copy()
        if self._unchanged is not None and self._unchanged(model, snapshot):
            return None  # told without a copy of the lists and nested models
        current = self.snapshot(model)
        return None if current == snapshot else current

    def reset(self, model: M) -> None:
        """Put every field of ``model`` back to its default, in place."""
        fresh = self._new()
        for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__"):
            object.__setattr__(model, slot, getattr(fresh, slot))
        object.__setattr__(model, "__pydantic_private__", fresh.__pydantic_private__)

    def encode(self, name: str, value: Any) -> bytes:
        """Field ``name``'s JSON-ready value as JSON bytes; ``SessionValueError`` if it cannot be
        stored so that it loads back (see ``fastapi_sessions.values``)."""
        kind = type(value)
        if kind is int or kind is bool or (kind is str and value.isascii()):
            # Nothing in it can be too deep, non-finite or a lone surrogate: the common write of a
            # scalar skips the checks' call (about 0.15 us a changed field, measured).
            return to_json(value)
        return encode(name, value, non_finite=self._non_finite)


def _serializer_keeping_non_finite(model: type[BaseModel]) -> SchemaSerializer:
    """The model's serializer, except that a NaN or an Infinity in an untyped field (``Any``, a
    ``dict[str, Any]``) stays a float in the JSON-mode dump, as it does in a ``float`` field; the
    model's own one turns it into None there, and the change would be saved without a word.

    Built from the model's core schema and its config, as pydantic builds its own.
    """
    schema = model.__pydantic_core_schema__
    found: Any = schema
    if found.get("type") == "definitions":  # a model that refers to itself, or to others
        found = found["schema"]
        if found.get("type") == "definition-ref":
            refs = {item.get("ref"): item for item in schema.get("definitions", ())}
            found = refs.get(found["schema_ref"], {})
    config: CoreConfig = found.get("config", {}) if found.get("type") == "model" else {}
    return SchemaSerializer(schema, {**config, "ser_json_inf_nan": "constants"})
