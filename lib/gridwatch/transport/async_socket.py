"""Open a TCP (and TLS) client socket on the event loop, without a thread.

Paho's own ``connect()`` resolves, connects and shakes hands with blocking
calls. Run in an executor, a connect to a broker whose path drops packets
holds a thread for the whole connect timeout, and a few such links fill the
shared pool that every other link's connect (and AppDaemon itself) waits on.
Here each step is a non-blocking socket call awaited on the loop, so a hung
connect costs nothing but its own timer. The socket returned is
non-blocking and connected, TLS included; a cancelled or failed open closes
whatever it made.
"""

from __future__ import annotations

import asyncio
import socket
import ssl


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
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
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
