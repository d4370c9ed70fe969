"""What the library itself keeps in a session, beside the app's data: who logged in and when, a CSRF
token, flash messages, when the ID last rotated.

Each entry is stored as one more field of the record, named ``$fs:<entry>`` (``state_field``), which no
typed model field can use (pydantic gives no field a name starting with ``$``) and the classic door
refuses as a key. One field per entry means that two requests changing different entries (a flash
message and a CSRF token, say) merge like any two fields of the app's data. The app's model never sees
them, and a session that holds none costs its reads nothing: entries are parsed only when a feature
asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json, to_json

from .exceptions import SessionValueError

__all__ = [
    "STATE_MARK",
    "STATE_PREFIX",
    "encode_entry",
    "is_state_field",
    "reserved_key",
    "state_field",
    "stored_entry",
    "stored_state",
    "stored_time",
]

STATE_PREFIX = "$fs:"
"""The start of the name of every stored field that holds an entry of the library's own state."""
STATE_MARK = b'"' + STATE_PREFIX.encode()
"""How such a field's name starts inside a record's JSON document (search with ``bytes.find``: on
Python 3.11, ``in`` first tries the needle as an int, raising and clearing a TypeError each time)."""


def state_field(name: str) -> str:
    """The stored field that holds the state entry ``name``."""
    return STATE_PREFIX + name


def is_state_field(name: str) -> bool:
    """Whether a stored field holds an entry of the library's own state."""
    return name.startswith(STATE_PREFIX)


def _parsed(stored: bytes) -> Any:
    """An entry's value; None when it is not JSON (the worst a corrupt entry can do is to forget a
    login or a flash message, never to fail the request)."""
    try:
        return from_json(stored)
    except ValueError:
        return None


def stored_entry(fields: Mapping[str, bytes], name: str) -> Any:
    """The state entry ``name`` held in a record's fields, or None."""
    stored = fields.get(STATE_PREFIX + name)
    return None if stored is None else _parsed(stored)


def stored_state(fields: Mapping[str, bytes]) -> dict[str, Any]:
    """Every state entry held in a record's fields, by entry name."""
    state: dict[str, Any] = {}
    for name, stored in fields.items():
        if name.startswith(STATE_PREFIX):
            value = _parsed(stored)
            if value is not None:
                state[name[len(STATE_PREFIX) :]] = value
    return state


def stored_time(value: object) -> float | None:
    """A clock time read back from a state entry: the number, or None for anything else (a bool is
    an int to Python, and no time)."""
    return float(value) if type(value) is float or type(value) is int else None


def encode_entry(value: Any) -> bytes:
    """A state entry's value as the JSON stored in its field."""
    return to_json(value)


def reserved_key(name: str) -> SessionValueError:
    """The error for app data stored under one of the library's own field names."""
    return SessionValueError(
        f"session[{name!r}]",
        f"has a name starting with {STATE_PREFIX!r}, under which fastapi_sessions keeps its own state "
        "(logins, CSRF tokens, flash messages)",
        "Use another key",
    )
