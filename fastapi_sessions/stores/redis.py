"""The Redis store, on ``redis.asyncio``: standalone, Sentinel-managed or Cluster clients.

Each session is one Redis hash: one hash field per top-level session field (``=name``), plus the
metadata fields ``c`` (created), ``e`` (expires), ``p`` (persistent) and ``v`` (version), and write
tokens (``redis_lua`` has the details). Writes go through Lua scripts run by SHA (redis-py reloads
them on ``NOSCRIPT``), so each operation is one command: a read with its rolling TTL refresh, a
create that never overwrites, an update that never resurrects and writes only the fields that
changed. The client a store builds for itself comes from ``redis_client``.

Every call runs under this store's own deadline (``timeout``), whatever the client's socket settings,
so a dead or black-holed server costs a request at most that long.

With ``wait_replicas`` (``SESSION_STORE_WAIT_REPLICAS``) each write is pipelined with ``WAIT``, so it is
only acknowledged once that many replicas have it: a failover then keeps every acknowledged write.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping, Sequence
from typing import Any

try:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.commands.core import AsyncScript
    from redis.exceptions import ResponseError
except ImportError as exc:  # pragma: no cover - exercised in the no-extra nox session
    raise ImportError(
        "The Redis session store needs redis-py: pip install 'pselfastapise-async[redis]'"
    ) from exc

from ..exceptions import SessionConfigError, SessionStoreError
from . import redis_lua as lua
from .base import CorruptRecordError, SessionChange, SessionMeta, SessionRecord, WriteResult, meets
from .deadline import deadline as _deadline
from .index import IndexedSession
from .redis_client import new_client

__all__ = ["RedisStore", "new_client"]

DEFAULT_PREFIX = "session:"
DEFAULT_TIMEOUT = 1.0
# Keys asked of each SCAN step and removed by each UNLINK in clear(): one short command at a time.
_CLEAR_BATCH = 500
# How many of its deadlines a store gives the check of a write whose reply never came: longer than a
# plain call's, since a wrong guess would log the user out. Only this rare path ever waits that long.
_SETTLE_DEADLINES = 3
_DATA = b"="  # data fields are "=name"; metadata fields are single letters
_USERS = "users:"  # after the prefix, the start of each user's index key

_RESULTS = {
    b"ok": WriteResult.OK,
    b"missing": WriteResult.MISSING,
    b"conflict": WriteResult.CONFLICT,
    b"exists": WriteResult.EXISTS,
}


def _ms(seconds: float) -> int:
    return max(math.ceil(seconds * 1000), 1)


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _float(value: float) -> bytes:
    return repr(float(value)).encode()


def _meta_fields(meta: SessionMeta) -> list[bytes]:
    return [
        b"c",
        _float(meta.created_at),
        b"e",
        _float(meta.expires_at),
        b"p",
        b"1" if meta.persistent else b"0",
        b"v",
        str(meta.version).encode(),
    ]


def _decode(raw: Mapping[bytes, bytes] | Sequence[bytes]) -> SessionRecord | None:
    """A record from HGETALL's reply (a dict, or a flat list from a script)."""
    if not raw:
        return None
    stored = raw if isinstance(raw, Mapping) else dict(zip(raw[::2], raw[1::2], strict=True))
    try:
        meta = SessionMeta(
            created_at=float(stored[b"c"]),
            expires_at=float(stored[b"e"]),
            persistent=stored[b"p"] == b"1",
            version=int(stored[b"v"]),
        )
        fields = {name[1:].decode(): value for name, value in stored.items() if name[:1] == _DATA}
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"session hash lacks valid metadata ({exc!r})") from exc
    # float() takes 'nan' and 'inf' too; we never write them.
    if not (math.isfinite(meta.created_at) and math.isfinite(meta.expires_at)):
        raise CorruptRecordError(f"session hash has a time that is not finite ({meta[:2]!r})")
    return SessionRecord(fields, meta)


def _literal_pattern(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern: its glob characters escaped."""
    return "".join("\\" + char if char in "\\*?[]" else char for char in text)


def _change_args(change: SessionChange, expected: Mapping[str, bytes | None] | None) -> list[bytes]:
    """UPDATE's and RENAME's arguments after the token: the fields to set, the expectations, the
    fields to delete. An expected value goes as it is (b'' for absent: a JSON value is never empty);
    this sends the changed fields' old values along, and only under version checks."""
    sets: list[bytes] = []
    for name, value in change.fields.items():
        sets += (_DATA + name.encode(), value)
    if change.expires_at is not None:
        sets += (b"e", _float(change.expires_at))
    if change.persistent is not None:
        sets += (b"p", b"1" if change.persistent else b"0")
    checks: list[bytes] = []
    for name, expected_value in (expected or {}).items():
        checks += (_DATA + name.encode(), expected_value or b"")
    removed = [_DATA + name.encode() for name in change.removed]
    return [str(len(sets)).encode(), *sets, str(len(checks)).encode(), *checks, *removed]


class _NeverSent(SessionStoreError):
    """No connection came free within the deadline: the command was never sent."""


class _Unconfirmed(SessionStoreError):
    """The write ran on the master, but fewer replicas than ``wait_replicas`` confirmed it."""


def _checked_wait_replicas(wait_replicas: int, client: Redis | RedisCluster, timeout: float) -> int:
    """``wait_replicas`` if this client can run a WAIT of up to ``timeout / 2`` on the write's
    connection; a ``SessionConfigError`` that says why not otherwise."""
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
        raise SessionConfigError(
            f"wait_replicas (SESSION_STORE_WAIT_REPLICAS) must be a whole number >= 0, not "
            f"{wait_replicas!r}: the number of replicas that must confirm each session write."
        )
    if not wait_replicas:
        return 0
    if isinstance(client, RedisCluster):
        raise SessionConfigError(
            "wait_replicas (SESSION_STORE_WAIT_REPLICAS) is not supported on a Redis Cluster client: "
            "WAIT must run on the connection that wrote, which redis-py's cluster client does not "
            "guarantee. Set it to 0; see the Redis page of the docs for what a Cluster failover keeps."
        )
    socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    if socket_timeout is not None and socket_timeout <= timeout / 2:
        raise SessionConfigError(
            f"The Redis client's socket_timeout ({socket_timeout} s) would cut short the WAIT of a "
            f"confirmed write, which may take up to {timeout / 2:g} s (half of SESSION_STORE_TIMEOUT) "
            "with wait_replicas (SESSION_STORE_WAIT_REPLICAS): leave socket_timeout unset (the store's "
            "deadline bounds every call) or above that. With Sentinel, give the sentinels' own "
            "timeouts in sentinel_kwargs=, not as Sentinel(..., socket_timeout=...)."
        )
    return wait_replicas


class RedisStore:
    """Sessions in Redis, one hash per session under ``prefix + key``.

    Build it with ``from_url`` (the store then owns its connection pool and closes it in
    ``aclose``), or pass any ``redis.asyncio`` client you manage yourself: a plain ``Redis``,
    the master of a ``Sentinel``, or a ``RedisCluster``. A client passed in is never closed by us.
    The client must not use ``decode_responses=True``.

    A store that owns its pool runs at most ``max_connections`` calls at once: a burst larger than
    the pool waits for a free connection, within the store's deadline, where redis-py's pool would
    fail at once (``MaxConnectionsError``, a 503 from a healthy Redis). A pool of your own keeps its
    own rules (use a ``BlockingConnectionPool`` to get the same).
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        owns_client: bool = False,
        built_from_settings: bool = False,
        wait_replicas: int = 0,
    ) -> None:
        if not prefix:
            raise SessionConfigError(
                "The Redis key prefix must not be empty: a prefix keeps session keys apart from "
                "every other key in the database (e.g. 'session:')."
            )
        if client.get_encoder().decode_responses:
            raise SessionConfigError(
                "The Redis client for the session store must not use decode_responses=True: "
                "session data is bytes. Pass a client built without it."
            )
        if not timeout > 0:
            raise SessionConfigError(f"The store timeout must be positive, not {timeout!r}.")
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self._owns_client = owns_client
        self._cluster = isinstance(client, RedisCluster)
        # What errors tell the operator to change: the SESSION_* settings only if they built it.
        self._timeout_name = "SESSION_STORE_TIMEOUT" if built_from_settings else "the store's timeout="
        self._pool_size_hint = (
            "?max_connections=N in SESSION_STORE_URL"
            if built_from_settings
            else "max_connections where the store is built (?max_connections=N in its URL)"
        )
        # A free connection for each call, or a wait for one. redis-py's BlockingConnectionPool
        # waits too, but costs every command an asyncio.Condition round (+15 us a read, measured);
        # an uncontended semaphore costs 0.8 us.
        self._connections: asyncio.Semaphore | None = None
        if owns_client and isinstance(client, Redis):
            self._connections = asyncio.Semaphore(client.connection_pool.max_connections)
        self.wait_replicas = _checked_wait_replicas(wait_replicas, client, timeout)
        self._load_touch = client.register_script(lua.LOAD_TOUCH)
        self._create = client.register_script(lua.CREATE)
        self._update = client.register_script(lua.UPDATE)
        self._rename = client.register_script(lua.RENAME)
        self._delete_if = client.register_script(lua.DELETE_IF_VERSION)
        self._settle_rename = client.register_script(lua.SETTLE_RENAME)
        self._index_add = client.register_script(lua.INDEX_ADD)
        self._index_list = client.register_script(lua.INDEX_LIST)
        self._load_with_ttl = client.register_script(lua.LOAD_WITH_TTL)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        built_from_settings: bool = False,
        wait_replicas: int = 0,
        **client_options: Any,
    ) -> RedisStore:
        """A store on a new connection pool for ``url`` (``redis://``, ``rediss://``, ``unix://``).

        Query options are redis-py's (``?socket_timeout=0.5`` ...); no connection is made here.
        ``built_from_settings``: the manager built it from ``SESSION_STORE_*``, which errors then name.
        """
        client = new_client(url, timeout=timeout, **client_options)
        return cls(
            client,
            prefix=prefix,
            timeout=timeout,
            owns_client=True,
            built_from_settings=built_from_settings,
            wait_replicas=wait_replicas,
        )

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def _run(self, what: str, call: Awaitable[Any], *, deadlines: int = 1) -> Any:
        """Await ``call`` under this store's deadline (or ``deadlines`` of them); failures become
        ``SessionStoreError``."""
        connections = self._connections
        started = False
        seconds = self.timeout * deadlines
        try:
            async with _deadline(seconds):
                if connections is None:
                    return await call
                async with connections:
                    started = True
                    return await call
        except TimeoutError as exc:
            if connections is not None and not started:
                if isinstance(call, Coroutine):  # never awaited: the deadline ran out first
                    call.close()
                raise _NeverSent(
                    f"Every connection to Redis stayed busy for {seconds:g} s ({self._timeout_name}) "
                    f"while a session {what} waited for one: Redis is slow, or the pool is too small "
                    f"for the load; raise {self._pool_size_hint} (now "
                    f"{self.client.connection_pool.max_connections})."  # type: ignore[union-attr]
                ) from exc
            raise SessionStoreError(
                f"Redis did not answer a session {what} within {seconds:g} s ({self._timeout_name}); "
                "check that Redis is up and reachable."
            ) from exc
        except ResponseError as exc:
            if str(exc).startswith("WRONGTYPE"):
                raise CorruptRecordError(f"the session key holds another Redis type ({exc})") from exc
            raise

    async def load(self, key: str, *, touch: float | None = None) -> SessionRecord | None:
        name = self._key(key)
        if touch is None:
            raw = await self._run("read", self.client.hgetall(name))
        else:
            raw = await self._run("read", self._load_touch(keys=[name], args=[_ms(touch)]))
        return _decode(raw)

    async def create(self, key: str, record: SessionRecord, *, ttl: float) -> WriteResult:
        # A token costs each session about 20 bytes in Redis: the price of telling a create that
        # redis-py sent again after a lost reply from a taken key.
        args: list[Any] = [_ms(ttl), os.urandom(8).hex().encode()]
        for name, value in record.fields.items():
            args += (_DATA + name.encode(), value)
        args += _meta_fields(record.meta)
        created = await self._run("create", self._write("create", self._create, [self._key(key)], args))
        return WriteResult.OK if created == 1 else WriteResult.EXISTS

    async def update(
        self,
        key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        # A token only where a false conflict could matter: version-checked writes.
        token = b"" if expected is None else os.urandom(8).hex().encode()
        args: list[Any] = [_ms(ttl), token, *_change_args(change, expected)]
        result = await self._run("update", self._write("update", self._update, [self._key(key)], args))
        return _RESULTS[_bytes(result)]

    async def rename(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        *,
        ttl: float,
        expected: Mapping[str, bytes | None] | None = None,
    ) -> WriteResult:
        if self._cluster:
            return await self._rename_across_slots(old_key, new_key, change, ttl, expected)
        token = os.urandom(8).hex().encode()
        args: list[Any] = [_ms(ttl), token, *_change_args(change, expected)]
        keys = [self._key(old_key), self._key(new_key)]
        rename = self._write("regeneration", self._rename, keys, args)
        try:
            result = await self._run("regeneration", rename)
        except (ResponseError, CorruptRecordError, _NeverSent):
            raise  # Redis refused it, or never got it: nothing ran
        except _Unconfirmed:
            raise  # it ran, on the master alone: a 503, as SESSION_STORE_WAIT_REPLICAS promises
        except Exception as exc:
            # No answer (the deadline, a lost connection): the script may have run, or still may. The
            # request must either send the new cookie or leave the old session usable, so find out.
            result = await self._settle(keys, token, exc)
        return _RESULTS[_bytes(result)]

    async def _settle(self, keys: list[str], token: bytes, failure: Exception) -> Any:
        """What became of the regeneration with ``token`` that got no answer (``failure``): its result
        if it ran; else it is called off for good and the old session stays, and this raises."""
        check = self._settle_rename(keys=keys, args=[token])
        try:
            result = await self._run("regeneration check", check, deadlines=_SETTLE_DEADLINES)
        except Exception as exc:
            raise SessionStoreError(
                f"{failure} The check of whether the regeneration happened failed too "
                f"({type(exc).__name__}); if it did happen, the user has to log in again."
            ) from failure
        if _bytes(result) == b"called off":
            raise SessionStoreError(
                f"{failure} The regeneration was called off: the session keeps its old ID."
            ) from failure
        return result

    async def _rename_across_slots(
        self,
        old_key: str,
        new_key: str,
        change: SessionChange,
        ttl: float,
        expected: Mapping[str, bytes | None] | None,
    ) -> WriteResult:
        """On Cluster the two keys live in different slots: create the new one, then drop the old.

        A failure between the steps leaves the old session usable (and the new one orphaned until
        its TTL), never no session at all.
        """
        old = await self.load(old_key)
        if old is None:
            return WriteResult.MISSING
        if not meets(old.fields, expected):
            return WriteResult.CONFLICT
        result = await self.create(new_key, old.applied(change), ttl=ttl)
        if result is not WriteResult.OK:
            return result
        deleted = await self._run(
            "regeneration",
            self._delete_if(keys=[self._key(old_key)], args=[str(old.meta.version).encode()]),
        )
        if deleted == 1:
            return WriteResult.OK
        # The old session changed or vanished meanwhile: undo, and let the request see a conflict.
        await self.delete(new_key)
        return WriteResult.CONFLICT

    def _write(self, what: str, script: AsyncScript, keys: list[str], args: list[Any]) -> Awaitable[Any]:
        """Run a write script; with ``wait_replicas``, confirmed by the replicas (``_replicated``).

        A confirmed write sends the script's text (EVAL), not its SHA: a pipelined EVALSHA that meets
        an empty script cache (a new master after a failover) would cost a second WAIT to retry.
        """
        if not self.wait_replicas:
            return script(keys=keys, args=args)
        return self._replicated(what, ("EVAL", script.script, len(keys), *keys, *args))

    async def _replicated(self, what: str, command: tuple[Any, ...]) -> Any:
        """``command`` and ``WAIT wait_replicas`` in one pipeline: one round trip, on one connection.

        WAIT counts the replicas that have every write made so far *on its connection*, so it must
        share the write's connection; a pipeline guarantees that (a separate call could take another
        pooled connection and count nothing). Fewer replicas than asked within half the deadline
        raise ``SessionStoreError``: the write is on the master alone, and a failover now could lose
        it.
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command(*command)
        pipe.execute_command("WAIT", self.wait_replicas, _ms(self.timeout / 2))
        reply, confirmed = await pipe.execute(raise_on_error=False)
        for result in (reply, confirmed):
            if isinstance(result, Exception):
                raise result
        if confirmed < self.wait_replicas:
            raise _Unconfirmed(
                f"Only {confirmed} of {self.wait_replicas} Redis replicas confirmed a session {what} "
                f"within {self.timeout / 2:g} s (SESSION_STORE_WAIT_REPLICAS={self.wait_replicas}): "
                "the change is on the master alone and a failover now could lose it, so the request "
                "is answered 503. Check that the replicas are up and linked to the master (INFO "
                "replication), or set SESSION_STORE_WAIT_REPLICAS to the number of replicas you run."
            )
        return reply

    async def delete(self, key: str) -> None:
        if self.wait_replicas:
            await self._run("delete", self._replicated("delete", ("DEL", self._key(key))))
        else:
            await self._run("delete", self.client.delete(self._key(key)))

    # -- the user index (``UserIndexStore``) ---------------------------------------------------

    def _index_key(self, user: str) -> str:
        """The sorted set of ``user``'s session keys: under the prefix (``clear`` removes it), named by
        a hash of the user (any identifier fits a key), in a hash tag: on a Cluster, one slot per user."""
        digest = hashlib.blake2b(user.encode(), digest_size=16, person=b"fastapi-users").hexdigest()
        return f"{self.prefix}{_USERS}{{{digest}}}"

    async def index_add(self, user: str, key: str, *, until: float, now: float) -> None:
        args = [_float(now), _float(until), key.encode()]
        await self._run(
            "index update", self._write("index update", self._index_add, [self._index_key(user)], args)
        )

    async def index_remove(self, user: str, key: str) -> None:
        command = ("ZREM", self._index_key(user), key)
        if self.wait_replicas:
            await self._run("index update", self._replicated("index update", command))
        else:
            await self._run("index update", self.client.execute_command(*command))

    async def index_sessions(self, user: str, *, now: float) -> list[IndexedSession]:
        """One command for the index, then one per session listed (on a Cluster, each on its slot)."""
        keys = await self._run(
            "index read", self._index_list(keys=[self._index_key(user)], args=[_float(now)])
        )
        listed = []
        for raw_key in keys:
            key = _bytes(raw_key).decode()
            reply = await self._run("read", self._load_with_ttl(keys=[self._key(key)]))
            try:
                record = _decode(reply[1:]) if reply else None
            except CorruptRecordError:  # its next load discards it; not a session to list
                record = None
            if record is not None:
                listed.append(IndexedSession(key, record, now + max(int(reply[0]), 0) / 1000))
        return listed

    async def clear(self) -> None:
        """Delete every key under this store's prefix: all its sessions, everyone logged out.

        Keys are found with SCAN and removed with UNLINK, a batch at a time, so no single command
        blocks Redis the way KEYS would; on a Cluster every primary is scanned. Keys of other prefixes
        stay, except those of a prefix that starts with this one (clearing ``session:`` also clears
        ``session:admin:``). Sessions created while it runs may survive it.
        """
        pattern = _literal_pattern(self.prefix) + "*"
        if isinstance(self.client, RedisCluster):
            for node in self.client.get_primaries():
                await self._unlink_matching(pattern, node)
        else:
            await self._unlink_matching(pattern, None)

    async def _unlink_matching(self, pattern: str, node: ClusterNode | None) -> None:
        """SCAN one server (``node`` of a Cluster, or the only one) and UNLINK what matches."""
        async for keys in self._scan("clear", pattern, node):
            await self._run("clear", self.client.unlink(*keys))

    async def _scan(
        self, what: str, pattern: str, node: ClusterNode | None, kind: str | None = None
    ) -> AsyncIterator[list[bytes]]:
        """The keys of one server (``node`` of a Cluster, or the only one) that match ``pattern``
        (and are of type ``kind``), a SCAN step's batch at a time; never an empty batch."""
        cursor = 0
        while True:
            if node is None:
                scan = self.client.scan(cursor, match=pattern, count=_CLEAR_BATCH, _type=kind)
                cursor, keys = await self._run(what, scan)
            else:  # a Cluster answers with a cursor per node
                scan = self.client.scan(
                    cursor, match=pattern, count=_CLEAR_BATCH, _type=kind, target_nodes=node
                )
                cursors, keys = await self._run(what, scan)
                cursor = cursors[node.name]
            if keys:
                yield keys
            if cursor == 0:
                return

    # -- operations (``PurgingStore``, ``StatsStore``) ------------------------------------------

    async def purge_expired(self) -> int:
        """0: Redis removes expired session keys by itself (each has its TTL); nothing to purge."""
        return 0

    async def stats(self) -> dict[str, int | float | str]:
        """This prefix's sessions, counted with SCAN (a batch at a time, never KEYS), on every primary
        of a Cluster; and from INFO (not on a Cluster) what the server says of its memory, evictions
        and expirations, for the whole server. Keys of a longer prefix that starts with this one
        (``session:admin:`` under ``session:``) are not counted: a store key never holds a ``:``."""
        pattern = _literal_pattern(self.prefix) + "*"
        nodes = self.client.get_primaries() if isinstance(self.client, RedisCluster) else [None]
        users_pattern = _literal_pattern(self.prefix + _USERS) + "*"
        sessions = forwards = users = 0
        start = len(self.prefix)
        for node in nodes:
            async for keys in self._scan("count", pattern, node, "hash"):
                for name in keys:
                    rest = _bytes(name)[start:]
                    if b":" not in rest:  # rotation's forwards are "<key>.forward": no key holds a "."
                        forwards += b"." in rest
                        sessions += b"." not in rest
            async for keys in self._scan("count", users_pattern, node, "zset"):
                users += len(keys)
        figures: dict[str, int | float | str] = {
            "store": "redis",
            "prefix": self.prefix,
            "sessions": sessions,
            "rotation_forwards": forwards,
            "indexed_users": users,
        }
        if isinstance(self.client, Redis):
            info = await self._run("statistics read", self.client.info())
            for field in ("redis_version", "used_memory", "maxmemory", "maxmemory_policy"):
                figures[f"server_{field}"] = info.get(field, "")
            for field in ("evicted_keys", "expired_keys"):
                figures[f"server_{field}"] = info.get(field, 0)
        return figures

    async def aclose(self) -> None:
        """Close the connection pool if this store built it (``from_url``); a client passed in is
        left open: it is yours to close (``await store.client.aclose()``)."""
        if self._owns_client:
            await self.client.aclose()
