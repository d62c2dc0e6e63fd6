"""The link monitor (apps/link_monitor.py) in a real AppDaemon against a real HA.

Three links feed one app instance: ``e2e_gw`` and ``e2e_meter`` over MQTT,
each on its own real mosquitto (so one broker can go down for long while the
other only blips), and ``e2e_ctl`` over the real aiohttp device server (HTTP
login + WebSocket events). The notifier runs in the same AppDaemon, so an
outage notice ends up as a persistent notification in HA. The gateways are
played by one-shot paho publishes; everything is read back from HA. The
last test stops AppDaemon and checks what the links leave behind.

Grace period and notice delay are the schema's minimum (10 s) and the tick is
1 s, so the long outage takes ~15 s of real time. Every test awaits on the
module's event loop, which also serves the device server between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import paho.mqtt.client
import paho.mqtt.publish
import pytest
import pytest_asyncio
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, wait_for
from tests.support.device_server import DeviceServer
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.e2e, pytest.mark.mqtt, pytest.mark.asyncio(loop_scope="module")]

APP = "link_monitor"
GW, METER, CTL = "e2e_gw", "e2e_meter", "e2e_ctl"
GW_TOPIC = "e2e/gw/meter/state"
GW_AVAILABILITY = "e2e/gw/monitor/availability"
METER_TOPIC = "e2e/meter/state"
PV_EVENT = "pv"
# The schema's floors: a grace or notice delay below 10 s is refused.
GRACE_S = 10.0
NOTICE_AFTER_S = 10.0
TICK_S = 1.0
GW_NOTICE = f"{APP}_{GW}_outage"  # gridwatch.notices.client.notice_id(app, "<link>_outage")
# Values land in HA within a tick or two; reconnects follow the real backoff
# (1, 2, 4, 8 s ...), so after a broker came back allow a couple of steps.
SHOWN_S = 10.0
RECONNECT_S = 40.0


def _value(name: str, source: str, path: str, unit: str, device_class: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "path": path,
        "unit": unit,
        "device_class": device_class,
        "state_class": "measurement",
        "min": -50000 if device_class == "power" else 0,
        "max": 50000 if device_class == "power" else 100,
    }


def _apps(gw: Mosquitto, meter: Mosquitto, device: DeviceServer) -> dict[str, Any]:
    timing = {"grace_period_s": GRACE_S, "outage_notice_after_s": NOTICE_AFTER_S}
    return {
        # Named apart from test_notifier_e2e's notifier: its own sensor.
        "lm_notifier": {
            "module": "gridwatch_notifier",
            "class": "Notifier",
            "min_repost_s": 0,
            "tick_s": 1,
        },
        APP: {
            "module": "gridwatch_link_monitor",
            "class": "LinkMonitorApp",
            "tick_interval_s": TICK_S,
            "links": [
                {
                    "name": GW,
                    "mqtt": {
                        "host": gw.host,
                        "port": gw.port,
                        "availability_topic": GW_AVAILABILITY,
                    },
                    **timing,
                    "values": [
                        _value("grid_power", "e2e/gw/+/state", "power", "W", "power"),
                        _value("soc", "e2e/gw/+/state", "soc", "%", "battery"),
                    ],
                },
                {
                    "name": METER,
                    "mqtt": {"host": meter.host, "port": meter.port},
                    **timing,
                    "values": [_value("power", METER_TOPIC, "w", "W", "power")],
                },
                {
                    "name": CTL,
                    "websocket": {
                        "url": device.url,
                        "username": device.username,
                        "password": device.password,
                        "heartbeat_s": 5,
                    },
                    **timing,
                    "values": [_value("pv_power", PV_EVENT, "w", "W", "power")],
                },
            ],
        },
    }


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gw_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """The broker the long outage takes down (not the session's: it is stopped)."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-gw")) as broker:
        yield broker


@pytest.fixture(scope="module")
def meter_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """The broker that only blips (its link's backoff is not climbed by the other)."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-meter")) as broker:
        yield broker


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def device() -> AsyncIterator[DeviceServer]:
    """The controller; on the module's loop, so it keeps answering between tests."""
    server = DeviceServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(ha: HomeAssistant) -> AsyncIterator[HaClient]:
    """An HA client on the module's loop (``ha_client`` lives on a test's loop)."""
    if not ha.process.running:
        await asyncio.to_thread(ha.start)
    async with HaClient(ha.url, ha.token) as ha_client:
        yield ha_client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def monitor(
    appdaemon_module_factory: AppDaemonFactory,
    gw_broker: Mosquitto,
    meter_broker: Mosquitto,
    device: DeviceServer,
    client: HaClient,
) -> AppDaemon:
    """AppDaemon with the notifier and the link monitor, every link connected."""
    # Started from a thread: the loop keeps serving the controller's login.
    ad = await appdaemon_module_factory(apps=_apps(gw_broker, meter_broker, device))
    await asyncio.to_thread(ad.wait_app, "lm_notifier")
    await asyncio.to_thread(ad.wait_app, APP)
    for link in (GW, METER, CTL):
        await client.wait_state(f"binary_sensor.{link}_connected", _is("on"), timeout=SHOWN_S)
    await device.wait_for(lambda: any(PV_EVENT in p.events for p in device.peers), SHOWN_S)
    return ad


# --- helpers ------------------------------------------------------------------------


def _is(state: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda s: s is not None and s["state"] == state


def _shows(state: str, *, stale: bool) -> Callable[[dict[str, Any] | None], bool]:
    return lambda s: s is not None and s["state"] == state and s["attributes"]["stale"] is stale


def publisher(broker: Mosquitto, topic: str, payload: str) -> Callable[[], Awaitable[None]]:
    """A gateway's publish: connect, send with QoS 1, disconnect (in a thread)."""

    async def publish() -> None:
        await asyncio.to_thread(
            paho.mqtt.publish.single,
            topic,
            payload,
            qos=1,
            hostname=broker.host,
            port=broker.port,
            keepalive=10,
        )

    return publish


def retained(broker: Mosquitto, topic: str, timeout: float = 5.0) -> str | None:
    """The retained message on ``topic`` (None if none came in ``timeout``). Blocking."""
    got: list[str] = []
    mqttc = paho.mqtt.client.Client(CallbackAPIVersion.VERSION2)
    mqttc.on_message = lambda _c, _u, msg: got.append(msg.payload.decode())
    mqttc.connect(broker.host, broker.port, keepalive=10)
    try:
        mqttc.subscribe(topic, qos=1)
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            mqttc.loop(timeout=0.05)
    finally:
        mqttc.disconnect()
    return got[-1] if got else None


def pusher(device: DeviceServer, data: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def push() -> None:
        await device.push(PV_EVENT, data)

    return push


async def send_until_shown(
    client: HaClient,
    send: Callable[[], Awaitable[None]],
    entity_id: str,
    predicate: Callable[[dict[str, Any] | None], bool],
    timeout: float = SHOWN_S,
) -> dict[str, Any]:
    """Send a reading, as a device repeats it, until HA shows it.

    Right after a reconnect a reading can beat the subscription to the
    broker and be lost, as it would be in a house; a real gateway sends
    again, and so does this.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):  # the broker not back yet
            await send()
        try:
            found = await client.wait_state(
                entity_id, predicate, timeout=min(1.0, max(0.1, deadline - time.monotonic()))
            )
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise
            continue
        assert found is not None
        return found


async def steps_until(
    queue: asyncio.Queue[dict[str, Any]], entity_id: str, last: tuple[str, bool]
) -> list[tuple[str, bool]]:
    """The (state, stale) steps ``entity_id`` took up to ``last``, repeats merged.

    HA sends the state_changed event after the REST read already showed the
    state, so the events are taken until ``last`` arrives, not just drained.
    """
    steps: list[tuple[str, bool]] = []
    async with asyncio.timeout(SHOWN_S):
        while not steps or steps[-1] != last:
            data = (await queue.get())["data"]
            new = data.get("new_state")
            if data.get("entity_id") != entity_id or new is None:
                continue
            step = (new["state"], new["attributes"].get("stale"))
            if not steps or steps[-1] != step:
                steps.append(step)
    return steps


async def state_of(client: HaClient, entity_id: str) -> str | None:
    """The entity's state string, None if HA does not know it."""
    found = await client.get_state(entity_id)
    return None if found is None else str(found["state"])


# --- tests --------------------------------------------------------------------------


async def test_mqtt_and_websocket_values_reach_ha_with_units_and_classes(
    client: HaClient,
    monitor: AppDaemon,
    gw_broker: Mosquitto,
    meter_broker: Mosquitto,
    device: DeviceServer,
) -> None:
    await send_until_shown(
        client,
        publisher(gw_broker, GW_TOPIC, '{"power": -1500, "soc": 80}'),
        f"sensor.{GW}_soc",
        _shows("80", stale=False),
    )
    await send_until_shown(
        client,
        publisher(meter_broker, METER_TOPIC, '{"w": 420}'),
        f"sensor.{METER}_power",
        _shows("420", stale=False),
    )
    await send_until_shown(
        client, pusher(device, {"w": 3200}), f"sensor.{CTL}_pv_power", _shows("3200", stale=False)
    )

    states = await client.get_states()
    grid = states[f"sensor.{GW}_grid_power"]
    assert grid["state"] == "-1500"
    assert grid["attributes"]["unit_of_measurement"] == "W"
    assert grid["attributes"]["device_class"] == "power"
    assert grid["attributes"]["state_class"] == "measurement"
    assert grid["attributes"]["connection_status"] == "connected"
    soc = states[f"sensor.{GW}_soc"]["attributes"]
    assert (soc["unit_of_measurement"], soc["device_class"]) == ("%", "battery")
    pv = states[f"sensor.{CTL}_pv_power"]["attributes"]
    assert (pv["unit_of_measurement"], pv["device_class"], pv["stale"]) == ("W", "power", False)
    for link, transport in ((GW, "mqtt"), (METER, "mqtt"), (CTL, "websocket")):
        connected = states[f"binary_sensor.{link}_connected"]
        assert connected["state"] == "on"
        assert connected["attributes"]["device_class"] == "connectivity"
        status = states[f"sensor.{link}_link_status"]
        assert status["state"] == "connected"
        assert status["attributes"]["transport"] == transport
        assert status["attributes"]["success_rate"] == 100.0
        assert status["attributes"]["consecutive_failures"] == 0

    # A reading out of range is skipped and counted; the last good one stays.
    await send_until_shown(
        client,
        publisher(gw_broker, GW_TOPIC, '{"power": 999999, "soc": 81}'),
        f"sensor.{GW}_soc",
        _shows("81", stale=False),
    )
    skipped = await client.wait_state(
        f"sensor.{GW}_grid_power", lambda s: s is not None and s["attributes"]["invalid_count"] == 1
    )
    assert skipped is not None
    assert skipped["state"] == "-1500"
    assert skipped["attributes"]["last_invalid"].startswith("out_of_range")


async def test_short_broker_blip_keeps_values_available_and_stale(
    client: HaClient, monitor: AppDaemon, meter_broker: Mosquitto
) -> None:
    power = f"sensor.{METER}_power"
    await send_until_shown(
        client,
        publisher(meter_broker, METER_TOPIC, '{"w": 510}'),
        power,
        _shows("510", stale=False),
    )
    async with client.websocket() as ws:
        changes = await ws.subscribe_events("state_changed")
        began = time.monotonic()
        try:
            await meter_broker.astop()
            await client.wait_state(f"binary_sensor.{METER}_connected", _is("off"))
            during = await client.wait_state(power, _shows("510", stale=True))
            assert during is not None
            assert during["attributes"]["connection_status"] == "offline"
            assert await state_of(client, f"sensor.{METER}_link_status") == "offline"
        finally:
            await meter_broker.astart()
        await client.wait_state(f"binary_sensor.{METER}_connected", _is("on"), timeout=SHOWN_S)
        outage_s = time.monotonic() - began
        # Back before the grace ran out, and still the reading from before
        # the loss: shown, but stale until the meter confirms it.
        assert outage_s < GRACE_S
        after = await client.get_state(power)
        assert after is not None
        assert (after["state"], after["attributes"]["stale"]) == ("510", True)
        await send_until_shown(
            client,
            publisher(meter_broker, METER_TOPIC, '{"w": 530}'),
            power,
            _shows("530", stale=False),
        )
        steps = await steps_until(changes, power, ("530", False))

    # Never unavailable: stale while the broker was away, fresh once re-read.
    assert steps == [("510", True), ("530", False)]
    # The other MQTT link, on its own broker, never noticed.
    gw = await client.get_state(f"binary_sensor.{GW}_connected")
    assert gw is not None
    assert gw["state"] == "on"
    assert f"{APP}_{METER}_outage" not in await client.notifications()


async def test_broker_down_past_grace_goes_unavailable_with_a_notice_then_recovers(
    client: HaClient, monitor: AppDaemon, gw_broker: Mosquitto, device: DeviceServer
) -> None:
    grid, soc = f"sensor.{GW}_grid_power", f"sensor.{GW}_soc"
    pv = f"sensor.{CTL}_pv_power"
    await send_until_shown(
        client,
        publisher(gw_broker, GW_TOPIC, '{"power": -1200, "soc": 75}'),
        grid,
        _shows("-1200", stale=False),
    )
    assert GW_NOTICE not in await client.notifications()

    async with client.websocket() as ws:
        changes = await ws.subscribe_events("state_changed")
        began = time.monotonic()
        try:
            await gw_broker.astop()
            # Inside the grace: offline, values kept but stale, no notice yet.
            await client.wait_state(f"binary_sensor.{GW}_connected", _is("off"))
            await client.wait_state(grid, _shows("-1200", stale=True))
            status = await client.get_state(f"sensor.{GW}_link_status")
            assert status is not None
            assert status["state"] == "offline"
            assert GW_NOTICE not in await client.notifications()
            # The WebSocket link is not held up by the dead broker.
            await send_until_shown(
                client, pusher(device, {"w": 2800}), pv, _shows("2800", stale=False)
            )

            # Past the grace: unavailable, and the person is told.
            await client.wait_state(grid, _is("unavailable"), timeout=GRACE_S + 10)
            assert time.monotonic() - began >= GRACE_S
            assert await state_of(client, soc) == "unavailable"
            assert await state_of(client, f"binary_sensor.{GW}_connected") == "off"
            found = await wait_for(
                client.notifications,
                lambda n: GW_NOTICE in n,
                timeout=SHOWN_S,
                what=f"notification {GW_NOTICE}",
            )
            notice = found[GW_NOTICE]
            assert GW in notice["title"]
            assert f"mqtt://{gw_broker.host}:{gw_broker.port}" in notice["message"]
            assert "Check that the MQTT broker" in notice["message"]  # the steps

            # Still: the other links carry on, their values fresh.
            await send_until_shown(
                client, pusher(device, {"w": 2900}), pv, _shows("2900", stale=False)
            )
            for link in (METER, CTL):
                state = await client.get_state(f"binary_sensor.{link}_connected")
                assert state is not None
                assert state["state"] == "on"
        finally:
            await gw_broker.astart()

        # The broker is back: values flow again and the notice goes away.
        await client.wait_state(f"binary_sensor.{GW}_connected", _is("on"), timeout=RECONNECT_S)
        await send_until_shown(
            client,
            publisher(gw_broker, GW_TOPIC, '{"power": -700, "soc": 74}'),
            grid,
            _shows("-700", stale=False),
        )
        await wait_for(
            client.notifications,
            lambda n: GW_NOTICE not in n,
            timeout=SHOWN_S,
            what=f"notification {GW_NOTICE} dismissed",
        )
        assert await state_of(client, soc) == "74"
        steps = await steps_until(changes, grid, ("-700", False))

    # In order, each once: stale within the grace, unavailable after, fresh again.
    assert steps == [("-1200", True), ("unavailable", True), ("-700", False)]


async def test_appdaemon_stop_disconnects_every_link_and_marks_them_offline(
    client: HaClient, monitor: AppDaemon, gw_broker: Mosquitto, device: DeviceServer
) -> None:
    # Last in the module: it stops the module's AppDaemon.
    assert await asyncio.to_thread(retained, gw_broker, GW_AVAILABILITY) == "online"
    assert device.peers

    await asyncio.to_thread(monitor.stop)

    assert await asyncio.to_thread(retained, gw_broker, GW_AVAILABILITY) == "offline"
    await device.wait_for(lambda: not device.peers, SHOWN_S)
    states = await client.get_states()
    for link in (GW, METER, CTL):
        assert states[f"sensor.{link}_link_status"]["state"] == "disconnected"
        assert states[f"binary_sensor.{link}_connected"]["state"] == "off"
    # Nobody keeps them current any more: unavailable, not silently stale.
    for value in (f"{GW}_grid_power", f"{GW}_soc", f"{METER}_power", f"{CTL}_pv_power"):
        assert states[f"sensor.{value}"]["state"] == "unavailable"
