"""``RedisBackend``: the shipped Redis store, built from a host, port and database, or from a URL.

Needs the ``[redis]`` extra; importing this module without it raises an ``ImportError`` that names
the install command.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import SessionConfigError
from ..stores.redis import DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisStore, new_client

__all__ = ["RedisBackend"]


class RedisBackend(RedisStore):
    """A ``RedisStore`` on a connection pool of its own.

    It is a ``RedisStore`` in every respect (one hash per session, one command per operation) and
    closes its pool in ``aclose()``. ``clear()`` deletes every key under ``prefix``.

    Args:
        host: The server's host name or address.
        port: The server's port.
        db: The database number.
        password: The password, if the server wants one (with ``url``, a password in the URL wins).
        url: ``redis://``, ``rediss://`` or ``unix://`` instead of ``host``, ``port`` and ``db``.
        prefix: Prepended to every key of this store; keep it apart from the rest of the database.
        timeout: Seconds any one call may take before the request gets a 503.
        **client_options: Passed on to ``redis.asyncio.Redis`` (``ssl=True``, ``max_connections=`` ...).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        *,
        url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        **client_options: Any,
    ) -> None:
        client_options["password"] = password
        if url is None:
            client = new_client(None, timeout=timeout, host=host, port=port, db=db, **client_options)
        elif (host, port, db) != ("localhost", 6379, 0):  # the defaults above
            raise SessionConfigError(
                f"RedisBackend got both url={url.split('@')[-1]!r} and host/port/db: pass one or the "
                "other (the URL names the database too, e.g. 'redis://host:6379/0')."
            )
        else:
            client = new_client(url, timeout=timeout, **client_options)
        super().__init__(client, prefix=prefix, timeout=timeout, owns_client=True)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        **client_options: Any,
    ) -> RedisBackend:
        """The same as ``RedisBackend(url=url, ...)``."""
        return cls(url=url, prefix=prefix, timeout=timeout, **client_options)
