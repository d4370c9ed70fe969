"""``secret``: new keys for ``SESSION_SECRET_KEY`` and ``SESSION_ENCRYPTION_KEYS``."""

from __future__ import annotations

import argparse
import base64
import secrets

from ..settings import MIN_KEY_LENGTH
from .context import Context, Exit

__all__ = ["encryption_key", "register", "secret_key"]

SECRET_BYTES = 32
"""Random bytes in a signing key: 256 bits, 43 characters, over the ``MIN_KEY_LENGTH`` of 32."""
ENCRYPTION_BYTES = 32
"""An AES-256-GCM key's length; printed as URL-safe base64 (44 characters)."""


def secret_key() -> str:
    """A signing key for ``SESSION_SECRET_KEY``, from the OS CSPRNG."""
    key = secrets.token_urlsafe(SECRET_BYTES)
    assert len(key) >= MIN_KEY_LENGTH  # noqa: S101 - 43 characters, by construction
    return key


def encryption_key() -> str:
    """A key for ``SESSION_ENCRYPTION_KEYS``: URL-safe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(ENCRYPTION_BYTES)).decode("ascii")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "secret",
        help="print a new random key",
        description=(
            "Print a new random key on standard output, and nothing else: a signing key for "
            "SESSION_SECRET_KEY (256 bits), or with --encryption a key for SESSION_ENCRYPTION_KEYS "
            "(URL-safe base64 of 32 random bytes). To rotate, move the old signing key to "
            "SESSION_SECRET_KEY_FALLBACKS; put a new encryption key first in SESSION_ENCRYPTION_KEYS."
        ),
    )
    parser.add_argument(
        "--encryption", action="store_true", help="a key for SESSION_ENCRYPTION_KEYS instead"
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, context: Context) -> Exit:
    print(encryption_key() if args.encryption else secret_key())
    return Exit.OK
