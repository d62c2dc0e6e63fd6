"""A link closed at every moment of a connect leaves no unretrieved error.

Issue 22 (fault run): "Future exception was never retrieved ...
LinkClosedError" was logged when a link was closed as a connect finished: a
pending request or ack the close failed, whose waiter had already gone. The
loop logs such a future when it is garbage-collected, so each case closes a
link after 0, 1, 2 ... loop passes of its connect, collects, and reads the
asyncio log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import pytest

from gridwatch.transport.errors import LinkClosedError
from gridwatch.transport.http_link import LoginSettings
from gridwatch.transport.link import Link
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from gridwatch.transport.websocket_link import WebSocketLink, WebSocketSettings
from tests.support.device_server import DeviceServer, Inbox
from tests.support.mosquitto import Mosquitto
from tests.transport.mqtt_helpers import FAST_BACKOFF, unique

# Loop passes a connect takes on loopback is some tens; this covers every
# moment of it, the last ones closing a link that has just connected.
MAX_PASSES = 60
HANG_GUARD_S = 5.0


async def close_at_every_pass(link: Link, caplog: pytest.LogCaptureFixture) -> int:
    """Close ``link`` after 0..MAX_PASSES loop passes of a connect; return how
    many of those connects finished before the close."""
    connected = 0
    caplog.set_level(logging.ERROR, logger="asyncio")
    for passes in range(MAX_PASSES):
        connecting = asyncio.create_task(link.connect(timeout=HANG_GUARD_S))
        for _ in range(passes):
            await asyncio.sleep(0)
        await link.disconnect()
        with contextlib.suppress(LinkClosedError):
            await connecting
            connected += 1
        if passes % 10 == 9:
            gc.collect()  # futures kept alive by reference cycles log now
    await asyncio.sleep(0.05)
    gc.collect()
    await asyncio.sleep(0)
    leaked = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert leaked == []
    return connected


@pytest.mark.mqtt
@pytest.mark.parametrize("availability", [False, True])
async def test_mqtt_link_closed_at_any_moment_of_its_connect(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture, availability: bool
) -> None:
    settings = MqttSettings(
        host=mosquitto.host,
        port=mosquitto.port,
        default_qos=1,
        availability_topic=unique("avail") if availability else None,
    )
    link = MqttLink("closing", settings, backoff=FAST_BACKOFF)
    for i in range(3):
        await link.subscribe(unique(f"closing{i}"), Inbox(), qos=1)
    try:
        # Some closes came after the connect finished, some during it.
        assert 0 < await close_at_every_pass(link, caplog) < MAX_PASSES
    finally:
        await link.disconnect()


async def test_websocket_link_closed_at_any_moment_of_its_connect(
    device_server: DeviceServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = WebSocketSettings(
        base_url=device_server.url,
        login=LoginSettings(device_server.username, device_server.password),
        request_timeout_s=2.0,
        http_timeout_s=2.0,
    )
    link = WebSocketLink("closing", settings, backoff=FAST_BACKOFF)
    for event in ("a", "b", "c"):
        await link.subscribe(event, Inbox())
    try:
        assert 0 < await close_at_every_pass(link, caplog) < MAX_PASSES
    finally:
        await link.disconnect()
