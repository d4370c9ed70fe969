"""Replicated Redis set-ups for the failover tests, started from a server binary: never the shared server.

* :func:`sentinel_setup`: a master with replicas, watched by Sentinels (the same binary in
  ``--sentinel`` mode), each on a free port with a temp dir of its own.
* :func:`replicated_cluster`: a Cluster of masters, each with a replica.

Waiting is always polling a condition under a generous hang guard, never a fixed sleep: the tests
must pass on a slow, shared CI machine. The helpers are async (``redis.asyncio`` admin clients) so the
load a test runs on the same event loop keeps flowing while they wait.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .redis_support import Server, answers, free_port, server_binary, start_server

SERVICE = "mymaster"
# Any server may become a master: none waits the default 5 s for more replicas before a full sync.
REPLICATION = ("--repl-diskless-sync-delay", "0")
HANG_GUARD = 90.0  # seconds: a condition not met by then is a failure, not a slow machine
POLL = 0.05


async def until(what: str, check: Callable[[], Awaitable[bool]], guard: float = HANG_GUARD) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails after ``guard`` seconds."""
    start = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - start
        except (OSError, RedisConnectionError, RedisTimeoutError) as exc:  # starting, loading or killed
            last = exc
        else:
            last = None
        if time.monotonic() - start > guard:
            raise AssertionError(f"still waiting after {guard} s for: {what} (last error: {last!r})")
        await anyio.sleep(POLL)


def admin(port: int) -> Redis:
    """A direct client for one server or sentinel (short timeouts, no retries)."""
    return Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, retry=None)


async def command(port: int, *args: Any) -> Any:
    """One command on a fresh connection to ``port``."""
    client = admin(port)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()


async def info(port: int, section: str) -> dict[str, Any]:
    client = admin(port)
    try:
        result: dict[str, Any] = await client.info(section)
        return result
    finally:
        await client.aclose()


async def replica_in_sync(replica: int, master: int) -> bool:
    """``replica`` replicates ``master``, its link is up, and it has all that the master had when
    asked first (the master's offset keeps moving under load: "equal now" may never happen)."""
    theirs = await info(master, "replication")
    mine = await info(replica, "replication")
    if mine.get("role") != "slave" or int(mine.get("master_port", 0)) != master:
        return False
    if mine.get("master_link_status") != "up":
        return False
    return bool(int(mine["slave_repl_offset"]) >= int(theirs["master_repl_offset"]))


def kill(server: Server) -> None:
    """SIGKILL: a crash, no shutdown, no last word to the replicas."""
    server.process.kill()
    server.process.wait(10)


async def restart(server: Server, *, replica_of: int) -> Server:
    """A killed server back on its port as a replica of ``replica_of``, as an operator brings back a
    node that lost its data (nothing persists here). Not as an empty master: a second failover could
    promote that. Started in a thread so that the test's load keeps running; the caller stops it."""
    shutil.rmtree(server.directory, ignore_errors=True)
    args = (*REPLICATION, "--replicaof", "127.0.0.1", str(replica_of))
    return await anyio.to_thread.run_sync(lambda: start_server(*args, port=server.port))


# -- Sentinel --------------------------------------------------------------------------------------


@dataclass
class SentinelSetup:
    servers: list[Server]
    """The data servers; ``servers[0]`` was the master at start."""
    sentinels: list[Server]
    quorum: int
    restarted: list[Server] = field(default_factory=list)
    """Servers brought back by :meth:`restart`; stopped with the rest."""

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    async def master_port(self, sentinel: Server | None = None) -> int:
        """The master's port as one sentinel reports it."""
        port = (sentinel or self.sentinels[0]).port
        host_port = await command(port, "SENTINEL", "get-master-addr-by-name", SERVICE)
        return int(host_port[1])

    async def wait_for_new_master(self, old: int) -> int:
        """Poll until every sentinel reports a master other than ``old``; its port."""

        async def moved() -> bool:
            ports = {await self.master_port(s) for s in self.sentinels}
            return len(ports) == 1 and old not in ports

        await self.until(f"the sentinels to report a master other than :{old}", moved)
        return await self.master_port()

    async def wait_until_replicated(self, master: int, replicas: list[int]) -> None:
        """Poll until each of ``replicas`` replicates ``master`` and has caught up with it."""
        for port in replicas:
            await self.until(
                f":{port} in sync with the master :{master}", lambda p=port: replica_in_sync(p, master)
            )

    async def until(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        """:func:`until`, and if it fails, what the sentinels logged."""
        try:
            await until(what, check)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self, lines: int = 40) -> str:
        """The end of each sentinel's log: what they saw and did."""
        parts = []
        for watcher in self.sentinels:
            log = Path(watcher.directory) / "sentinel.log"
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            parts.append(f"--- sentinel :{watcher.port} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def server_on(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    async def restart(self, server: Server, *, replica_of: int) -> Server:
        again = await restart(server, replica_of=replica_of)
        self.restarted.append(again)
        return again


async def sentinel_master(port: int) -> dict[str, str]:
    """SENTINEL MASTER as a dict of strings (servers answer a flat list or a map)."""
    raw = await command(port, "SENTINEL", "MASTER", SERVICE)
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {_text(k): _text(v) for k, v in pairs}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _start_sentinel(master: int, quorum: int) -> Server:
    binary = server_binary()
    if binary is None:
        raise RuntimeError("no redis-server or valkey-server binary found")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="fastapi-sessions-sentinel-")
    config = Path(directory) / "sentinel.conf"
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f'dir "{directory}"\n'
        f'logfile "{directory}/sentinel.log"\n'
        f"sentinel monitor {SERVICE} 127.0.0.1 {master} {quorum}\n"
        # Production values are larger (30 s by default). Not 1 s: a sentinel pings a new master only
        # after its 1 s ping period, so with 1 s it may find the master it just promoted "down" and fail
        # over again (seen with Redis 7.0).
        f"sentinel down-after-milliseconds {SERVICE} 3000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Sentinel on port {port} did not start")
        time.sleep(0.02)
    return Server(port, process, directory)


@asynccontextmanager
async def sentinel_setup(replicas: int = 1, sentinels: int = 3) -> AsyncIterator[SentinelSetup]:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a majority), all in sync
    and agreed on the master before the block runs; everything is stopped afterwards."""
    started: list[Server] = []
    quorum = sentinels // 2 + 1
    try:
        master = start_server(*REPLICATION)
        started.append(master)
        for _ in range(replicas):
            started.append(start_server(*REPLICATION, "--replicaof", "127.0.0.1", str(master.port)))
        watchers = [_start_sentinel(master.port, quorum) for _ in range(sentinels)]
        started.extend(watchers)
        setup = SentinelSetup(started[: 1 + replicas], watchers, quorum)
        await setup.wait_until_replicated(master.port, [s.port for s in setup.servers[1:]])

        async def agreed() -> bool:
            for watcher in watchers:
                state = await sentinel_master(watcher.port)
                if int(state["num-other-sentinels"]) != sentinels - 1:
                    return False
                if int(state["num-slaves"]) != replicas:
                    return False
            return True

        await until("the sentinels to know each other and every replica", agreed)
        try:
            yield setup
        finally:
            started.extend(setup.restarted)
    finally:
        for server in started:
            server.stop()


# -- Cluster ---------------------------------------------------------------------------------------


@dataclass
class ClusterSetup:
    masters: list[Server]
    replicas: list[Server]
    """``replicas[i]`` replicates ``masters[i]`` at start."""

    @property
    def nodes(self) -> list[Server]:
        return self.masters + self.replicas

    def first_slot(self, index: int) -> int:
        """The first slot of ``masters[index]`` at start: the slots are shared out evenly, in order."""
        return index * (16384 // len(self.masters))

    def last_slot(self, index: int) -> int:
        """The last slot of ``masters[index]`` at start."""
        return 16383 if index == len(self.masters) - 1 else self.first_slot(index + 1) - 1

    async def node_id(self, port: int) -> str:
        return str((await command(port, "CLUSTER", "MYID")).decode())

    async def owner_of_slot(self, port: int, slot: int) -> int:
        """The port of the master that node ``port`` believes serves ``slot``."""
        for start, end, master, *_ in await command(port, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"no node serves slot {slot}")

    async def wait_for_owner(self, slot: int, owner: int, judges: list[int]) -> None:
        """Poll until every node in ``judges`` says ``owner`` serves ``slot``."""

        async def agreed() -> bool:
            return all([await self.owner_of_slot(p, slot) == owner for p in judges])

        await until(f"the cluster to agree that :{owner} serves slot {slot}", agreed)


def _cluster_node() -> tuple[Server, int]:
    bus = free_port()  # the default bus port (port + 10000) may not exist for ephemeral ports
    node = start_server(
        *REPLICATION,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        # Not 2 s (the other cluster tests' value): under a busy CI machine a healthy master that misses
        # pings for that long may be failed over, which is another test.
        "--cluster-node-timeout",
        "3000",
        "--cluster-port",
        str(bus),
    )
    return node, bus


@asynccontextmanager
async def replicated_cluster(masters: int = 3) -> AsyncIterator[ClusterSetup]:
    """``masters`` masters with all slots, each with one in-sync replica; stopped afterwards."""
    started: list[Server] = []
    try:
        first_bus = 0
        for index in range(2 * masters):
            node, bus = _cluster_node()
            started.append(node)
            if index == 0:
                first_bus = bus
        setup = ClusterSetup(started[:masters], started[masters:])
        for index, node in enumerate(setup.masters):
            first, last = setup.first_slot(index), setup.last_slot(index)
            await command(node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for node in setup.nodes[1:]:
            await command(node.port, "CLUSTER", "MEET", "127.0.0.1", setup.masters[0].port, first_bus)
        ids = [await setup.node_id(m.port) for m in setup.masters]

        for replica, master_id in zip(setup.replicas, ids, strict=True):

            async def knows(port: int = replica.port, wanted: str = master_id) -> bool:
                return wanted.encode() in await command(port, "CLUSTER", "NODES")

            await until(f":{replica.port} to learn about master {master_id}", knows)
            await command(replica.port, "CLUSTER", "REPLICATE", master_id)
        for replica, master in zip(setup.replicas, setup.masters, strict=True):
            await until(
                f":{replica.port} in sync with :{master.port}",
                lambda r=replica.port, m=master.port: replica_in_sync(r, m),
            )

        async def healthy() -> bool:
            for node in setup.nodes:
                if b"cluster_state:ok" not in await command(node.port, "CLUSTER", "INFO"):
                    return False
            return True

        await until("cluster_state:ok on every node", healthy)
        yield setup
    finally:
        for node in started:
            node.stop()


__all__ = [
    "HANG_GUARD",
    "REPLICATION",
    "SERVICE",
    "ClusterSetup",
    "SentinelSetup",
    "admin",
    "command",
    "info",
    "kill",
    "replica_in_sync",
    "replicated_cluster",
    "restart",
    "sentinel_setup",
    "until",
]
