"""The MQTT entity backend (``entities: {backend: mqtt}``) against a real HA.

HA's MQTT integration is set up through its config flow (a config entry,
as a user does in Settings > Devices & services) against the test session's
mosquitto; AppDaemon runs the notifier, a link monitor with one MQTT link
and the energy tally, all three with the MQTT backend. The tests read
HA's entity and device registries, states and statistics validation back
over its REST and websocket APIs.

The tests of this module run in order and share one AppDaemon: written so
that each states one behaviour a user relies on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

from gridwatch.energy.periods import TallyPeriods, tally_periods
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, HaCommandError, wait_for
from tests.e2e.ha_config import TIME_ZONE
from tests.e2e.ha_install import ensure_installed, install_from_env
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

NOTIFIER = "mq_notifier"
LINKS = "mq_links"
TALLY = "mq_tally"
NOTICES = f"sensor.{NOTIFIER}_active_notices"
POWER = "sensor.mq_gw_power"
PV = "sensor.mq_gw_pv"
CONNECTED = "binary_sensor.mq_gw_connected"
METER = ("sensor.e2e_mq_grid", "E2E MQ grid", "import", 0.5)  # id, name, role, kWh/h
TODAY = "sensor.e2e_mq_grid_energy_today"
MONTH = "sensor.e2e_mq_grid_energy_this_month"
GATEWAY_TOPIC = "e2e/mq_gw/state"
HOUR = timedelta(hours=1)
WAIT_S = 60.0


# A short keepalive: the broker fires the last will within 1.5 of these.
KEEPALIVE_S = 5


def entities_block(broker: Mosquitto) -> dict[str, Any]:
    return {
        "backend": "mqtt",
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive_s": KEEPALIVE_S},
    }


def apps(broker: Mosquitto, *, with_pv: bool = True) -> dict[str, dict[str, Any]]:
    block = entities_block(broker)
    values = [
        {
            "name": "power",
            "source": GATEWAY_TOPIC,
            "path": "power",
            "unit": "W",
            "device_class": "power",
            "state_class": "measurement",
        }
    ]
    if with_pv:
        values.append({"name": "pv", "source": GATEWAY_TOPIC, "path": "pv", "unit": "W"})
    return {
        NOTIFIER: {
            "module": "gridwatch_notifier",
            "class": "Notifier",
            "priority": 10,
            "entities": block,
        },
        LINKS: {
            "module": "gridwatch_link_monitor",
            "class": "LinkMonitorApp",
            "priority": 20,
            "tick_interval_s": 1,
            "entities": block,
            "links": [
                {
                    "name": "mq_gw",
                    "mqtt": {"host": broker.host, "port": broker.port},
                    "stale_after_s": None,
                    "values": values,
                }
            ],
        },
        TALLY: {
            "module": "gridwatch_energy_tally",
            "class": "EnergyTally",
            "priority": 30,
            "interval_s": 3600,
            "entities": block,
            "meters": [{"statistic_id": METER[0], "name": METER[1], "role": METER[2]}],
        },
    }


# --- module set-up ------------------------------------------------------------


def _run(coro: Any, timeout: float = 180) -> Any:
    # Module fixtures have no test loop: run on a fresh loop in a worker.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)


async def _configure_mqtt(ha: HomeAssistant, broker: Mosquitto) -> None:
    """Add HA's MQTT integration as a user does (config flow -> config entry)."""
    async with HaClient(ha.url, ha.token) as client:
        flow = await client.rest("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("type") == "abort":
            return  # single_instance_allowed: an earlier module set it up
        result = await client.rest(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": broker.host, "port": broker.port},
        )
        assert result["type"] == "create_entry", result


async def _seed(ha: HomeAssistant, periods: TallyPeriods) -> None:
    first = periods.today_start - timedelta(hours=24)
    hours = [first + HOUR * h for h in range(int((periods.hour_start - first) / HOUR))]
    async with HaClient(ha.url, ha.token) as client:
        await client.import_statistics(
            METER[0],
            [{"start": h, "sum": METER[3] * (i + 1)} for i, h in enumerate(hours)],
            unit="kWh",
            name=METER[1],
        )
        await client.wait_statistics(METER[0], hours[0], len(hours), timeout=60)
        # A leftover of the REST backend: the MQTT entity must still get this id.
        await client.set_state(NOTICES, "5", {"friendly_name": "old REST entity"})


async def _publish(broker: Mosquitto, topic: str, payload: str, retain: bool = True) -> None:
    link = MqttLink("e2e-tool", MqttSettings(host=broker.host, port=broker.port))
    await link.connect(10)
    try:
        await link.publish(topic, payload, qos=1, retain=retain)
    finally:
        await link.disconnect()


@pytest.fixture(scope="module")
def periods() -> TallyPeriods:
    return tally_periods(datetime.now(UTC), ZoneInfo(TIME_ZONE))


async def _remove_mqtt(ha: HomeAssistant) -> None:
    async with HaClient(ha.url, ha.token) as client:
        entries = await client.rest("GET", "/api/config/config_entries/entry?domain=mqtt")
        for entry in entries or []:
            await client.rest("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")


@pytest.fixture(scope="module")
def site(ha: HomeAssistant, mosquitto: Mosquitto, periods: TallyPeriods) -> Iterator[None]:
    # HA's MQTT integration needs paho-mqtt in HA's own venv.
    ensure_installed(install_from_env(), ("mqtt",))
    # The config-flow API (Settings > Devices & services) is the ``config``
    # integration, which default_config loads; the harness's lean HA does not.
    path = ha.config_dir / "configuration.yaml"
    data = yaml.safe_load(path.read_text())
    added_config = "config" not in data
    if added_config:
        data["config"] = {}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        ha.restart()
    _run(_configure_mqtt(ha, mosquitto))
    _run(_seed(ha, periods))
    _run(_publish(mosquitto, GATEWAY_TOPIC, json.dumps({"power": 1234, "pv": 321})))
    yield
    # The session's HA is shared: leave it as lean as it was (the MQTT
    # integration loads every entity platform).
    _run(_remove_mqtt(ha))
    if added_config:
        data.pop("config")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    ha.restart()


@pytest.fixture(scope="module")
def ad(appdaemon_module_factory: AppDaemonFactory, site: None, mosquitto: Mosquitto) -> AppDaemon:
    instance = appdaemon_module_factory.start(apps=apps(mosquitto))
    for app in (NOTIFIER, LINKS, TALLY):
        instance.wait_app(app)
    return instance


def has_value(state: dict[str, Any]) -> bool:
    return state["state"] not in ("unknown", "unavailable")


async def registry_entry(client: HaClient, entity_id: str) -> dict[str, Any]:
    return await client.ws_command("config/entity_registry/get", entity_id=entity_id)


async def wait_value(client: HaClient, entity_id: str, predicate: Any) -> dict[str, Any]:
    state = await client.wait_state(
        entity_id, lambda s: s is not None and predicate(s), timeout=WAIT_S
    )
    assert state is not None
    return state


# --- the tests ------------------------------------------------------------------


async def test_entities_have_unique_ids_and_devices(ad: AppDaemon, ha_client: HaClient) -> None:
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    await wait_value(ha_client, NOTICES, lambda s: s["state"] == "0")
    devices = {d["id"]: d for d in await ha_client.ws_command("config/device_registry/list")}
    for entity_id, device_name in (
        (NOTICES, NOTIFIER),  # the REST leftover did not push it to _2
        (POWER, "mq_gw"),
        (CONNECTED, "mq_gw"),
        ("sensor.mq_gw_link_status", "mq_gw"),
        (f"sensor.{TALLY}_health", TALLY),
    ):
        entry = await registry_entry(ha_client, entity_id)
        assert entry["platform"] == "mqtt"
        assert entry["unique_id"].startswith("gridwatch_")
        assert entry["device_id"] in devices, entry
        device = devices[entry["device_id"]]
        assert device["name"] == device_name
        assert device["manufacturer"] == "Gridwatch"
    link_device = devices[(await registry_entry(ha_client, POWER))["device_id"]]
    assert link_device["model"] == f"mqtt link ({LINKS})"
    assert await ha_client.get_state(f"{NOTICES}_2") is None


async def test_units_classes_and_attributes_as_with_rest(
    ad: AppDaemon, ha_client: HaClient, periods: TallyPeriods
) -> None:
    power = await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    assert power["attributes"]["unit_of_measurement"] == "W"
    assert power["attributes"]["device_class"] == "power"
    assert power["attributes"]["state_class"] == "measurement"
    assert power["attributes"]["stale"] is False
    connected = await wait_value(ha_client, CONNECTED, lambda s: s["state"] == "on")
    assert connected["attributes"]["device_class"] == "connectivity"

    hours_today = int((periods.hour_start - periods.today_start) / HOUR)
    today = await wait_value(
        ha_client, TODAY, lambda s: s["state"] not in ("unknown", "unavailable")
    )
    assert float(today["state"]) == pytest.approx(hours_today * METER[3], abs=0.001)
    attrs = today["attributes"]
    assert (attrs["unit_of_measurement"], attrs["device_class"], attrs["state_class"]) == (
        "kWh",
        "energy",
        "total",
    )
    zone = ZoneInfo(TIME_ZONE)
    assert datetime.fromisoformat(attrs["last_reset"]) == periods.today_start.astimezone(zone)
    assert attrs["statistic_id"] == METER[0]


async def test_energy_sensors_pass_ha_statistics_validation(
    ad: AppDaemon, ha_client: HaClient
) -> None:
    await wait_value(ha_client, MONTH, has_value)
    published = {TODAY, MONTH, f"sensor.{TALLY}_import_today", f"sensor.{TALLY}_import_this_month"}
    for entity_id in published:
        state = await wait_value(ha_client, entity_id, lambda s: s["state"] != "unavailable")
        assert state["attributes"]["state_class"] == "total"
    issues = await ha_client.ws_command("recorder/validate_statistics")
    assert {k: v for k, v in issues.items() if k in published} == {}


async def test_unavailable_when_appdaemon_stops_and_back_when_it_starts(
    ad: AppDaemon, ha_client: HaClient
) -> None:
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    await asyncio.to_thread(ad.stop)
    for entity_id in (POWER, NOTICES, TODAY):
        await wait_value(ha_client, entity_id, lambda s: s["state"] == "unavailable")
    await asyncio.to_thread(ad.start)
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    await wait_value(ha_client, TODAY, has_value)


async def test_a_crashed_appdaemon_goes_unavailable_by_the_last_will(
    ad: AppDaemon, ha_client: HaClient
) -> None:
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    pid = ad.process.pid
    assert pid is not None
    # No goodbye: only the broker's last will can tell HA.
    os.killpg(pid, signal.SIGKILL)
    began = time.monotonic()
    await wait_value(ha_client, POWER, lambda s: s["state"] == "unavailable")
    assert time.monotonic() - began < 3 * KEEPALIVE_S
    await asyncio.to_thread(ad.stop)
    await asyncio.to_thread(ad.start)
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")


async def test_ha_restart_restores_entities_from_the_broker_alone(
    ad: AppDaemon, ha: HomeAssistant, ha_client: HaClient, mosquitto: Mosquitto
) -> None:
    before = await wait_value(
        ha_client, TODAY, lambda s: s["state"] not in ("unknown", "unavailable")
    )
    unique_id = (await registry_entry(ha_client, TODAY))["unique_id"]
    # AppDaemon is stopped, so nothing republishes; the test then says "online"
    # for the tally (as the running app would) to show the retained values.
    await asyncio.to_thread(ad.stop)
    await ha.restart_async()
    async with HaClient(ha.url, ha.token) as client:
        gone = await wait_value(client, TODAY, lambda s: s["state"] == "unavailable")
        assert gone["attributes"]["friendly_name"]
        await _publish(mosquitto, f"gridwatch/{TALLY}/availability", "online")
        after = await wait_value(client, TODAY, lambda s: s["state"] == before["state"])
        for key in ("last_reset", "statistic_id", "unit_of_measurement", "state_class"):
            assert after["attributes"][key] == before["attributes"][key]
        assert (await registry_entry(client, TODAY))["unique_id"] == unique_id
    await asyncio.to_thread(ad.start)


async def test_a_deleted_value_or_app_leaves_no_ghost(
    ad: AppDaemon,
    ha_client: HaClient,
    appdaemon_module_factory: AppDaemonFactory,
    mosquitto: Mosquitto,
) -> None:
    await wait_value(ha_client, PV, lambda s: s["state"] == "321")
    await wait_value(ha_client, TODAY, has_value)
    await asyncio.to_thread(ad.stop)
    # The next apps.yaml: the link's pv value and the whole tally are gone.
    trimmed = {k: v for k, v in apps(mosquitto, with_pv=False).items() if k != TALLY}
    again = await asyncio.to_thread(appdaemon_module_factory.start, trimmed)
    again.wait_app(LINKS)
    for gone in (PV, TODAY, MONTH, f"sensor.{TALLY}_health"):
        await wait_for(
            lambda e=gone: ha_client.get_state(e), lambda s: s is None, timeout=WAIT_S, what=gone
        )
        with pytest.raises(HaCommandError):
            await registry_entry(ha_client, gone)
    await wait_value(ha_client, POWER, lambda s: s["state"] == "1234")
    devices = await ha_client.ws_command("config/device_registry/list")
    assert TALLY not in {d["name"] for d in devices}  # HA drops a device left empty
