"""The client a Redis store builds for itself (``RedisStore.from_url``, ``SESSION_STORE_URL``,
``RedisBackend``): redis-py's, with the defaults a session store needs under load and faults.

Imported by ``stores/redis.py`` once redis-py is known to be installed.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ..exceptions import SessionConfigError

_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - the [redis] extra brings it
    _hiredis = None

__all__ = ["DEFAULT_MAX_CONNECTIONS", "new_client"]

# Encoding options under which hiredis packs as redis-py's encoder does (UTF-8, strict).
_PLAIN = {(None, None), ("utf-8", None), (None, "strict"), ("utf-8", "strict")}
_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}

# Connections in the pool of a store built from a URL (?max_connections=N), as in redis-py 8.
DEFAULT_MAX_CONNECTIONS = 100

# What tells redis-py to send no CLIENT SETINFO on connect: driver_info since redis-py 7.2,
# lib_name and lib_version before (deprecated since).
_NO_CLIENT_INFO: dict[str, None] = (
    {"driver_info": None}
    if importlib.util.find_spec("redis.driver_info")
    else {"lib_name": None, "lib_version": None}
)


def new_client(url: str | None, *, timeout: float, **client_options: Any) -> Redis:
    """A client on a new connection pool, with the store's defaults; no connection is made here.

    From ``url`` when given, else from the options alone (``host=``, ``port=``, ``db=`` ...).
    """
    # The store's own deadline bounds every call; redis-py's per-read timeout would only add a
    # second timer to each command (measured: ~5% of a read under load).
    client_options.setdefault("socket_timeout", None)
    client_options.setdefault("socket_connect_timeout", timeout)
    # A pooled connection that a Redis restart closed fails once; retry it on a fresh one, briefly
    # (the store's deadline still bounds the whole call).
    client_options.setdefault("retry", Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2))
    if sys.version_info >= (3, 12):
        # CPython gh-136234: from 3.12 on, writing to a connection that was reset while idle raises
        # AttributeError or TypeError from inside asyncio instead of ConnectionResetError, which
        # redis-py would retry. Retry those too, or every such reset costs a request a 503.
        client_options.setdefault("retry_on_error", [AttributeError, TypeError])
    client_options.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)  # a URL's option wins
    # A new connection goes straight to its first command. redis-py 8 first sends HELLO 3, then two
    # CLIENT SETINFO: three replies to wait for, so with Redis answering in 0.25 s a new connection
    # needed the whole 1 s deadline, timed out, was discarded, and the next request started cold
    # again (100% 503 from a slow but working Redis). RESP2 needs no HELLO, and no client info
    # means no SETINFO; ?protocol=3 in the URL brings RESP3 back, at one round trip per connection.
    client_options.setdefault("protocol", 2)
    for name, value in _NO_CLIENT_INFO.items():
        client_options.setdefault(name, value)
    if url is None:
        client = Redis(**client_options)
    else:
        try:
            client = Redis.from_url(url, **client_options)
        except ValueError as exc:
            raise SessionConfigError(f"Invalid Redis URL for the session store: {exc}") from exc
    pool = client.connection_pool
    options = pool.connection_kwargs
    if _hiredis is not None and (options.get("encoding"), options.get("encoding_errors")) in _PLAIN:
        pool.connection_class = _packing_with_hiredis(pool.connection_class)
    return client


def _packing_with_hiredis(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` (plain, TLS or Unix socket) with commands packed by hiredis' C packer.

    redis-py's sync client packs with hiredis when it is installed; its asyncio client always packs
    in Python, joining the buffer anew for every argument: 21 us for a login's create (28 arguments)
    against 5 us in C, measured. The ``[redis]`` extra brings hiredis.
    """
    packing = _PACKING.get(base)
    if packing is None:
        packing = _PACKING[base] = type(base.__name__, (_HiredisPacking, base), {})
    return packing


class _HiredisPacking:
    """The packing half of the connection classes ``_packing_with_hiredis`` makes."""

    def pack_command(self, *args: Any) -> list[bytes]:
        command = args[0]  # redis-py splits 'CONFIG GET' and the like into two arguments
        if isinstance(command, str):
            args = (*command.encode().split(), *args[1:])
        elif b" " in command:
            args = (*command.split(), *args[1:])
        try:
            return [_hiredis.pack_command(args)]
        except TypeError:  # a bytearray (packed as redis-py packs it), or a bool, None or other type
            # (redis-py's own DataError)
            packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
            return packed
