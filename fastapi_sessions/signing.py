"""Session IDs: minted from ``secrets``, signed with itsdangerous, hashed before they reach a store.

The cookie carries ``<id>.<timestamp>.<signature>`` and nothing else. The ID is 256 random bits; a store
and the logs only ever see a hash of it, so neither a store dump nor a log line hands out a cookie.

Both the signature and the store key are bound to a *namespace*, the cookie name: two session set-ups
in one app (a public site and an admin area) that share a key and a store never accept each other's
cookies, and never find each other's records.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from base64 import urlsafe_b64encode
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from itsdangerous import BadData, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes, want_bytes

from .clock import Clock

__all__ = ["SessionSigner", "VerifiedId", "could_be_ours", "new_session_id", "salt", "store_key"]

#: Fixed salt: a cookie signed by us can never pass as another itsdangerous token of the same key.
SALT = b"fastapi_sessions.session-id"
ID_BYTES = 32  # 256 bits
# id (43) + "." + timestamp (<= 8) + "." + SHA-256 signature (43): anything longer is not ours,
# and is refused before any HMAC is computed.
MAX_COOKIE_VALUE = 128
_SHA256_BLOCK = 64
# Verified cookie values kept; past this, the oldest go one at a time as new ones come in.
_CACHE_SIZE = 10_000
# id (43) . timestamp . SHA-256 signature (43 chars; the last one carries 4 bits, so 16 letters).
# Only an ID we could have minted passes: a signed '' or odd payload is no session (CVE-2015-3982).
_CANONICAL = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{1,12}\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def new_session_id() -> str:
    """A fresh session ID with 256 bits from the OS CSPRNG."""
    return secrets.token_urlsafe(ID_BYTES)


def could_be_ours(value: str) -> bool:
    """Whether a cookie value has the exact shape of one we issue; says nothing of its signature.

    Costs no HMAC: a value of any other shape is refused on this alone.
    """
    return len(value) <= MAX_COOKIE_VALUE and _CANONICAL.fullmatch(value) is not None


def salt(namespace: str) -> bytes:
    """The salt of a namespace's signatures: the fixed salt and the cookie name."""
    return SALT + b"|" + namespace.encode("latin-1")


def store_key(session_id: str, namespace: str) -> str:
    """The store's name for a session of ``namespace``: a hash of both, never the ID itself."""
    # A cookie name is an RFC 6265 token, so it holds no NUL: the two parts cannot run together.
    data = namespace.encode("latin-1") + b"\0" + session_id.encode()
    digest = hashlib.blake2b(data, digest_size=18, person=b"fastapi-sess").digest()
    return base64.urlsafe_b64encode(digest).decode()


class VerifiedId(NamedTuple):
    """A session ID whose signature checked out; ``stale_key`` if a fallback key signed it."""

    session_id: str
    key: str
    """The store key of ``session_id``."""
    stale_key: bool


class _KeyedSha256:
    """HMAC-SHA256 (RFC 2104) under one key, with both padded keys hashed once: a signature then
    costs two copies of a hash state. ``hmac.HMAC.copy()`` is Python code (about 1.3 us here);
    this makes the whole HMAC in about 1 us."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        # The key is itsdangerous' derived key, a 32-byte SHA-256 digest: shorter than a block.
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class _Signer(TimestampSigner):
    """itsdangerous' TimestampSigner with keys derived once, and time from our clock."""

    def __init__(self, keys: Sequence[str], clock: Clock, namespace: str) -> None:
        super().__init__(keys, salt=salt(namespace), key_derivation="hmac", digest_method=hashlib.sha256)
        self._clock = clock
        self._derived = {key: super(_Signer, self).derive_key(key) for key in self.secret_keys}
        self._mac = _KeyedSha256(self.derive_key())
        self._stamp: tuple[int, bytes] = (-1, b"")
        """The last timestamp signed, and its text with the separator before it."""

    def get_signature(self, value: str | bytes) -> bytes:
        """itsdangerous' signature (unpadded urlsafe base64), from an HMAC keyed once: itsdangerous
        keys a new one for every value (about 3,000 instructions of each new session's 400,000)."""
        return urlsafe_b64encode(self._mac.digest(want_bytes(value))).rstrip(b"=")

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None:
            return self._derived[self.secret_keys[-1]]
        return self._derived[secret_key if isinstance(secret_key, bytes) else secret_key.encode()]

    def get_timestamp(self) -> int:
        return int(self._clock.time())

    def sign_id(self, session_id: str) -> str:
        """``sign()``'s value for an ASCII ``session_id``, made without its byte juggling: the
        timestamp's text is kept for the second it stands for, and the HMAC is keyed once."""
        timestamp = self.get_timestamp()
        stamp = self._stamp
        if stamp[0] != timestamp:
            stamp = self._stamp = (timestamp, b"." + base64_encode(int_to_bytes(timestamp)))
        value = session_id.encode() + stamp[1]
        return (value + b"." + self.get_signature(value)).decode()


class SessionSigner:
    """Signs session IDs with the current key and verifies them against every accepted key."""

    __slots__ = ("_all", "_clock", "_current", "_max_age", "_namespace", "_order", "_verified")

    def __init__(self, keys: Sequence[str], *, max_age: int, clock: Clock, namespace: str) -> None:
        self._current = _Signer(keys[-1:], clock, namespace)
        self._all = _Signer(keys, clock, namespace) if len(keys) > 1 else None
        self._namespace = namespace
        self._max_age = max_age
        self._clock = clock
        # Cookie values that verified, with their signing time: a browser sends the same value on
        # every request, and the HMAC of an identical string cannot change. Only values that passed
        # the full itsdangerous check get in; the age is re-checked on every hit.
        self._verified: dict[str, tuple[VerifiedId, int]] = {}
        # The cached values, oldest first (some may have left the cache already): when the cache is
        # full, the oldest one goes, so it never empties at once. A plain dict and a deque, not an
        # OrderedDict: a hit, on every request, stays a plain dict lookup (an OrderedDict's costs
        # 9 ns more, measured), and dropping the oldest is O(1) (a dict's first key is not: 1.3 us
        # per insert at 10,000 entries, scanning the deleted slots before it).
        self._order: deque[str] = deque()

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id``, signed with the newest key."""
        return self._current.sign_id(session_id)

    def verify(self, value: str) -> VerifiedId | None:
        """The ID inside a cookie value, or None for anything we did not sign in the last max_age."""
        hit = self._verified.get(value)
        if hit is not None:
            age = int(self._clock.time()) - hit[1]
            if 0 <= age <= self._max_age:
                return hit[0]
            del self._verified[value]
            return None
        # Only the exact text we emit: itsdangerous' base64 decoding is lenient (extra '=', unused
        # low bits), and every spelling would otherwise verify.
        if not could_be_ours(value):
            return None
        try:
            raw = self._current.unsign(value, max_age=self._max_age)
            stale = False
        except BadData:
            if self._all is None:
                return None
            try:
                raw = self._all.unsign(value, max_age=self._max_age)
            except BadData:
                return None
            stale = True
        session_id = raw.decode("ascii")
        verified = VerifiedId(session_id, store_key(session_id, self._namespace), stale)
        if len(self._order) >= _CACHE_SIZE:
            self._verified.pop(self._order.popleft(), None)
        self._order.append(value)
        self._verified[value] = (verified, bytes_to_int(base64_decode(value.rsplit(".", 2)[1])))
        return verified
