"""An asyncio TCP proxy on loopback that injects network faults.

Tests put it between a client and a real server (mosquitto, the aiohttp device
server) and then break the path the way real networks break:

- ``cut()``: every current connection is reset (TCP RST, as after a router
  reboot or a NAT table flush), both towards the client and the server.
- ``refuse(True)``: new connections are accepted and reset at once, which the
  client sees as "connection reset/refused" on connect.
- ``latency(s)``: each forwarded chunk waits ``s`` seconds first.
- ``blackhole(True)``: connections stay open but every byte is dropped both
  ways, like a dead Wi-Fi link; only keepalives/heartbeats can notice. The
  server's close or reset is held too (until ``heal()``, ``cut()`` or the
  client's own close): a dead link carries no FIN either, so the client
  learns of the loss only from its own timers, whatever the server does
  (mosquitto 2.0.21 drops a silent client sooner than 2.0.11). The client's
  own close still ends the connection, so a socket the client leaks stays
  countable in the test's process. Bytes
  dropped are gone for good, so a stream that was blackholed is corrupt after
  ``heal()``: the client is expected to have given up on it by then.
- ``heal()``: back to plain pass-through for current and new connections.

Usage as a pytest fixture (function scope, a factory)::

    proxy = await fault_proxy(broker.host, broker.port)
    client.connect(proxy.host, proxy.port)
    proxy.cut()

Everything a factory created is closed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

# A forwarded read never asks for more than this; small enough to keep the
# per-chunk latency meaningful, large enough for throughput benchmarks.
CHUNK_BYTES = 64 * 1024
# The upstream server is on loopback: if it does not accept within this, it is
# down, and the client's connection is reset like a refused one.
UPSTREAM_CONNECT_TIMEOUT_S = 2.0
# close() never hangs a test teardown.
CLOSE_TIMEOUT_S = 2.0


def reset_writer(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket with a TCP RST instead of a FIN.

    SO_LINGER on with a zero timeout makes close() discard unsent data and
    send RST, which is how a peer that vanished (or a middlebox that dropped
    the flow) looks to the other side.
    """
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Set once the proxy reset this connection or the client's end closed.
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        self.closed.set()
        reset_writer(self.client)
        reset_writer(self.upstream)


class FaultProxy:
    """TCP proxy from ``127.0.0.1:<free port>`` to ``target_host:target_port``.

    Args:
        target_host: where to forward to.
        target_port: port to forward to.

    Call :meth:`start` before use and :meth:`close` when done (the fixture
    does both).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._refusing = False
        self._blackholed = False
        # Set whenever bytes (and closes) pass: the held ends of a blackhole wait on it.
        self._passing = asyncio.Event()
        self._passing.set()
        self._latency_s = 0.0
        # Figures tests can assert on.
        self.accepted = 0
        self.refused = 0
        self.bytes_forwarded = 0
        self.bytes_dropped = 0

    async def start(self) -> FaultProxy:
        """Listen on a free loopback port (``self.port``).

        Returns:
            self, for chaining.
        """
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    # ------------------------------------------------------------------
    # Faults

    @property
    def connections(self) -> int:
        """How many proxied connections are open now."""
        return len(self._conns)

    def cut(self) -> int:
        """Reset every current connection (RST to both client and server).

        Returns:
            How many connections were reset.
        """
        conns = list(self._conns)
        for conn in conns:
            conn.reset()
        return len(conns)

    def refuse(self, on: bool = True) -> None:
        """While on, new connections are reset as soon as they are accepted."""
        self._refusing = on

    def latency(self, seconds: float) -> None:
        """Delay every forwarded chunk by ``seconds`` (0 for none)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency_s = seconds

    def blackhole(self, on: bool = True) -> None:
        """While on, connections stay open but all bytes (and closes) are dropped."""
        self._blackholed = on
        if on:
            self._passing.clear()
        else:
            self._passing.set()

    def heal(self) -> None:
        """Back to pass-through: no refusal, latency or blackhole."""
        self._refusing = False
        self.blackhole(False)
        self._latency_s = 0.0

    async def close(self) -> None:
        """Stop listening and reset every connection. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=CLOSE_TIMEOUT_S)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await server.wait_closed()

    # ------------------------------------------------------------------
    # Forwarding

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            reset_writer(writer)
            raise
        except Exception:
            # A proxy bug must not leak as "Task exception was never retrieved":
            # the client sees a reset and the test sees the failure it causes.
            reset_writer(writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            self.refused += 1
            reset_writer(writer)
            return
        try:
            async with asyncio.timeout(UPSTREAM_CONNECT_TIMEOUT_S):
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
        except (OSError, TimeoutError):
            # Upstream down: the client must see what it would see without us.
            reset_writer(writer)
            return
        conn = _Connection(writer, up_writer)
        self._conns.add(conn)
        try:
            results = await asyncio.gather(
                self._pump(reader, up_writer, conn, from_client=True),
                self._pump(up_reader, writer, conn, from_client=False),
                return_exceptions=True,
            )
            if any(isinstance(r, BaseException) for r in results):
                conn.reset()
            else:
                writer.close()
                up_writer.close()
        finally:
            self._conns.discard(conn)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        conn: _Connection,
        *,
        from_client: bool,
    ) -> None:
        """Copy ``src`` to ``dst`` until EOF, applying the current faults."""
        try:
            while True:
                chunk = await src.read(CHUNK_BYTES)
                if not chunk:
                    break
                if self._latency_s > 0:
                    await asyncio.sleep(self._latency_s)
                if self._blackholed:
                    self.bytes_dropped += len(chunk)
                    continue
                dst.write(chunk)
                self.bytes_forwarded += len(chunk)
                await dst.drain()
        except OSError:
            # One side reset: pass the reset on to the other side too.
            if not from_client:
                await self._hold_while_blackholed(conn)
            conn.reset()
            return
        if from_client:
            conn.closed.set()
        else:
            await self._hold_while_blackholed(conn)
        # Orderly EOF: half-close the other direction, as TCP would.
        if dst.can_write_eof() and not dst.is_closing():
            with contextlib.suppress(OSError):
                dst.write_eof()

    async def _hold_while_blackholed(self, conn: _Connection) -> None:
        """Keep the server's close from reaching the client while blackholed."""
        while self._blackholed and not conn.closed.is_set():
            waits = [
                asyncio.ensure_future(self._passing.wait()),
                asyncio.ensure_future(conn.closed.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()


FaultProxyFactory = Callable[[str, int], Awaitable[FaultProxy]]


@pytest.fixture
async def fault_proxy() -> AsyncIterator[FaultProxyFactory]:
    """Factory for :class:`FaultProxy`: ``proxy = await fault_proxy(host, port)``.

    Every proxy it made is closed at teardown.
    """
    proxies: list[FaultProxy] = []

    async def make(host: str, port: int) -> FaultProxy:
        proxy = FaultProxy(host, port)
        proxies.append(proxy)
        return await proxy.start()

    yield make
    for proxy in proxies:
        await proxy.close()
