"""A loopback TCP proxy for fault tests: put it between a client and a real server, then break the link.

    async with TcpProxy(server_port) as proxy:      # listens on 127.0.0.1:<free port>
        client = connect(proxy.url)
        await proxy.refuse()       # nothing listens any more: connects are refused, links cut
        await proxy.blackhole()    # connects are accepted and bytes read, nothing ever answers
        proxy.slow(0.5)            # every chunk from the server is held 0.5 s before it goes on
        proxy.hold_replies()       # replies from the server wait (any mode)...
        proxy.release_replies()    # ...until now, in order, on their own connections
        proxy.cut()                # close every current connection now (the mode stays)
        await proxy.forward()      # back to normal
        proxy.drop_reply(b"EVALSHA")  # the server runs the next such command; its reply is lost
        proxy.drop_reply(b"EVALSHA", cut=True)  # ...and then the connection dies
        proxy.hold_request(b"EVALSHA")  # the next such command does not reach the server...
        await proxy.deliver_held()  # ...until now, late, on a connection of its own: its reply

It only ever listens on and connects to 127.0.0.1. Modes apply at once, to new connections and to
the chunks still flowing on existing ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Literal

__all__ = ["Mode", "TcpProxy"]

Mode = Literal["forward", "refuse", "blackhole", "slow"]

_LOOPBACK = "127.0.0.1"
_CHUNK = 65536


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class _Link:
    """One client connection and, unless it was black-holed from the start, its upstream twin."""

    __slots__ = ("client", "cut_after_drop", "drop_replies", "tainted", "upstream")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tainted = False  # bytes were dropped: the stream is no longer a valid protocol stream
        self.drop_replies = 0  # replies from the server still to be dropped on this link
        self.cut_after_drop = False  # close the link once they are

    def close(self, *, reset: bool = False) -> None:
        """Close both sides: a FIN after the buffered bytes, or with ``reset`` at once (an RST)."""
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0: close() sends an RST, like a dropped connection
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif not writer.is_closing():
                writer.close()


class TcpProxy:
    """A switchable TCP proxy from ``127.0.0.1:port`` to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int, *, port: int | None = None, mode: Mode = "forward") -> None:
        self.target_port = target_port
        self.port = port or _free_port()
        self._mode: Mode = mode
        self._delay = 0.0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._drop_after: list[tuple[bytes, bool]] = []
        self._hold: list[bytes] = []
        self._held: list[bytes] = []
        self.dropped = asyncio.Event()
        """Set once a reply named by :meth:`drop_reply` was dropped."""
        self._replies_flow = asyncio.Event()
        self._replies_flow.set()
        self._no_links = asyncio.Event()
        self._no_links.set()

    # -- state ---------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def delay(self) -> float:
        return self._delay

    @property
    def url(self) -> str:
        """A ``redis://`` URL for the proxy (database 0)."""
        return f"redis://{_LOOPBACK}:{self.port}/0"

    @property
    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    async def all_closed(self) -> None:
        """Return once no client connection is open through the proxy (at once if none is)."""
        await self._no_links.wait()

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> TcpProxy:
        if self._mode != "refuse":
            await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._unlisten()
        self.cut()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, _LOOPBACK, self.port, reuse_address=True
            )

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    # -- modes -----------------------------------------------------------------------------------

    async def forward(self) -> None:
        """Normal service. Connections that lost bytes to a black hole are closed (they are broken)."""
        self._mode, self._delay = "forward", 0.0
        for link in [link for link in self._links if link.tainted]:
            link.close()
        await self._listen()

    async def refuse(self) -> None:
        """Like a dead server: close the listener (connects get ECONNREFUSED) and every connection."""
        self._mode = "refuse"
        await self._unlisten()
        self.cut()

    async def blackhole(self) -> None:
        """Accept connections and read them, but never forward a byte nor answer."""
        self._mode = "blackhole"
        await self._listen()

    def slow(self, delay: float) -> None:
        """Hold every chunk coming back from the server ``delay`` seconds before passing it on."""
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay!r}")
        if self._server is None:
            raise RuntimeError("slow() needs a listening proxy; call forward() first")
        self._mode, self._delay = "slow", delay

    def hold_replies(self) -> None:
        """Keep every reply from the server back until :meth:`release_replies`; nothing is lost.

        A server that is busy for exactly as long as a test needs: the commands in flight keep their
        connections, whatever the machine's speed.
        """
        self._replies_flow.clear()

    def release_replies(self) -> None:
        """Let the replies kept back by :meth:`hold_replies` go on, and the next ones too."""
        self._replies_flow.set()

    def drop_reply(self, request: bytes, *, cut: bool = False) -> None:
        """Lose the reply to the next request that contains ``request``, once: the server receives and
        runs it, the client never hears back. With ``cut`` the connection is then closed, as when it
        dies just after the server wrote its reply (a client that retries then sends it again).

        The reply is taken to be the next chunk the server sends on that connection, which holds for a
        client that waits for each reply before it sends the next command.
        """
        self._drop_after.append((request, cut))

    def hold_request(self, request: bytes) -> None:
        """Keep the next chunk the client sends that contains ``request`` from the server, once, until
        :meth:`deliver_held`: a command delayed in the network, which its client gives up on."""
        self._hold.append(request)

    @property
    def held(self) -> int:
        """Requests kept back by :meth:`hold_request` and not delivered yet."""
        return len(self._held)

    async def deliver_held(self) -> bytes:
        """Send the oldest held request to the server on a new connection; the raw reply."""
        request = self._held.pop(0)
        reader, writer = await asyncio.open_connection(_LOOPBACK, self.target_port)
        try:
            writer.write(request)
            return await reader.read(_CHUNK)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    @property
    def replies_to_drop(self) -> int:
        """Requests named by :meth:`drop_reply` not seen yet, plus replies seen but not yet dropped."""
        return len(self._drop_after) + sum(link.drop_replies for link in self._links)

    def cut(self, *, reset: bool = False) -> None:
        """Close every current connection, both sides, now; the mode is unchanged.

        By default each side gets a FIN, as when a server process exits; with ``reset`` an RST, as
        when a firewall or load balancer drops a connection (the client only learns on its next use).
        """
        for link in list(self._links):
            link.close(reset=reset)

    # -- the pipes -------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(writer)
        self._links.add(link)
        self._no_links.clear()
        try:
            if self._mode == "blackhole":
                link.tainted = True
                await self._pump(reader, None, link, replies=False)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(_LOOPBACK, self.target_port)
            except OSError:
                return  # the server is down: the client sees its connection closed
            link.upstream = up_writer
            pumps = [
                asyncio.ensure_future(self._pump(reader, up_writer, link, replies=False)),
                asyncio.ensure_future(self._pump(up_reader, writer, link, replies=True)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # aclose(): the link is closed below
        finally:
            self._links.discard(link)
            if not self._links:
                self._no_links.set()
            link.close()
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if link.upstream is not None:
                with contextlib.suppress(Exception):
                    await link.upstream.wait_closed()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter | None,
        link: _Link,
        *,
        replies: bool,
    ) -> None:
        """Copy ``source`` to ``sink`` until EOF, obeying the mode for each chunk."""
        try:
            while data := await source.read(_CHUNK):
                if sink is None or self._mode == "blackhole":
                    link.tainted = True
                    continue
                if replies and link.drop_replies:
                    link.drop_replies -= 1
                    link.tainted = True
                    self.dropped.set()
                    if link.cut_after_drop:
                        link.close()
                    continue
                if not replies and any(request in data for request in self._hold):
                    self._hold.remove(next(request for request in self._hold if request in data))
                    self._held.append(data)
                    link.tainted = True
                    continue
                if not replies:
                    for request, cut in self._drop_after:
                        if request in data:
                            self._drop_after.remove((request, cut))
                            link.drop_replies += 1
                            link.cut_after_drop = cut
                            break
                if replies and self._mode == "slow" and self._delay > 0:
                    await asyncio.sleep(self._delay)
                if replies:
                    await self._replies_flow.wait()
                sink.write(data)
                await sink.drain()
        except OSError:
            pass  # reset by either side: the link ends
