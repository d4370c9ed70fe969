"""The classic doors' session data: a ``dict`` of JSON values, and its codec for the engine.

``request.session`` (Starlette/FastAPI) and ``request.ctx.session`` (Sanic) are a ``SessionDict``:
a real ``dict``, so reads cost what a dict read costs, with the session operations as methods. Changes
are found the way the typed door finds them, by comparing snapshots, so a nested change
(``session.setdefault("cart", []).append(item)``) is saved without any call to mark it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, from_json, to_json

from .exceptions import READ_ONLY, SessionStoreUnavailable, SessionValueError
from .session import live_session
from .state import is_state_field, reserved_key
from .values import MAX_DEPTH, check_text, too_deep, unencodable

if TYPE_CHECKING:
    from .codec import Snapshot
    from .session import Session

__all__ = ["DictCodec", "SessionDict"]

# Values that Python compares equal only to values of their own kind; a snapshot keeps them as they are.
_EXACT = frozenset({str, int, type(None)})
_JSON_HINT = (
    "Session values must be JSON: str, int, float, bool, None, and lists and dicts (with str keys) of "
    "them. Store {} as a JSON value (a datetime as .isoformat(), a set as a list)"
)


def check_json(value: Any, path: str, depth: int = 0) -> None:
    """Raise ``SessionValueError``, naming ``path``, unless ``value`` is JSON all the way down, a float
    in it is finite, and it nests at most ``MAX_DEPTH`` deep (``depth`` levels are above it already).

    (Lone surrogates in its strings are left to the encoder, which finds them in C.)
    """
    kind = type(value)
    if kind in _EXACT or kind is bool:
        return
    if kind is float:
        if not math.isfinite(value):
            raise SessionValueError(path, f"is {value!r}, which JSON cannot hold", _JSON_HINT.format("it"))
    elif kind is list or kind is dict:
        if depth == MAX_DEPTH:
            raise too_deep(path)
        depth += 1
        if kind is list:
            for index, item in enumerate(value):
                if type(item) not in _EXACT:  # a str, an int or None needs no check, nor a path
                    check_json(item, f"{path}[{index}]", depth)
        else:
            for key, item in value.items():
                if type(key) is not str:
                    raise SessionValueError(
                        path, f"has the key {key!r}; JSON keys are str", _JSON_HINT.format("it")
                    )
                if type(item) not in _EXACT:
                    check_json(item, f"{path}[{key!r}]", depth)
    else:
        raise SessionValueError(path, f"is a {kind.__name__}", _JSON_HINT.format(f"a {kind.__name__}"))


def _snapshot_value(value: Any, key: str) -> Any:
    """A value as a snapshot holds it: a str, an int or None as it is; anything else (a container,
    a bool, a float) as its JSON bytes. Python calls 1, True and 1.0 equal, JSON does not: bytes keep
    a change between them a change. No JSON value is bytes, so the two forms never meet."""
    if type(value) in _EXACT:
        return value
    path = f"session[{key!r}]"
    check_json(value, path)
    try:
        return to_json(value)
    except PydanticSerializationError as exc:  # a lone surrogate inside
        raise unencodable(path, value, exc) from None


class SessionDict(dict[str, Any]):
    """One request's session as a ``dict`` of JSON values, with the session operations as methods.

    Assigning a value that cannot be stored (not JSON, NaN, a lone surrogate, nested more than
    ``MAX_DEPTH`` deep) raises ``SessionValueError`` (a ``TypeError``) at once. ``clear()`` ends the
    session (the article's logout): the stored record is deleted and the cookie expired, like
    ``destroy``.
    """

    __slots__ = ("_live", "accessed")

    def __init__(self, live: Mapping[int, Session[Any]], data: Iterable[Any] = ()) -> None:
        super().__init__(data)
        self._live = live
        self.accessed = False
        """Set when the app reached the session through ``request.session`` (then ``Vary: Cookie``)."""

    # -- the operations ------------------------------------------------------------------------

    def _session(self) -> Session[Any]:
        return live_session(
            self._live,
            self,
            "This session belongs to a request that has ended; use the session of the current "
            "request (request.session).",
        )

    def live(self) -> Session[Any]:
        """The request's session behind this dict: where the library's features (login, CSRF,
        flash messages) keep their state. Raises ``SessionUsageError`` once the request has ended."""
        return self._session()

    def regenerate(self) -> None:
        """Give the session a new ID when the response starts, keeping its data: call it at login."""
        self._session().regenerate()

    def destroy(self) -> None:
        """End the session: empty now; the record is deleted and the cookie expired at commit.

        Values set afterwards start a new session under a new ID.
        """
        self._session().destroy()

    def clear(self) -> None:
        """End the session, as ``destroy`` does (an emptied session has nothing left to keep)."""
        self._session().destroy()

    def set_expiry(self, seconds: float | timedelta | None) -> None:
        """Remember me: keep the session (and a persistent cookie) ``seconds`` from now, within
        SESSION_MAX_AGE; ``None`` makes it a browser-session cookie again."""
        self._session().set_expiry(seconds)

    def mark_accessed(self) -> None:
        """Called by Starlette's ``Request.session``: the response now depends on the cookie."""
        self.accessed = True

    # -- JSON only -----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise SessionValueError(
                f"session[{key!r}]", f"has a key of type {type(key).__name__}, but Session keys are str", ""
            )
        if key[:1] == "$" and is_state_field(key):  # the library's own fields: a forged login, say
            raise reserved_key(key)
        # The path is spelt only for a check that needs it: an ASCII key and an int or None value,
        # the common assignment, cost no string building (about 0.1 us a write, measured).
        if not key.isascii():
            check_text(f"session[{key!r}] (its key)", key)
        if type(value) is str:
            if not value.isascii():
                check_text(f"session[{key!r}]", value)
        elif type(value) not in _EXACT:
            _snapshot_value(value, key)  # the full check, with the encoder's for lone surrogates
        super().__setitem__(key, value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> SessionDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __repr__(self) -> str:
        return f"SessionDict({dict.__repr__(self)})"


class _ReadOnlySessionDict(SessionDict):
    """The degraded stand-in: every change raises ``SessionStoreUnavailable`` (a 503)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise SessionStoreUnavailable(READ_ONLY)

    __setitem__ = __delitem__ = pop = popitem = setdefault = update = __ior__ = _refuse


class DictCodec:
    """The codec of ``SessionDict`` data: each top-level key is one stored field."""

    __slots__ = ("_live",)
    checks_keys = True
    """``SessionDict`` refuses the library's own field names when assigned: none reach a commit."""

    def __init__(self, live: Mapping[int, Session[Any]]) -> None:
        self._live = live
        """The door's live sessions by ``id(data)``, where a SessionDict finds its own."""

    @property
    def defaults(self) -> Snapshot:
        return {}

    @property
    def keeps_unknown_fields(self) -> bool:
        return True

    def new(self) -> SessionDict:
        return SessionDict(self._live)

    def new_read_only(self) -> SessionDict:
        return _ReadOnlySessionDict(self._live)

    def decode(self, document: bytes) -> SessionDict:
        data = from_json(document)
        if type(data) is not dict:
            raise ValueError(f"a session document must be a JSON object, not {type(data).__name__}")
        return SessionDict(self._live, data)

    @staticmethod
    def snapshot(data: SessionDict) -> Snapshot:
        for value in data.values():
            if type(value) not in _EXACT:
                return {key: _snapshot_value(item, key) for key, item in data.items()}
        return dict(data)  # str, int and None only: a shallow copy is exact (about 0.3 us, 5 keys)

    @classmethod
    def changed(cls, data: SessionDict, snapshot: Snapshot) -> Snapshot | None:
        current = cls.snapshot(data)
        return None if current == snapshot else current

    @staticmethod
    def reset(data: SessionDict) -> None:
        dict.clear(data)

    @staticmethod
    def encode(name: str, value: Any) -> bytes:
        """A snapshot value as JSON: bytes are JSON already (see ``_snapshot_value``)."""
        if type(value) is bytes:
            return value
        if not name.isascii():
            check_text(f"session[{name!r}] (its key)", name)
        try:
            return to_json(value)
        except PydanticSerializationError as exc:  # a str with a lone surrogate
            raise unencodable(f"session[{name!r}]", value, exc) from None
