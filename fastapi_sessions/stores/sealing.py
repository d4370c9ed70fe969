"""Sealing session values: AES-256-GCM under a list of keys, in the format ``EncryptedStore`` stores.

A sealed value is a JSON string, so every store keeps it as it keeps any value: base64 of a format
byte, the id of the key that sealed it (4 bytes), a fresh random nonce (12 bytes) and the ciphertext
with its 16-byte tag. The first key seals, every key opens: the key id picks the key without trying
them all. This is the one module that imports ``cryptography`` (the ``[crypto]`` extra).
"""

from __future__ import annotations

import binascii
import hashlib
import os
from collections.abc import Sequence

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - exercised in the run without extras
    raise ImportError(
        "Encrypting sessions at rest needs the cryptography package: pip install "
        "'pselfastapise-async[crypto]'",
        name="cryptography",
    ) from exc

from ..encryption import KEY_BYTES
from ..exceptions import SessionConfigError
from .base import CorruptRecordError

__all__ = ["Keyring", "key_id"]

_FORMAT = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = 1 + _KEY_ID_BYTES


def key_id(key: bytes) -> bytes:
    """The short id of ``key`` stored with each value it seals (a hash: it says nothing of the key)."""
    return hashlib.sha256(b"fastapi_sessions key id\x00" + key).digest()[:_KEY_ID_BYTES]


class Keyring:
    """AES-256-GCM under a list of keys, newest first: the newest seals, each opens what it sealed."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SessionConfigError("EncryptedStore needs at least one key (SESSION_ENCRYPTION_KEYS).")
        ciphers: dict[bytes, AESGCM] = {}
        for index, key in enumerate(keys):
            if len(key) != KEY_BYTES:
                raise SessionConfigError(
                    f"Encryption key {index} is {len(key)} bytes; an AES-256 key is {KEY_BYTES} "
                    "(SESSION_ENCRYPTION_KEYS holds each in urlsafe base64)."
                )
            kid = key_id(key)
            if kid in ciphers:
                raise SessionConfigError(
                    "SESSION_ENCRYPTION_KEYS lists one key twice; list each key once, newest first."
                )
            ciphers[kid] = AESGCM(key)
        self._ciphers = ciphers
        newest = key_id(keys[0])
        self._header = _FORMAT + newest
        self._newest = ciphers[newest]

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` encrypted under the newest key with a fresh nonce, as a JSON string."""
        nonce = os.urandom(_NONCE_BYTES)
        body = self._header + nonce + self._newest.encrypt(nonce, plaintext, aad)
        return b'"' + binascii.b2a_base64(body, newline=False) + b'"'

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of a value ``seal`` made with this ``aad``; ``CorruptRecordError`` otherwise."""
        if sealed[:1] != b'"' or sealed[-1:] != b'"':
            raise CorruptRecordError("a value is not encrypted")
        try:
            body = binascii.a2b_base64(sealed[1:-1])
        except binascii.Error:
            raise CorruptRecordError("a value is not encrypted") from None
        cipher = self._ciphers.get(body[1:_HEADER]) if body[:1] == _FORMAT else None
        if cipher is None:
            raise CorruptRecordError(
                "a value is sealed with a key that SESSION_ENCRYPTION_KEYS no longer lists, or is not "
                "encrypted"
            )
        nonce_end = _HEADER + _NONCE_BYTES
        try:
            return cipher.decrypt(body[_HEADER:nonce_end], body[nonce_end:], aad)
        except (InvalidTag, ValueError):
            raise CorruptRecordError(
                "a value fails authentication (altered, or copied from another field or session)"
            ) from None
