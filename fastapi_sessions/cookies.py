"""Reading our cookie from raw request headers and writing the ``Set-Cookie`` header.

Starlette merges every ``Cookie`` header and lets the last duplicate win; we read every value sent under
our name ourselves, in order, so the caller can take the first one that is really ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formatdate

from .logs import log
from .settings import SessionSettings

__all__ = ["PARTITIONED_NOT_CROSS_SITE", "PLAIN_HTTP", "CookieWriter", "PlainHttpCheck", "cookie_values"]

_COOKIE = b"cookie"
_HOST = b"host"
_FORWARDED_PROTO = b"x-forwarded-proto"
# Hosts a client sends Secure cookies back to over plain http: browsers treat them as secure origins
# (and *.localhost too), recent curl does the same. Any other http host never gets the cookie back.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: Logged once per door when a Secure cookie goes out over plain http to a host that will not return it.
PLAIN_HTTP = (
    "A Secure session cookie was sent over plain http (%s://%s): clients send it back over https "
    "only (or to localhost), so every request will start a new, empty session. In tests, give the "
    'client an https URL: TestClient(app, base_url="https://testserver"), '
    'client.websocket_connect("wss://testserver/ws"), httpx.AsyncClient(..., '
    'base_url="https://testserver"). In production, serve over TLS, or behind a proxy whose '
    "X-Forwarded-Proto the server trusts (uvicorn --forwarded-allow-ips). For local plain-http "
    "development only, set SESSION_COOKIE_SECURE=false."
)

#: Logged at start-up when a Partitioned cookie is not SameSite=None: it is never sent cross-site.
PARTITIONED_NOT_CROSS_SITE = (
    "SESSION_COOKIE_PARTITIONED=true with SESSION_COOKIE_SAMESITE=%s: a partitioned cookie is meant "
    "for a site embedded in others (an iframe), and browsers send it there only with SameSite=None. "
    "Set SESSION_COOKIE_SAMESITE=none, or drop SESSION_COOKIE_PARTITIONED."
)


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
        if settings.cookie_partitioned:
            parts.append("Partitioned")
            if settings.cookie_samesite != "none":
                log.warning(PARTITIONED_NOT_CROSS_SITE, settings.cookie_samesite)
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


class PlainHttpCheck:
    """Warns, once, when a door sends its ``Secure`` cookie over plain http to a host that will never
    send it back, the silent way to lose every session (a test client on ``http://testserver``).

    Only responses that carry our cookie are checked, and after one warning (or with
    SESSION_COOKIE_SECURE=false) nothing is: an https request costs a scheme comparison.
    """

    __slots__ = ("pending",)

    def __init__(self, settings: SessionSettings) -> None:
        self.pending = settings.cookie_secure
        """True until the warning is logged; False from the start when the cookie is not Secure."""

    def check(self, scheme: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Warn if a cookie sent over ``scheme`` (the ASGI scope's) to the request's ``Host`` is lost,
        unless a proxy says the client spoke https."""
        if scheme != "http" and scheme != "ws":
            return
        host = forwarded = ""
        for name, value in headers:
            if name == _HOST:
                host = value.decode("latin-1")
            elif name == _FORWARDED_PROTO:
                forwarded = value.decode("latin-1")
        # A proxy that terminated TLS says so in X-Forwarded-Proto (the first entry is the client's).
        if forwarded.split(",", 1)[0].strip().lower() == "https":
            return
        if not host or _is_local(host):  # no Host header: nothing to tell
            return
        self.pending = False
        log.warning(PLAIN_HTTP, scheme, host)


def _is_local(host: str) -> bool:
    """True for a ``Host`` value (port and all) a client returns Secure cookies to over http."""
    if host.startswith("["):  # an IPv6 literal: [::1]:8000
        name = host[1 : host.find("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".").lower()
    return name in _LOCAL_HOSTS or name.endswith(".localhost")
