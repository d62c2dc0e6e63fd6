"""The link monitor with real transports: a real mosquitto and a real aiohttp
device server, through the app's runner against the fake HA.

Links run in real time (a fast backoff so reconnects take milliseconds);
HA's clock is the fake one the links also stamp health and messages with, so
grace periods of minutes are crossed by advancing it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import struct
import uuid
from typing import Any

import pytest

from gridwatch.config.base import load_config
from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.links.runner import LinkMonitorRunner
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient
from gridwatch.runtime.link_factory import build_link, link_setups
from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.link import Message
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.support.clock import FakeClock
from tests.support.device_server import DeviceServer, eventually
from tests.support.fake_bleak import TELEMETRY_UUID, FakePeripheral
from tests.support.fake_hass import FakeHass
from tests.support.mosquitto import Mosquitto

FAST_BACKOFF = BackoffPolicy(initial_s=0.05, factor=2.0, cap_s=0.2, jitter=0.0)
GRACE = 600
NOTICE_AFTER = 120
WAIT_S = 10.0


def state(hass: FakeHass, entity_id: str) -> str | None:
    entity = hass.state_of(entity_id)
    return None if entity is None else entity.raw


def attr(hass: FakeHass, entity_id: str, name: str):
    entity = hass.state_of(entity_id)
    return None if entity is None else entity.attributes.get(name)


@pytest.fixture
async def mqtt_client(mosquitto: Mosquitto):
    """A second MQTT client: plays the gateway and watches retained topics."""
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    link = MqttLink("gateway-sim", settings, backoff=FAST_BACKOFF)
    link.start()
    try:
        yield link
    finally:
        await link.disconnect()


async def publish(link: MqttLink, topic: str, payload: bytes) -> None:
    await link.wait_connected(WAIT_S)
    await link.publish(topic, payload, qos=1)


@pytest.mark.mqtt
async def test_mqtt_and_websocket_links_through_the_app(
    mosquitto: Mosquitto, device_server: DeviceServer, mqtt_client: MqttLink
):
    prefix = f"test/linkmon/{uuid.uuid4().hex[:8]}"
    availability = f"{prefix}/availability"
    args = {
        "tick_interval_s": 5,
        "links": [
            {
                "name": "gateway",
                "mqtt": {
                    "host": mosquitto.host,
                    "port": mosquitto.port,
                    "availability_topic": availability,
                },
                "grace_period_s": GRACE,
                "outage_notice_after_s": NOTICE_AFTER,
                "values": [
                    {
                        "name": "grid_power",
                        "source": f"{prefix}/+/state",
                        "path": "power",
                        "unit": "W",
                        "min": -50000,
                        "max": 50000,
                    },
                    {"name": "soc", "source": f"{prefix}/+/state", "path": "soc"},
                ],
            },
            {
                "name": "controller",
                "websocket": {
                    "url": device_server.url,
                    "username": device_server.username,
                    "password": device_server.password,
                },
                "values": [{"name": "pv_power", "source": "pv", "path": "w", "unit": "W"}],
            },
        ],
    }
    clock = FakeClock()
    hass = FakeHass(clock)
    notices = NoticeClient(hass, "link_monitor")
    config = load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)
    build = functools.partial(build_link, clock=clock, backoff=FAST_BACKOFF)
    runner = LinkMonitorRunner(
        link_setups(config, build), config.tick_interval_s, hass, notices, logging.getLogger("t")
    )
    await runner.start()
    gateway, controller = runner.links["gateway"], runner.links["controller"]
    try:
        await eventually(lambda: gateway.connected and controller.connected, WAIT_S)
        await hass.advance(5)
        assert state(hass, "binary_sensor.gateway_connected") == "on"
        assert state(hass, "sensor.controller_link_status") == "connected"

        # Values flow from a simulated gateway (MQTT) and controller (WebSocket).
        await publish(mqtt_client, f"{prefix}/meter/state", b'{"power": -1500, "soc": 80}')
        await eventually(lambda: state(hass, "sensor.gateway_grid_power") == "-1500", WAIT_S)
        assert state(hass, "sensor.gateway_soc") == "80"
        await eventually(lambda: any("pv" in p.events for p in device_server.peers), WAIT_S)
        await device_server.push("pv", {"w": 3200})
        await eventually(lambda: state(hass, "sensor.controller_pv_power") == "3200", WAIT_S)

        # An invalid reading is skipped; the last good value stays.
        await publish(mqtt_client, f"{prefix}/meter/state", b'{"power": 999999, "soc": 81}')
        await eventually(lambda: state(hass, "sensor.gateway_soc") == "81", WAIT_S)
        assert state(hass, "sensor.gateway_grid_power") == "-1500"

        # The broker goes away: the gateway link goes offline, the values stay
        # (stale) through the grace period, the controller is unaffected.
        await mosquitto.astop()
        await eventually(lambda: not gateway.connected, WAIT_S)
        await hass.advance(30)
        assert state(hass, "binary_sensor.gateway_connected") == "off"
        assert state(hass, "sensor.gateway_link_status") == "offline"
        assert state(hass, "sensor.gateway_grid_power") == "-1500"
        assert attr(hass, "sensor.gateway_grid_power", "stale") is True
        assert attr(hass, "sensor.gateway_grid_power", "connection_status") == "offline"
        assert state(hass, "sensor.controller_link_status") == "connected"
        assert attr(hass, "sensor.controller_pv_power", "stale") is False
        assert hass.events_of(NOTICE_EVENT)[-1]["action"] == "resolve"  # start-up only

        await hass.advance(NOTICE_AFTER)
        raised = [e for e in hass.events_of(NOTICE_EVENT) if e["action"] == "raise"]
        assert [e["notice_id"] for e in raised] == ["link_monitor_gateway_outage"]
        assert f"mqtt://{mosquitto.host}:{mosquitto.port}" in raised[0]["message"]
        assert state(hass, "sensor.gateway_grid_power") == "-1500"

        await hass.advance(GRACE)
        assert state(hass, "sensor.gateway_grid_power") == "unavailable"
        assert state(hass, "sensor.controller_pv_power") == "3200"

        # The broker is back: reconnect, fresh values, notice resolved.
        await mosquitto.astart()
        await eventually(lambda: gateway.connected, WAIT_S)
        await publish(mqtt_client, f"{prefix}/meter/state", b'{"power": -700, "soc": 79}')
        await eventually(lambda: state(hass, "sensor.gateway_grid_power") == "-700", WAIT_S)
        assert attr(hass, "sensor.gateway_grid_power", "stale") is False
        await hass.advance(5)
        last = hass.events_of(NOTICE_EVENT)[-1]
        assert last == {"action": "resolve", "notice_id": "link_monitor_gateway_outage"}

        # The controller drops its sockets: a brief outage, no flapping.
        writes = len(hass.entity_writes)
        await device_server.drop()
        await eventually(lambda: controller.health.reconnects >= 1 and controller.connected)
        await hass.advance(5)
        pv_states = [s for e, s, _ in hass.entity_writes[writes:] if e.endswith("pv_power")]
        assert "unavailable" not in pv_states
        await eventually(lambda: any("pv" in p.events for p in device_server.peers), WAIT_S)
        await device_server.push("pv", {"w": 3300})
        await eventually(lambda: state(hass, "sensor.controller_pv_power") == "3300", WAIT_S)
    finally:
        await mosquitto.astart()
        await runner.stop()

    # Shutdown: links awaited, entities stopped, availability says offline.
    assert not gateway.connected
    assert not controller.connected
    assert state(hass, "sensor.gateway_link_status") == "disconnected"
    retained: list[Message] = []
    await mqtt_client.subscribe(availability, retained.append)
    await eventually(lambda: bool(retained), WAIT_S)
    assert retained[-1].payload == b"offline"


def _poll_every(seconds: float, config: LinkMonitorConfig) -> LinkMonitorConfig:
    """The first link polling every ``seconds`` (the schema's floor of 1 s is
    for real devices)."""
    cfg = config.links[0]
    settings = dataclasses.replace(cfg.settings, poll_interval_s=seconds)
    return dataclasses.replace(config, links=(dataclasses.replace(cfg, settings=settings),))


def _runner_for(
    args, clock: FakeClock, configure=None, **link_options
) -> tuple[LinkMonitorRunner, FakeHass]:
    hass = FakeHass(clock)
    config = load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)
    if configure is not None:
        config = configure(config)
    build = functools.partial(build_link, clock=clock, backoff=FAST_BACKOFF, **link_options)
    notices = NoticeClient(hass, "link_monitor")
    return LinkMonitorRunner(
        link_setups(config, build), config.tick_interval_s, hass, notices, logging.getLogger("t")
    ), hass


def _http_meter_args(
    server: DeviceServer, values: list[dict[str, Any]], **http_options: Any
) -> dict[str, Any]:
    """apps.yaml args of one HTTP link ``meter`` that logs in to ``server``."""
    http = {
        "url": server.url,
        "username": server.username,
        "password": server.password,
        "poll_interval_s": 1,
        **http_options,
    }
    return {"links": [{"name": "meter", "http": http, "values": values}]}


async def test_http_link_rides_out_a_failed_poll(device_server: DeviceServer):
    device_server.values["/api/status"] = {"power_w": 1200, "soc": 64}
    values = [
        {"name": "power", "source": "/api/status", "path": "power_w", "unit": "W"},
        {"name": "soc", "source": "/api/status", "path": "soc", "max": 100},
    ]
    args = _http_meter_args(device_server, values, failures_before_offline=2)
    clock = FakeClock()
    runner, hass = _runner_for(args, clock, functools.partial(_poll_every, 0.1))
    await runner.start()
    meter = runner.links["meter"]
    try:
        await eventually(lambda: state(hass, "sensor.meter_power") == "1200", WAIT_S)
        assert state(hass, "sensor.meter_soc") == "64"

        gets = device_server.gets["/api/status"]
        device_server.fail_gets(1)  # one failed poll
        await eventually(lambda: device_server.gets["/api/status"] >= gets + 3, WAIT_S)
        await hass.advance(5)
        assert meter.connected
        assert state(hass, "sensor.meter_power") == "1200"
        assert state(hass, "binary_sensor.meter_connected") == "on"

        await device_server.stop()  # the device loses power
        await eventually(lambda: not meter.connected, WAIT_S)
        await hass.advance(5)
        assert state(hass, "sensor.meter_power") == "1200"
        assert attr(hass, "sensor.meter_power", "stale") is True
        await hass.advance(600)
        assert state(hass, "sensor.meter_power") == "unavailable"

        device_server.values["/api/status"] = {"power_w": 800, "soc": 65}
        await device_server.start()
        await eventually(lambda: state(hass, "sensor.meter_power") == "800", WAIT_S)
        assert attr(hass, "sensor.meter_power", "stale") is False
    finally:
        await runner.stop()


async def test_http_path_the_user_may_not_read_is_that_values_problem(device_server: DeviceServer):
    # Issue 22 (fault run): a path answering 403 after a good login made the
    # link log in again every second and read offline while data flowed.
    device_server.values["/api/status"] = {"power_w": 1200}
    device_server.refused_paths["/api/service"] = 403
    values = [
        {"name": "service_pin", "source": "/api/service", "path": "pin"},
        {"name": "power", "source": "/api/status", "path": "power_w", "unit": "W"},
    ]
    args = _http_meter_args(device_server, values)
    clock = FakeClock()
    runner, hass = _runner_for(args, clock, functools.partial(_poll_every, 0.05))
    await runner.start()
    try:
        await eventually(lambda: state(hass, "sensor.meter_power") == "1200", WAIT_S)
        await eventually(lambda: device_server.gets["/api/service"] >= 5, WAIT_S)
        await hass.advance(5)
        assert state(hass, "sensor.meter_service_pin") == "unavailable"
        assert "HTTP 403" in attr(hass, "sensor.meter_service_pin", "problem")
        assert attr(hass, "sensor.meter_power", "problem") is None
        assert state(hass, "binary_sensor.meter_connected") == "on"
        assert state(hass, "sensor.meter_link_status") == "connected"
        assert device_server.logins == 1

        # Access granted on the device: the value comes, the problem goes.
        device_server.values["/api/service"] = {"pin": 4711}
        del device_server.refused_paths["/api/service"]
        await eventually(lambda: state(hass, "sensor.meter_service_pin") == "4711", WAIT_S)
        assert attr(hass, "sensor.meter_service_pin", "problem") is None
    finally:
        await runner.stop()


async def test_ble_link_decodes_notifications_and_reconnects(fake_ble: FakePeripheral):
    args = {
        "links": [
            {
                "name": "battery",
                "ble": {"address": fake_ble.address},
                "values": [
                    {
                        "name": "voltage",
                        "source": TELEMETRY_UUID,
                        "offset": 0,
                        "format": "<H",
                        "scale": 0.01,
                        "unit": "V",
                        "min": 0,
                        "max": 100,
                        "precision": 2,
                    },
                    {
                        "name": "soc",
                        "source": TELEMETRY_UUID,
                        "offset": 2,
                        "format": "B",
                        "unit": "%",
                        "min": 0,
                        "max": 100,
                    },
                ],
            }
        ]
    }
    clock = FakeClock()
    runner, hass = _runner_for(args, clock, backend=fake_ble.backend)
    await runner.start()
    battery = runner.links["battery"]
    try:
        await eventually(lambda: TELEMETRY_UUID in fake_ble.subscribed(), WAIT_S)
        assert fake_ble.notify(TELEMETRY_UUID, struct.pack("<HB", 5123, 87))
        await eventually(lambda: state(hass, "sensor.battery_voltage") == "51.23", WAIT_S)
        assert state(hass, "sensor.battery_soc") == "87"

        # A short frame and an out-of-range SoC: skipped, last good kept.
        fake_ble.notify(TELEMETRY_UUID, b"\x01")
        fake_ble.notify(TELEMETRY_UUID, struct.pack("<HB", 5000, 250))
        await eventually(lambda: state(hass, "sensor.battery_voltage") == "50.00", WAIT_S)
        assert state(hass, "sensor.battery_soc") == "87"

        # The device walks out of range and back: reconnect, notify again.
        assert fake_ble.drop()
        await eventually(lambda: battery.health.reconnects >= 1 and battery.connected, WAIT_S)
        await eventually(lambda: TELEMETRY_UUID in fake_ble.subscribed(), WAIT_S)
        await hass.advance(5)
        assert state(hass, "sensor.battery_soc") == "87"  # never unavailable in between
        fake_ble.notify(TELEMETRY_UUID, struct.pack("<HB", 5200, 88))
        await eventually(lambda: state(hass, "sensor.battery_soc") == "88", WAIT_S)
    finally:
        await runner.stop()
    assert fake_ble.disconnect_calls >= 1
