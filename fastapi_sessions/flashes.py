"""Flash messages: one-shot notes that survive a redirect ("Saved.", "You have been logged out.").

A request adds them; the next request that reads them gets them once: reading takes them out of the
session (so a read that finds some is a write), and a request that does not read them leaves them for
a later one. They are kept in the library's own state of the session (``state["flash"]``), never in
the app's model or dict, at most ``MAX_FLASHES`` of them: past that, the oldest is dropped.

The typed door has ``sessions.flash(session, ...)`` and ``sessions.flashes(session)``; the classic
door ``flash(request, ...)`` and ``get_flashed_messages(request)``, as Flask has them. Both work on the
request's ``Session`` through ``add_flash`` and ``take_flashes``, which any door can call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, overload

from starlette.requests import HTTPConnection

from .exceptions import SessionUsageError
from .middleware import request_session

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "MAX_FLASHES",
    "Flash",
    "FlashCategory",
    "add_flash",
    "flash",
    "get_flashed_messages",
    "take_flashes",
]

FlashCategory = Literal["info", "success", "warning", "error"]
"""What a message is about, for its styling: ``info`` unless said."""

MAX_FLASHES = 32
"""Messages kept per session until read; adding one more drops the oldest."""

STATE_KEY = "flash"
"""Where the pending messages are kept in the session's own state: a list of
``{"message": str, "category": str}``."""

_CATEGORIES: tuple[str, ...] = get_args(FlashCategory)


@dataclass(frozen=True, slots=True)
class Flash:
    """One flash message."""

    message: str
    category: FlashCategory = "info"


def add_flash(session: Session[Any], message: str, category: FlashCategory = "info") -> None:
    """Keep ``message`` in ``session`` until a request reads it; saved at commit (creating the session
    if there is none, as after ``destroy``)."""
    if type(message) is not str:
        raise SessionUsageError(f"A flash message is a str, not a {type(message).__name__}.")
    if category not in _CATEGORIES:
        raise SessionUsageError(
            f"{category!r} is not a flash category; use one of {', '.join(map(repr, _CATEGORIES))}."
        )
    stored = _decode(session.state.get(STATE_KEY))
    pending = [{"message": f.message, "category": f.category} for f in stored]
    pending.append({"message": message, "category": category})
    session.set_state(STATE_KEY, pending[-MAX_FLASHES:])


def take_flashes(session: Session[Any]) -> list[Flash]:
    """The messages ``session`` holds, oldest first, taken out of it (the removal is saved at commit).

    Later calls in the same request give the same messages again (a page layout and its content may
    both ask); messages added after the first call wait for a later request.
    """
    memo = session.memo()
    taken: list[Flash] | None = memo.get(STATE_KEY)
    if taken is None:
        stored = session.state.get(STATE_KEY)
        taken = memo[STATE_KEY] = _decode(stored)
        if stored is not None:
            session.set_state(STATE_KEY, None)
    return list(taken)


def _decode(stored: object) -> list[Flash]:
    """The messages of a stored list; an entry that is not one (a corrupt record) is skipped."""
    if type(stored) is not list:
        return []
    return [
        Flash(entry["message"], entry["category"])
        for entry in stored
        if type(entry) is dict
        and type(entry.get("message")) is str
        and entry.get("category") in _CATEGORIES
    ]


# -- the classic door ------------------------------------------------------------------------------


def flash(connection: HTTPConnection, message: str, category: FlashCategory = "info") -> None:
    """Keep ``message`` in ``request.session`` until a request reads it (``SessionMiddleware`` apps)."""
    add_flash(request_session(connection).live(), message, category)


@overload
def get_flashed_messages(
    connection: HTTPConnection,
    *,
    with_categories: Literal[False] = False,
    category_filter: Iterable[FlashCategory] = (),
) -> list[str]: ...


@overload
def get_flashed_messages(
    connection: HTTPConnection,
    *,
    with_categories: Literal[True],
    category_filter: Iterable[FlashCategory] = (),
) -> list[tuple[FlashCategory, str]]: ...


def get_flashed_messages(
    connection: HTTPConnection,
    *,
    with_categories: bool = False,
    category_filter: Iterable[FlashCategory] = (),
) -> list[str] | list[tuple[FlashCategory, str]]:
    """The flash messages of ``request.session``, taken out of it, as Flask's function gives them.

    The messages (oldest first), or with ``with_categories=True`` ``(category, message)`` pairs.
    ``category_filter`` keeps only those categories; as in Flask, the others are taken all the same.
    Calls after the first in one request give the same messages again.
    """
    flashes = take_flashes(request_session(connection).live())
    wanted = frozenset(category_filter)
    if wanted:
        flashes = [f for f in flashes if f.category in wanted]
    if with_categories:
        return [(f.category, f.message) for f in flashes]
    return [f.message for f in flashes]
