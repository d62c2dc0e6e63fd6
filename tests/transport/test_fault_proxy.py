"""The fault proxy itself: each fault does what the transport tests rely on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.fault_proxy import FaultProxy, FaultProxyFactory

IO_TIMEOUT_S = 2.0


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, int]]:
    """A loopback echo server: the simplest peer a proxy can forward to."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield "127.0.0.1", server.sockets[0].getsockname()[1]
    server.close()
    async with asyncio.timeout(IO_TIMEOUT_S):
        await server.wait_closed()


async def _open(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(IO_TIMEOUT_S):
        return await asyncio.open_connection(proxy.host, proxy.port)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    async with asyncio.timeout(IO_TIMEOUT_S):
        await writer.drain()
        return await reader.readexactly(len(data))


async def _wait_for(predicate, timeout: float = IO_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_pass_through_forwards_both_ways(fault_proxy: FaultProxyFactory, echo_server) -> None:
    proxy = await fault_proxy(*echo_server)
    reader, writer = await _open(proxy)
    assert await _roundtrip(reader, writer, b"hello") == b"hello"
    assert proxy.connections == 1
    assert proxy.bytes_forwarded == 10
    writer.close()


async def test_cut_resets_open_connections(fault_proxy: FaultProxyFactory, echo_server) -> None:
    proxy = await fault_proxy(*echo_server)
    reader, writer = await _open(proxy)
    await _roundtrip(reader, writer, b"x")
    assert proxy.cut() == 1
    with pytest.raises(ConnectionResetError):
        async with asyncio.timeout(IO_TIMEOUT_S):
            await reader.read(10)
    writer.close()
    await _wait_for(lambda: proxy.connections == 0)
    # A new connection after the cut works again.
    reader, writer = await _open(proxy)
    assert await _roundtrip(reader, writer, b"again") == b"again"
    writer.close()


async def test_refuse_resets_new_connections_until_lifted(
    fault_proxy: FaultProxyFactory, echo_server
) -> None:
    proxy = await fault_proxy(*echo_server)
    proxy.refuse(True)
    reader, writer = await _open(proxy)
    with pytest.raises(ConnectionResetError):
        await _roundtrip(reader, writer, b"x")
    writer.close()
    assert proxy.refused == 1
    proxy.refuse(False)
    reader, writer = await _open(proxy)
    assert await _roundtrip(reader, writer, b"ok") == b"ok"
    writer.close()


async def test_latency_delays_each_chunk(fault_proxy: FaultProxyFactory, echo_server) -> None:
    proxy = await fault_proxy(*echo_server)
    reader, writer = await _open(proxy)
    proxy.latency(0.1)
    started = time.monotonic()
    await _roundtrip(reader, writer, b"slow")
    # One chunk out, one back: two delays at least.
    assert time.monotonic() - started >= 0.2
    writer.close()


async def test_blackhole_keeps_connection_but_drops_bytes(
    fault_proxy: FaultProxyFactory, echo_server
) -> None:
    proxy = await fault_proxy(*echo_server)
    reader, writer = await _open(proxy)
    proxy.blackhole(True)
    writer.write(b"lost")
    await writer.drain()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await reader.read(10)
    assert proxy.connections == 1
    assert not reader.at_eof()
    await _wait_for(lambda: proxy.bytes_dropped == 4)
    proxy.heal()
    writer.close()
    reader, writer = await _open(proxy)
    assert await _roundtrip(reader, writer, b"back") == b"back"
    writer.close()


async def test_blackhole_holds_the_servers_close_until_healed(
    fault_proxy: FaultProxyFactory,
) -> None:
    # A server that closes as soon as it hears anything (as a broker drops a
    # silent client): through a blackhole the client must not see that close.
    heard, hang_up_now = asyncio.Event(), asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        heard.set()
        await hang_up_now.wait()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        proxy = await fault_proxy("127.0.0.1", server.sockets[0].getsockname()[1])
        reader, writer = await _open(proxy)
        writer.write(b"hi")
        await writer.drain()
        async with asyncio.timeout(IO_TIMEOUT_S):
            await heard.wait()
        proxy.blackhole(True)
        hang_up_now.set()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await reader.read(10)
        assert not reader.at_eof()
        proxy.heal()
        async with asyncio.timeout(IO_TIMEOUT_S):
            assert await reader.read(10) == b""
        writer.close()
    finally:
        server.close()


async def test_upstream_down_looks_like_reset(fault_proxy: FaultProxyFactory) -> None:
    # Find a port with nothing listening on it by binding and releasing one.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    proxy = await fault_proxy("127.0.0.1", port)
    reader, writer = await _open(proxy)
    with pytest.raises(ConnectionResetError):
        await _roundtrip(reader, writer, b"x")
    writer.close()


async def test_close_resets_connections_and_stops_listening(echo_server) -> None:
    proxy = await FaultProxy(*echo_server).start()
    reader, writer = await _open(proxy)
    await _roundtrip(reader, writer, b"x")
    await proxy.close()
    with pytest.raises(ConnectionResetError):
        async with asyncio.timeout(IO_TIMEOUT_S):
            await reader.read(10)
    writer.close()
    with pytest.raises(OSError):
        await _open(proxy)
