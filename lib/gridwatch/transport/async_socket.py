"""Open a TCP (and TLS) client socket on the event loop, without a thread.

Paho's own ``connect()`` resolves, connects and shakes hands with blocking
calls. Run in an executor, a connect to a broker whose path drops packets
holds a thread for the whole connect timeout, and a few such links fill the
shared pool that every other link's connect (and AppDaemon itself) waits on.
Here each step is a non-blocking socket call awaited on the loop, so a hung
connect costs nothing but its own timer. The socket returned is
non-blocking and connected, TLS included; a cancelled or failed open closes
whatever it made.

Name resolution has no non-blocking form in the standard library: a host
name is resolved on a small pool of this module's own (an address needs
none), so a resolver that stops answering can hold up only other
resolutions, not the loop's shared executor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Resolutions that may run at once; more wait their turn (each caller's own
# timeout still bounds its wait). Threads start on first use only.
RESOLVER_THREADS = 4
_RESOLVER = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="gridwatch-resolve")


async def open_client_socket(
    host: str, port: int, tls: ssl.SSLContext | None
) -> socket.socket | ssl.SSLSocket:
    """A connected, non-blocking socket to ``host:port``.

    The caller bounds it (``asyncio.timeout``). Addresses are tried in the
    order the resolver gives them; the last error is raised if none answers.

    Raises:
        OSError: resolution or every connect failed (``ssl.SSLError`` and
            ``ssl.CertificateError`` for a failed TLS handshake).
    """
    loop = asyncio.get_running_loop()
    infos = await _resolve(loop, host, port)
    if not infos:
        raise OSError(f"no address for {host}")
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as err:
            sock.close()
            error = err
            continue
        except BaseException:
            sock.close()
            raise
        if tls is None:
            return sock
        return await _handshake(loop, sock, tls, host)
    assert error is not None  # infos was not empty
    raise error


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[Any, ...]]:
    """The addresses of ``host`` (an address literal needs no lookup)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return await loop.run_in_executor(
            _RESOLVER, socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM
        )
    if address.version == 4:
        return [(socket.AF_INET, socket.SOCK_STREAM, 0, "", (host, port))]
    return [(socket.AF_INET6, socket.SOCK_STREAM, 0, "", (host, port, 0, 0))]


async def _handshake(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLContext, host: str
) -> ssl.SSLSocket:
    """TLS client handshake on a connected non-blocking socket, on the loop."""
    try:
        tls_sock = tls.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        while True:
            try:
                tls_sock.do_handshake()
            except ssl.SSLWantReadError:
                await _ready(loop, tls_sock, write=False)
            except ssl.SSLWantWriteError:
                await _ready(loop, tls_sock, write=True)
            else:
                return tls_sock
    except BaseException:
        tls_sock.close()
        raise


async def _ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, *, write: bool) -> None:
    """Wait until ``sock`` is readable (or writable)."""
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    fd = sock.fileno()
    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
