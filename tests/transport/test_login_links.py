"""Contract shared by the links that log in over HTTP first (WebSocket and
HTTP polling): one test, run against both, so they cannot drift apart."""

import asyncio

import pytest

from gridwatch.transport import LinkClosedError
from tests.transport import test_http, test_websocket

HANG_GUARD_S = 5.0


@pytest.fixture(params=["websocket", "http"])
async def login_link(request, device_server):
    module = test_websocket if request.param == "websocket" else test_http
    link = module.make_link(device_server)
    try:
        yield link
    finally:
        await link.disconnect()


async def test_disconnect_during_hanging_login_fails_connect_at_once(device_server, login_link):
    device_server.hang_logins()
    connecting = asyncio.create_task(login_link.connect(timeout=60))
    await device_server.wait_for(lambda: device_server.login_attempts == 1)

    await login_link.disconnect()

    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(connecting, HANG_GUARD_S)
    device_server.hang_logins(False)
    await login_link.connect(timeout=HANG_GUARD_S)
    assert login_link.connected
