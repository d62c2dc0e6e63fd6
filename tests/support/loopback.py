"""An aiohttp application served on loopback for one test, with a client
session to reach it: the stand-in for HA's REST API in adapter tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import ClientSession, web


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[tuple[str, ClientSession]]:
    """Serve ``app`` on 127.0.0.1 (a free port); yield its URL and a session."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with ClientSession() as session:
            yield f"http://127.0.0.1:{port}", session
    finally:
        await runner.cleanup()
