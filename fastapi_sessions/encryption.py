"""Encryption at rest (``SESSION_ENCRYPTION_KEYS``): reading the keys, and wrapping a door's store.

This module is in the core and never imports ``cryptography``: the settings check the keys' shape
without it, and ``encrypt_store`` imports ``fastapi_sessions.stores.encrypted`` (which needs the
``[crypto]`` extra) only when keys are set. The cipher and the record format live there.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from .exceptions import SessionConfigError

if TYPE_CHECKING:
    from .settings import SessionSettings
    from .stores.base import SessionStore

__all__ = ["ENCRYPTION_KEY_HINT", "KEY_BYTES", "decode_key", "encrypt_store"]

KEY_BYTES = 32
"""Bytes in an encryption key: AES-256."""
ENCRYPTION_KEY_HINT = (
    'Generate one with: python -c "import secrets,base64;'
    'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())" '
    "(or: fastapi-sessions secret --encryption)."
)
"""How to make a good encryption key; quoted by every key error."""


def decode_key(text: str, what: str) -> bytes:
    """The 32 bytes of a urlsafe-base64 key, or ``ValueError`` saying what is wrong and how to fix it.

    ``what`` names the key in the message (``SESSION_ENCRYPTION_KEYS[0]``); the key itself never
    appears in it.
    """
    value = text.strip()
    value += "=" * (-len(value) % 4)  # the padding is optional
    try:
        key = base64.b64decode(value, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{what} is not urlsafe base64 (32 random bytes as 43 characters and a '='). "
            + ENCRYPTION_KEY_HINT
        ) from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{what} decodes to {len(key)} bytes; an AES-256 key is {KEY_BYTES}. " + ENCRYPTION_KEY_HINT
        )
    return key


def encrypt_store(store: SessionStore, settings: SessionSettings) -> SessionStore:
    """``store``, wrapped in an ``EncryptedStore`` when ``SESSION_ENCRYPTION_KEYS`` is set.

    Every door calls this on the store it was given or built, so encryption covers every store alike.
    A store that is an ``EncryptedStore`` already is refused when keys are set too: encrypting twice
    would be slower and no safer, and two sets of keys to rotate.
    """
    keys = settings.encryption_key_bytes()
    if not keys:
        return store
    try:
        from .stores.encrypted import EncryptedStore
    except ImportError as exc:
        raise ImportError(
            "SESSION_ENCRYPTION_KEYS is set, and encrypting sessions needs the cryptography package: "
            "pip install 'pselfastapise-async[crypto]' (or unset SESSION_ENCRYPTION_KEYS).",
            name="cryptography",
        ) from exc
    if isinstance(store, EncryptedStore):
        raise SessionConfigError(
            "SESSION_ENCRYPTION_KEYS is set, and the store passed in is an EncryptedStore already: "
            "unset SESSION_ENCRYPTION_KEYS (the store has its keys), or pass the store it wraps."
        )
    return EncryptedStore(store, keys)
