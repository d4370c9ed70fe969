"""CSRF tokens: one secret per session, and the masked copies of it that pages carry.

The secret is 32 random bytes (256 bits, from ``secrets``), kept in the session's own state under
``STATE_KEY`` as base64url text: never in the app's model or dict, and never sent to the browser as
it is. A page carries a *masked* token instead: a fresh random pad of 32 bytes followed by the secret
XOR the pad, base64url-encoded (86 characters). Every response's token differs, so a compressed page
whose length an attacker can watch leaks nothing about the secret (BREACH), and every one of them
unmasks to the same secret. Django masks its tokens the same way (``_mask_cipher_secret``).

The secret itself, sent back as a token, is refused: only a masked token is one (its length alone
tells them apart). The request side (``fastapi_sessions.csrf``) compares
secrets in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import re
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode

__all__ = [
    "SECRET_BYTES",
    "STATE_KEY",
    "TOKEN_LENGTH",
    "mask",
    "new_secret",
    "read_secret",
    "unmask",
]

STATE_KEY = "csrf"
"""The session state entry that holds the secret (see ``fastapi_sessions.state``)."""
SECRET_BYTES = 32
"""The secret's size: 256 random bits."""
TOKEN_LENGTH = 86
"""A masked token's length: 64 bytes (pad and masked secret) in unpadded base64url."""

_SECRET_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{86}")


def _decode(text: str) -> bytes:
    """Unpadded base64url to bytes; ``text`` is known to be of the alphabet and of a valid length."""
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _xor(left: bytes, right: bytes) -> bytes:
    """Two byte strings of ``SECRET_BYTES`` each, XORed."""
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(SECRET_BYTES, "big")


def new_secret() -> str:
    """A new secret, as the session state stores it (43 characters of base64url)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def read_secret(stored: object) -> bytes | None:
    """The secret that a state value holds; None when there is none, or when it is not one of ours
    (a corrupt record): the session then has no token, and a new one is issued."""
    if type(stored) is not str or _SECRET_TEXT.fullmatch(stored) is None:
        return None
    return _decode(stored)


def mask(secret: bytes) -> str:
    """A token for one response: a fresh random pad, then the secret XOR the pad, in base64url."""
    pad = secrets.token_bytes(SECRET_BYTES)
    return urlsafe_b64encode(pad + _xor(pad, secret)).rstrip(b"=").decode("ascii")


def unmask(token: str) -> bytes | None:
    """The secret a masked token carries; None when ``token`` is not shaped like one (wrong length,
    a character outside base64url, the bare secret)."""
    if _TOKEN_TEXT.fullmatch(token) is None:  # also checks the length: TOKEN_LENGTH characters
        return None
    raw = _decode(token)
    return _xor(raw[:SECRET_BYTES], raw[SECRET_BYTES:])
