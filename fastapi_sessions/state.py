"""What the library itself keeps in a session, beside the app's data: who logged in and when, a CSRF
token, flash messages, when the ID last rotated.

It is stored as one more field of the record, named ``STATE_FIELD``, which no typed model field can
use (pydantic gives no field a name starting with ``$``) and the classic door refuses as a key. The
app's model never sees it, and a session that holds none costs its reads nothing: the field is parsed
only when a feature asks for it.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json, to_json

from .exceptions import SessionValueError

__all__ = ["STATE_FIELD", "decode_state", "encode_state", "reserved_key"]

STATE_FIELD = "$fs"
"""The stored field that holds the library's own state of a session, a JSON object."""


def decode_state(stored: bytes | None) -> dict[str, Any]:
    """The state held in a record's ``STATE_FIELD`` value; empty when there is none.

    A value that is not a JSON object is treated as no state: the worst a corrupt one can do is to
    forget a login or a flash message, never to fail the request.
    """
    if stored is None:
        return {}
    try:
        state = from_json(stored)
    except ValueError:
        return {}
    return state if type(state) is dict else {}


def encode_state(state: dict[str, Any]) -> bytes:
    """The state as the JSON object stored under ``STATE_FIELD``."""
    return to_json(state)


def reserved_key() -> SessionValueError:
    """The error for app data stored under the library's own field name."""
    return SessionValueError(
        f"session[{STATE_FIELD!r}]",
        "is the name under which fastapi_sessions keeps its own state (logins, CSRF tokens, flash "
        "messages)",
        "Use another key",
    )
