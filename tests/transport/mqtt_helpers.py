"""Helpers shared by the MQTT transport tests (not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.link import Message

# Reconnect quickly in tests; the real schedule has its own fake-clock test.
FAST_BACKOFF = BackoffPolicy(initial_s=0.05, factor=2.0, cap_s=0.2, jitter=0.0)
WAIT_S = 5.0


def unique(prefix: str) -> str:
    """A topic prefix no other test (or retained message) uses."""
    return f"test/{prefix}/{uuid.uuid4().hex[:8]}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> float:
    """Poll ``predicate`` until true; return the seconds it took.

    Raises:
        AssertionError: still false after ``timeout``.
    """
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


class Inbox:
    """A subscriber callback that records messages and the thread it ran on."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.threads: set[int] = set()
        self._arrived = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.threads.add(threading.get_ident())
        self._arrived.set()

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    def on(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.key == topic]

    async def wait_for(self, predicate: Callable[[Inbox], bool], timeout: float = WAIT_S) -> None:
        """Wait until ``predicate(self)`` holds.

        Raises:
            TimeoutError: not within ``timeout``.
        """
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._arrived.clear()
                await self._arrived.wait()


@contextlib.contextmanager
def syn_dropping_listener() -> Iterator[socket.socket]:
    """A loopback listener whose accept queue is full: the kernel drops
    further SYNs, so a TCP connect to it hangs, like a broker behind a path
    that drops packets. Yields the listening socket (accept() makes room)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # completes in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield server
    finally:
        for sock in [*fillers, server]:
            sock.close()
