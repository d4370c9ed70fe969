"""What a session value may be: JSON that every load reads back, checked before anything is written.

A session is stored as JSON and read back by pydantic-core, whose parser refuses a document nested
more than 200 levels deep. So a value is refused with a ``SessionValueError`` that names where it
is, and nothing is written, when it:

* is nested more than ``MAX_DEPTH`` lists and objects deep (saved, it would not load back, and
  the user would be logged out by their own session);
* is a float that JSON cannot hold (NaN, Infinity, -Infinity), unless the session model opts in with
  ``ser_json_inf_nan="constants"`` or ``"strings"`` (saved as JSON's null, it would come back changed);
* holds a str that is not text (a lone surrogate such as ``"\\ud800"``), which has no UTF-8 form.

The checks look at the encoded bytes, in C (a few byte searches and counts: about 0.1 us for a small
value, and 0.5 to 1.5 us per KB of a large one, at write time only); a value is walked in Python only
where they found something that may be a problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from .exceptions import SessionValueError

__all__ = ["MAX_DEPTH", "check_text", "encode", "too_deep", "unencodable"]

#: How deeply lists and objects may nest in one session value: ``[[1]]`` is two levels. Well inside
#: the 200 that pydantic-core's parser reads, with room for the document around the values (one
#: level) and a Backend's dict around that (two).
MAX_DEPTH = 100

_SURROGATE = re.compile("[\ud800-\udfff]")
_NON_FINITE = "a float that JSON cannot hold"
_HOW_NON_FINITE = (
    "Store a finite number or None instead, or let the session model keep them with "
    "model_config = ConfigDict(ser_json_inf_nan='constants')"
)
_NOT_TEXT = "a str with a lone surrogate, which is not text"
_HOW_NOT_TEXT = "Store text only (a str that encodes to UTF-8), or its bytes as base64"


def too_deep(path: str) -> SessionValueError:
    """The error for a value nested deeper than MAX_DEPTH at ``path``."""
    return SessionValueError(
        path,
        f"is nested more than {MAX_DEPTH} lists and objects deep, more than a session can load back",
        "Store a flatter value (for a tree, a list of nodes that name their parent)",
    )


def check_text(path: str, text: str) -> None:
    """Refuse ``text`` if it is not text: a lone surrogate has no UTF-8 form (about 20 ns if ASCII)."""
    if not text.isascii() and _SURROGATE.search(text):
        raise SessionValueError(path, f"is {_NOT_TEXT} ({text!r})", _HOW_NOT_TEXT)


def unencodable(path: str, value: Any, exc: ValueError) -> SessionValueError:
    """The error for a ``value`` that pydantic-core could not write: it names the place of the lone
    surrogate (in a str or a key) that is nearly always the cause."""
    found = _first(path, value, _is_not_text)
    if found is None:
        return SessionValueError(path, f"cannot be written as JSON ({exc})", "")
    return SessionValueError(found[0], f"is {_NOT_TEXT} ({found[1]!r})", _HOW_NOT_TEXT)


def encode(path: str, value: Any, *, non_finite: bool = False) -> bytes:
    """One JSON-ready value as JSON bytes; ``SessionValueError`` naming ``path`` if it cannot be stored.

    ``non_finite``: write NaN and Infinity as JSON's ``NaN``/``Infinity`` (which pydantic reads back
    into any float), instead of refusing them.
    """
    try:
        encoded = to_json(value)
    except PydanticSerializationError as exc:
        raise unencodable(path, value, exc) from None
    # Each level takes two brackets, so a short value (most are) cannot be too deep; the count
    # over-counts (brackets in strings), so the walk decides.
    if (
        len(encoded) > 2 * MAX_DEPTH
        and encoded.count(b"[") + encoded.count(b"{") > MAX_DEPTH
        and (type(value) is list or type(value) is dict)
        and _too_deep(value, 0)
    ):
        raise too_deep(_first_too_deep(path, value, 0))
    # A byte search (memchr) for N and I first: far faster than for "NaN" and "Infinity", which
    # a str may hold too (the walk tells them apart).
    if not non_finite and (
        (encoded.find(b"N") >= 0 and encoded.find(b"NaN") >= 0)
        or (encoded.find(b"I") >= 0 and encoded.find(b"Infinity") >= 0)
    ):
        found = _first(path, value, _is_non_finite)
        if found is not None:
            raise SessionValueError(found[0], f"is {found[1]!r}, {_NON_FINITE}", _HOW_NON_FINITE)
    return encoded


def _too_deep(value: Any, level: int) -> bool:
    """Whether the list or dict ``value``, inside ``level`` others, is or holds one inside MAX_DEPTH
    others: more than MAX_DEPTH levels in all."""
    if level == MAX_DEPTH:
        return True
    items = value.values() if type(value) is dict else value
    return any((type(item) is list or type(item) is dict) and _too_deep(item, level + 1) for item in items)


def _first_too_deep(path: str, value: Any, level: int) -> str:
    """The path of the first list or dict inside MAX_DEPTH others (``value`` is or holds one)."""
    if level == MAX_DEPTH:
        return path
    for where, item in _items(path, value):
        if (type(item) is list or type(item) is dict) and _too_deep(item, level + 1):
            return _first_too_deep(where, item, level + 1)
    raise AssertionError("no container that deep")  # pragma: no cover - _too_deep said there is


def _items(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    if type(value) is dict:
        return ((f"{path}[{key!r}]", item) for key, item in value.items())
    return ((f"{path}[{index}]", item) for index, item in enumerate(value))


def _first(path: str, value: Any, bad: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """The first place in ``value`` (a key or a value) that is ``bad``, and what is there."""
    if bad(value):
        return path, value
    if type(value) is dict:
        for key in value:
            if bad(key):
                return f"{path} (a key)", key
    if type(value) is list or type(value) is dict:
        for where, item in _items(path, value):
            found = _first(where, item, bad)
            if found is not None:
                return found
    return None


def _is_non_finite(value: Any) -> bool:
    return type(value) is float and not math.isfinite(value)


def _is_not_text(value: Any) -> bool:
    return type(value) is str and _SURROGATE.search(value) is not None
