"""A broker path that loses what the broker sends while keepalives pass.

Issue 22 (fault run): such a path left an MQTT link ``connected`` and silent
for ever unless the data watchdog was configured. A link whose data is
expected at a known rate (its ``stale_after_s``) now gets a watchdog by
default. The lossy path here is a small MQTT-aware proxy in front of a real
mosquitto: it drops the broker's PUBLISH packets and passes everything else
(CONNACK, SUBACK, PINGRESP), as a bridge that stopped forwarding or a path
that loses the larger segments would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gridwatch.config.base import load_config
from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.runtime.link_factory import build_link
from gridwatch.transport.link import Link
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.support.mosquitto import Mosquitto
from tests.transport.mqtt_helpers import FAST_BACKOFF, Inbox, unique, wait_until

pytestmark = pytest.mark.mqtt

PUBLISH = 3
CLOSE_TIMEOUT_S = 2.0


class PublishDroppingProxy:
    """Forwards MQTT between a client and the broker; while ``losing``, the
    broker's PUBLISH packets never reach the client."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.losing = False
        self.dropped = 0
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        # Closed sockets end every handler; cancelling one instead makes
        # asyncio's stream callback log the cancellation as an error.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in stuck:
                task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.broker.host, self.broker.port)
            self._writers.add(up_writer)
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await asyncio.gather(
                    self._copy(reader, up_writer), self._copy_packets(up_reader, writer)
                )
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _copy(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
        dst.close()

    async def _copy_packets(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            header = await src.readexactly(1)
            length_bytes = b""
            length, shift = 0, 0
            while True:
                byte = await src.readexactly(1)
                length_bytes += byte
                length |= (byte[0] & 0x7F) << shift
                shift += 7
                if not byte[0] & 0x80:
                    break
            body = await src.readexactly(length)
            if self.losing and header[0] >> 4 == PUBLISH:
                self.dropped += 1
                continue
            dst.write(header + length_bytes + body)
            await dst.drain()


@pytest.fixture
async def lossy_path(mosquitto: Mosquitto) -> AsyncIterator[PublishDroppingProxy]:
    proxy = PublishDroppingProxy(mosquitto)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def configured_link(proxy: PublishDroppingProxy, topic: str, **link_options: object) -> Link:
    """The link as the link monitor builds it from apps.yaml."""
    args = {
        "links": [
            {
                "name": "gateway",
                "mqtt": {"host": proxy.host, "port": proxy.port, "keepalive_s": 5},
                # The device reports every few hundred ms; the schema's floor
                # of 1 s is the closest to that.
                "stale_after_s": 1,
                **link_options,
                "values": [{"name": "power", "source": topic}],
            }
        ]
    }
    config = load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)
    return build_link(config.links[0], backoff=FAST_BACKOFF)


async def publish_every(broker: Mosquitto, topic: str, period_s: float) -> None:
    """The device: a reading every ``period_s`` until cancelled."""
    device = MqttLink("device", MqttSettings(host=broker.host, port=broker.port))
    await device.connect(timeout=5)
    try:
        n = 0
        while True:
            n += 1
            await device.publish(topic, b"%d" % n, qos=1)
            await asyncio.sleep(period_s)
    finally:
        await device.disconnect()


async def test_a_path_losing_the_brokers_data_is_reconnected_by_default(
    mosquitto: Mosquitto, lossy_path: PublishDroppingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    topic = unique("lossy")
    link = configured_link(lossy_path, topic)
    inbox = Inbox()
    device = asyncio.create_task(publish_every(mosquitto, topic, 0.2))
    try:
        await link.subscribe(topic, inbox, qos=1)
        link.start()
        await inbox.wait_for(lambda i: len(i.messages) >= 2)

        lossy_path.losing = True
        # Keepalives still pass, so only the silence tells: the default
        # watchdog drops the connection (3 x stale_after_s).
        await wait_until(lambda: link.health.reconnects >= 1, timeout=10)
        assert lossy_path.dropped > 0
        losses = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
        assert losses
        assert all("(data watchdog)" in loss for loss in losses)

        lossy_path.losing = False
        arrived = len(inbox.messages)
        await inbox.wait_for(lambda i: len(i.messages) > arrived)
    finally:
        device.cancel()
        await asyncio.wait({device})
        await link.disconnect()


async def test_the_default_watchdog_can_be_turned_off(
    mosquitto: Mosquitto, lossy_path: PublishDroppingProxy
) -> None:
    link = configured_link(lossy_path, unique("off"), no_data_reconnect_after_s=0)
    assert not link.health_policy.watchdog.enabled
