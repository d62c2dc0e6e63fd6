"""The simulator against a fake HA REST API, a real device server and a real broker."""

import asyncio
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from demo import feeds
from demo.entities import (
    BATTERY_POWER,
    BATTERY_SOC,
    CUTOFF_SOC,
    DISCHARGE_DURATION,
    DISCHARGE_ENABLE,
    DISCHARGE_POWER,
    GRID_EXPORT_ENERGY,
    GRID_POWER,
    SENSORS,
)
from demo.sim_clock import SimClock
from demo.simulator import GRID_METER_OFFLINE, Simulator
from demo.site_model import SiteState
from gridwatch.transport.http_link import LoginSettings
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from gridwatch.transport.websocket_link import WebSocketLink, WebSocketSettings
from tests.demo.fake_ha_rest import FakeHaRest
from tests.support.clock import FakeClock
from tests.support.device_server import DeviceServer, Inbox

ZONE = ZoneInfo("Europe/Amsterdam")
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=ZONE)


@pytest.fixture
async def ha():
    fake = FakeHaRest()
    await fake.start()
    fake.set(DISCHARGE_ENABLE, "off")
    fake.set(DISCHARGE_POWER, "2000.0")
    fake.set(CUTOFF_SOC, "20.0")
    fake.set(DISCHARGE_DURATION, "0.0")
    try:
        yield fake
    finally:
        await fake.stop()


def simulator(rest, clock, **kwargs):
    return Simulator(
        ha=rest,
        clock=SimClock(NOON, speed=60.0),
        monotonic=clock,
        site=SiteState(soc_pct=50.0, exported_kwh=100.0),
        **kwargs,
    )


async def test_a_tick_writes_every_meter_sensor_with_its_classes(ha, rest):
    sim = simulator(rest, FakeClock())
    snap = await sim.tick()
    assert snap.time == NOON
    for sensor in SENSORS:
        entry = ha.states[sensor.entity_id]
        assert entry["attributes"]["state_class"] == sensor.state_class
        assert entry["attributes"]["unit_of_measurement"] == sensor.unit
    # The guard's inputs say when they were measured, so HA sees every report.
    assert "measured_at" in ha.states[GRID_POWER.entity_id]["attributes"]
    assert "measured_at" in ha.states[BATTERY_SOC.entity_id]["attributes"]
    assert "measured_at" not in ha.states[GRID_EXPORT_ENERGY.entity_id]["attributes"]
    # Noon, no discharge: the PV surplus is exported.
    assert float(ha.state(GRID_POWER.entity_id)) < 0
    assert ha.state(BATTERY_POWER.entity_id) == "0"


async def test_discharge_follows_the_controls_read_from_ha(ha, rest):
    clock = FakeClock()
    sim = simulator(rest, clock)
    await sim.tick()
    ha.set(DISCHARGE_ENABLE, "on")
    clock.advance(1.0)  # one real second = one simulated minute
    snap = await sim.tick()
    assert snap.mode == "discharging"
    assert ha.state(BATTERY_POWER.entity_id) == "2000"
    # 2 kW for a minute out of a 10 kWh battery: 1/3 %.
    assert float(ha.state(BATTERY_SOC.entity_id)) == pytest.approx(
        50.0 - 2000 / 60 / 10_000 * 100, abs=0.05
    )
    assert float(ha.state(GRID_EXPORT_ENERGY.entity_id)) > 100.0


async def test_a_timed_discharge_switches_the_helper_off(ha, rest):
    clock = FakeClock()
    sim = simulator(rest, clock)
    ha.set(DISCHARGE_ENABLE, "on")
    ha.set(DISCHARGE_DURATION, "2")
    for _ in range(3):  # 0, 1 and 2 simulated minutes
        await sim.tick()
        clock.advance(1.0)
    assert ("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE}) in ha.services
    assert ha.state(DISCHARGE_ENABLE) == "off"
    assert ha.state(BATTERY_POWER.entity_id) == "0"


async def test_the_grid_meter_fault_makes_its_sensor_unavailable_until_switched_off(ha, rest):
    clock = FakeClock()
    sim = simulator(rest, clock)
    ha.set(GRID_METER_OFFLINE, "on")
    await sim.tick()
    grid = ha.states[GRID_POWER.entity_id]
    assert grid["state"] == "unavailable"
    assert grid["attributes"]["unit_of_measurement"] == "W"
    assert "measured_at" not in grid["attributes"]
    assert float(ha.state(BATTERY_SOC.entity_id)) == 50.0  # the other meters still report
    ha.set(GRID_METER_OFFLINE, "off")
    clock.advance(1.0)
    await sim.tick()
    assert float(ha.state(GRID_POWER.entity_id)) < 0
    assert "measured_at" in ha.states[GRID_POWER.entity_id]["attributes"]


async def test_ha_down_means_no_discharge_and_the_site_keeps_running(ha, rest):
    clock = FakeClock()
    sim = simulator(rest, clock)
    ha.set(DISCHARGE_ENABLE, "on")
    await sim.tick()
    ha.down = True
    clock.advance(1.0)
    snap = await sim.tick()
    assert snap.readings.battery_w == 0.0  # the inverter's safe side
    assert sim.health["HA controls"].failing
    assert sim.health["HA sensors"].failing
    ha.down = False
    clock.advance(1.0)
    snap = await sim.tick()
    assert snap.readings.battery_w == 2000.0
    assert not sim.health["HA sensors"].failing


async def test_the_controller_serves_status_and_pushes_telemetry(rest):
    async with DeviceServer(username="installer", password="pw") as controller:
        link = WebSocketLink(
            "controller",
            WebSocketSettings(controller.url, login=LoginSettings("installer", "pw")),
        )
        inbox = Inbox()
        await link.subscribe(feeds.CONTROLLER_EVENT, inbox)
        await link.connect(timeout=5)
        try:
            sim = simulator(rest, FakeClock(), controller=controller)
            await controller.wait_for(lambda: any(p.events for p in controller.peers))
            snap = await sim.tick()
            messages = await inbox.wait_count(1)
        finally:
            await link.disconnect()
    assert messages[0].payload == feeds.controller_event(snap)
    assert controller.values[feeds.CONTROLLER_STATUS_PATH] == feeds.controller_status(snap)


@pytest.mark.mqtt
async def test_the_gateway_publishes_json_over_mqtt(rest, mosquitto):
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    listener = MqttLink("listener", settings)
    inbox = Inbox()
    await listener.subscribe("demo-gateway/#", inbox)
    await listener.connect(timeout=5)
    gateway = MqttLink("demo-gateway", settings)
    try:
        sim = simulator(rest, FakeClock(), gateway=gateway)
        sim.start_links()
        await gateway.wait_connected(5)
        snap = await sim.tick()
        messages = await inbox.wait_count(2)
    finally:
        await gateway.disconnect()
        await listener.disconnect()
    by_topic = {m.key: json.loads(m.payload) for m in messages}
    assert by_topic == json.loads(json.dumps(feeds.gateway_messages(snap)))


async def test_run_stops_on_the_event_and_disconnects_the_gateway(rest):
    gateway = MqttLink("demo-gateway", MqttSettings(host="127.0.0.1", port=1))  # never connects
    sim = Simulator(ha=rest, clock=SimClock(NOON), gateway=gateway, tick_s=0.01)
    stop, three = asyncio.Event(), asyncio.Event()
    tick = sim.tick

    async def counting_tick():
        snap = await tick()
        if sim.steps >= 3:
            three.set()
        return snap

    sim.tick = counting_tick
    task = asyncio.create_task(sim.run(stop))
    await asyncio.wait_for(three.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert not gateway.connected
    assert sim.last is not None
