"""What every command shares: exit codes, the error that carries one, and the settings, store and
engine a command runs with, built exactly as the app builds them."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..clock import Clock
from ..dictsession import DictCodec, SessionDict
from ..encryption import encrypt_store
from ..engine import SessionEngine
from ..exceptions import CorruptRecordError, SessionConfigError
from ..settings import SessionSettings
from ..stores.base import SessionStore
from ..stores.factory import check_store_settings, store_from_settings

__all__ = ["CliError", "Context", "Exit", "redact_url"]

T = TypeVar("T")

# Query options whose values are never printed (redis-py takes ?password=, libpq ?password= too).
_SECRET_OPTIONS = ("pass", "secret", "token", "key")


class Exit(enum.IntEnum):
    """The exit codes, for deploy scripts (``docs/cli.md`` lists them)."""

    OK = 0
    NOT_FOUND = 1
    """``inspect``: the cookie opens no session (bad signature, expired, missing, corrupt)."""
    USAGE = 2
    """A bad command line (argparse's own code), or an ``--env-file`` that does not exist."""
    CONFIG = 3
    """The ``SESSION_*`` settings are invalid, or the store they name cannot be built."""
    STORE = 4
    """The store could not be reached, or failed."""
    UNSUPPORTED = 5
    """The store lacks the capability the command needs (the per-user index, statistics, purge)."""


class CliError(Exception):
    """A user-facing failure: printed as one message, without a traceback, and exited with ``code``."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def redact_url(url: str) -> str:
    """``url`` fit to print: its password, and query options that look secret, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        options = parse_qsl(parts.query, keep_blank_values=True)
        secret = [any(word in name.lower() for word in _SECRET_OPTIONS) for name, _ in options]
        if netloc == parts.netloc and not any(secret):
            return url
        pairs = zip(options, secret, strict=True)
        query = [(name, "***" if hidden else value) for (name, value), hidden in pairs]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
    except ValueError:  # not even a URL (a bad port): say only what kind of thing it is
        return url.partition("://")[0] + "://..." if "://" in url else "(not a URL)"


def print_json(data: Any) -> None:
    """``data`` as indented JSON on standard output."""
    print(json.dumps(data, indent=2, sort_keys=False))


def note(text: str) -> None:
    """A remark for the operator, on standard error (standard output stays the command's result)."""
    print(f"note: {text}", file=sys.stderr)


@dataclass
class Context:
    """What a command runs with: where the settings come from, and a store given by embedding code."""

    env_file: Path | None
    clock: Clock
    store: SessionStore | None = None
    """A store to use instead of the one ``SESSION_STORE_URL`` names (``main(store=...)``); left open."""

    def settings(self) -> SessionSettings:
        """The ``SESSION_*`` settings, from the environment and ``.env`` (or ``--env-file``), validated
        as the app validates them at start-up."""
        try:
            if self.env_file is None:
                return SessionSettings()
            if not self.env_file.is_file():
                raise CliError(
                    f"--env-file {self.env_file}: no such file. Give the path of the .env file the app "
                    "reads, or leave the option out to read the environment and ./.env.",
                    Exit.USAGE,
                )
            return SessionSettings(_env_file=self.env_file)
        except SessionConfigError as exc:
            raise CliError(f"{exc}\nFix the variables named above.", Exit.CONFIG) from exc

    def where(self, settings: SessionSettings) -> str:
        """The store, as messages name it: its URL without secrets, or the class of a store given."""
        if self.store is not None:
            return type(self.store).__name__
        return f"SESSION_STORE_URL={redact_url(settings.store_url)}"

    def is_memory(self, settings: SessionSettings) -> bool:
        """Whether the store is an in-memory one this command built: empty, and not the app's."""
        return self.store is None and settings.store_url.lower().startswith("memory:")

    @asynccontextmanager
    async def engine(self, settings: SessionSettings) -> AsyncIterator[SessionEngine[SessionDict]]:
        """The store and a session engine over it, as the app's manager builds them (the same checks
        of the settings against the store); a store this built is closed on the way out."""
        store = self.store
        try:
            if store is not None:
                check_store_settings(settings, store)
            else:
                store = store_from_settings(settings, clock=self.clock)
        except SessionConfigError as exc:
            raise CliError(str(exc), Exit.CONFIG) from exc
        except ImportError as exc:  # the store's extra is missing; the message names the install
            raise CliError(f"SESSION_STORE_URL: {exc}", Exit.CONFIG) from exc
        try:
            store = encrypt_store(store, settings)  # as the app's doors do: SESSION_ENCRYPTION_KEYS
        except (SessionConfigError, ImportError) as exc:
            if self.store is None:
                await store.aclose()
            raise CliError(str(exc), Exit.CONFIG) from exc
        try:
            try:
                engine = SessionEngine(DictCodec({}), settings, store, self.clock)
            except SessionConfigError as exc:
                raise CliError(str(exc), Exit.CONFIG) from exc
            yield engine
        finally:
            if self.store is None:
                await store.aclose()

    async def call(self, settings: SessionSettings, what: str, operation: Awaitable[T]) -> T:
        """Await a store call; a failure (other than a corrupt record) becomes a ``STORE`` exit that
        says what failed and where."""
        try:
            return await operation
        except (CliError, CorruptRecordError):
            raise
        except Exception as exc:
            raise CliError(
                f"The session store ({self.where(settings)}) failed to {what}: {type(exc).__name__}: "
                f"{exc}\nCheck that it is up and reachable from here, and SESSION_STORE_URL.",
                Exit.STORE,
            ) from exc
