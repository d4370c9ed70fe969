"""The headers a session door adds to a response: ``Vary: Cookie``, and a ``Cache-Control`` that keeps
caches from storing our ``Set-Cookie``.

One home for these rules, so every door answers alike: the ASGI hook applies them to raw header lists,
the Sanic door to Sanic's header map. Values are bytes, as HTTP sends them; names are in lower case.
"""

from __future__ import annotations

__all__ = [
    "CACHE_CONTROL",
    "NO_STORE",
    "SET_COOKIE",
    "VARY",
    "VARY_COOKIE",
    "cache_control_with_cookie",
    "vary_with_cookie",
]

VARY = b"vary"
CACHE_CONTROL = b"cache-control"
SET_COOKIE = b"set-cookie"
#: The ``Vary`` value of a response that had none.
VARY_COOKIE = b"Cookie"
#: The ``Cache-Control`` value of a response that sets our cookie and had none.
NO_STORE = b"no-store"


def vary_with_cookie(value: bytes) -> bytes | None:
    """The app's ``Vary`` value with ``Cookie`` added; None when it names ``Cookie`` (or ``*``) already."""
    tokens = {token.strip().lower() for token in value.split(b",")}
    if b"cookie" in tokens or b"*" in tokens:
        return None
    return value + b", Cookie"


def cache_control_with_cookie(value: bytes) -> bytes | None:
    """The app's ``Cache-Control`` value made safe for a response that sets our cookie; None when it is
    safe already (``no-store``, or ``private``: only the browser's own cache may keep it).

    ``no-cache="Set-Cookie"`` keeps the app's caching (``public, max-age=600``) for everything else.
    """
    lowered = value.lower()
    if lowered.find(b"no-store") >= 0 or lowered.find(b"private") >= 0:  # find: see cookie_values
        return None
    return value + b', no-cache="Set-Cookie"'
