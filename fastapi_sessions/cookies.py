"""Reading our cookie from raw request headers and writing the ``Set-Cookie`` header.

Starlette merges every ``Cookie`` header and lets the last duplicate win; we read every value sent under
our name ourselves, in order, so the caller can take the first one that is really ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formatdate

from .settings import SessionSettings

__all__ = ["CookieWriter", "cookie_values"]

_COOKIE = b"cookie"


def cookie_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every value sent for cookie ``name`` across all ``Cookie`` headers, in order.

    As many as the server let through in its headers: the engine tries only a few of them that have
    our shape (``SessionEngine.load``), and skipping the others costs a regex each.
    """
    found: list[str] = []
    prefix = name + b"="
    for key, raw in headers:
        # find(), not `in`: bytes.__contains__ first tries the operand as an int and formats a
        # TypeError to throw away, which costs more than the search itself.
        if key != _COOKIE or raw.find(prefix) < 0:
            continue
        for part in raw.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                # Taken as sent: we never quote our cookie, so a quoted value is not ours.
                found.append(part[len(prefix) :].decode("latin-1"))
    return found


class CookieWriter:
    """Builds ``Set-Cookie`` header values with the attributes fixed by the settings."""

    __slots__ = ("_attributes", "_delete", "_name")

    def __init__(self, settings: SessionSettings) -> None:
        parts = [f"Path={settings.cookie_path}"]
        if settings.cookie_domain is not None:
            parts.append(f"Domain={settings.cookie_domain}")
        if settings.cookie_secure:
            parts.append("Secure")
        if settings.cookie_httponly:
            parts.append("HttpOnly")
        parts.append(f"SameSite={settings.cookie_samesite.capitalize()}")
        self._name = settings.cookie_name
        self._attributes = "; ".join(parts)
        # The delete cookie carries the same Path and Domain, or the browser keeps the original.
        self._delete = (
            f'{self._name}=""; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; {self._attributes}'
        ).encode("latin-1")

    def set(self, value: str, *, max_age: int | None, now: float) -> bytes:
        """A cookie holding ``value``; a browser-session cookie unless ``max_age`` is given."""
        if max_age is None:
            return f"{self._name}={value}; {self._attributes}".encode("latin-1")
        expires = formatdate(now + max_age, usegmt=True)
        return (f"{self._name}={value}; Max-Age={max_age}; Expires={expires}; {self._attributes}").encode(
            "latin-1"
        )

    def delete(self) -> bytes:
        """A cookie that makes the browser drop ours."""
        return self._delete
