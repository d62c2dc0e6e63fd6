"""The ``entities:`` choice reaching real apps: FakeHass for HA, a real
mosquitto for the MQTT backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridwatch.config.base import ConfigError
from gridwatch.config.entities_schema import REST_ENTITIES, load_app_config
from gridwatch.config.notifier_schema import NotifierSchema
from gridwatch.energy.recorder_statistics import COMMAND_TYPE
from gridwatch.runtime.entity_backend import MqttEntitiesPort
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from gridwatch_energy_tally import EnergyTally
from gridwatch_export_guard import ExportGuard
from gridwatch_link_monitor import LinkMonitorApp
from gridwatch_notifier import Notifier
from tests.energy.recorder_model import RecorderModel
from tests.runtime.test_mqtt_entities import retained
from tests.support.app_harness import make_app
from tests.support.clock import FakeClock
from tests.support.fake_hass import Fail, FakeHass, TimeOut
from tests.support.mosquitto import Mosquitto

SENSOR = "sensor.notifier_active_notices"


def entities_block(broker: Mosquitto, tag: str) -> dict[str, Any]:
    return {
        "backend": "mqtt",
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "discovery_prefix": f"ha_{tag}",
            "base_topic": f"gw_{tag}",
        },
    }


# --- configuration ------------------------------------------------------------


def test_no_block_means_rest():
    _, entities = load_app_config(NotifierSchema, {"tick_s": 10}, app_name="notifier")
    assert entities == REST_ENTITIES


@pytest.mark.parametrize(
    ("block", "key", "why"),
    [
        ({"backend": "mqtt"}, "entities.mqtt", "needs the broker"),
        ("mqtt", "entities.mqtt", "needs the broker"),
        ({"backend": "mqt"}, "entities.backend", "Must be one of"),
        ({"backend": "mqtt", "mqtt": {"hots": "x"}}, "entities.mqtt.hots", "did you mean 'host'"),
        ({"backend": "mqtt", "mqtt": {"host": "b", "username": "u"}}, "entities.mqtt.password", ""),
        (
            {"backend": "mqtt", "mqtt": {"host": "b", "base_topic": "a/#"}},
            "entities.mqtt.base_topic",
            "wildcards",
        ),
    ],
)
def test_bad_block_is_named_in_the_apps_one_error(block, key, why):
    with pytest.raises(ConfigError) as caught:
        load_app_config(NotifierSchema, {"tick_s": 0, "entities": block}, app_name="notifier")
    problems = {p.key: p.why for p in caught.value.problems}
    # The app's own bad key and the block's, in the same error.
    assert "tick_s" in problems
    assert key in problems
    assert why in problems[key]


def test_password_never_appears_in_the_error():
    block = {"backend": "mqtt", "mqtt": {"host": "b", "password": "s3cret", "port": "x"}}
    with pytest.raises(ConfigError) as caught:
        load_app_config(NotifierSchema, {"entities": block}, app_name="notifier")
    assert "s3cret" not in str(caught.value)


async def test_bad_block_stops_the_app_with_the_config_notice():
    hass = FakeHass()
    app = make_app(Notifier, {"entities": {"backend": "mqtt"}}, hass, name="notifier")
    await app.initialize()
    assert app.hass_port is None
    (call,) = hass.calls_to("persistent_notification/create")
    assert "`entities.mqtt`" in call.data["message"]


# --- apps on the MQTT backend -------------------------------------------------


@pytest.mark.mqtt
async def test_notifier_entity_goes_to_mqtt_not_rest(mosquitto, tmp_path):
    tag = uuid.uuid4().hex[:8]
    hass = FakeHass()
    args = {"entities": entities_block(mosquitto, tag), "state_file": str(tmp_path / "n.json")}
    app = make_app(Notifier, args, hass, name="notifier")
    await app.initialize()
    try:
        assert isinstance(app.hass_port, MqttEntitiesPort)
        assert hass.state_of(SENSOR) is None  # nothing over REST
        seen = await retained(mosquitto, f"ha_{tag}/#")
        config = seen[f"ha_{tag}/sensor/gridwatch_notifier/notifier_active_notices/config"]
        assert config["default_entity_id"] == SENSOR
        state = await retained(mosquitto, f"gw_{tag}/notifier/notifier_active_notices/state")
        assert state[f"gw_{tag}/notifier/notifier_active_notices/state"]["value"] == "0"
    finally:
        await app.terminate()
    seen = await retained(mosquitto, f"gw_{tag}/notifier/availability")
    assert seen[f"gw_{tag}/notifier/availability"] == "offline"


@pytest.mark.mqtt
async def test_a_rest_leftover_is_deleted_before_the_mqtt_entity_appears(mosquitto, tmp_path):
    hass = FakeHass()
    hass.seed(SENSOR, "3", {"friendly_name": "written by the REST backend"})
    # What HA answers for an id its entity registry does not have.
    hass.script_websocket("config/entity_registry/get", Fail("not_found: Entity not found"))
    app = make_app(
        Notifier,
        {
            "entities": entities_block(mosquitto, uuid.uuid4().hex[:8]),
            "state_file": str(tmp_path / "n.json"),
        },
        hass,
        name="notifier",
    )
    await app.initialize()
    try:
        # Otherwise HA would name the MQTT entity sensor.notifier_active_notices_2.
        assert hass.state_of(SENSOR) is None
    finally:
        await app.terminate()


@pytest.mark.mqtt
async def test_a_registered_entity_is_not_deleted(mosquitto, tmp_path):
    hass = FakeHass()
    hass.seed(SENSOR, "3", {})
    hass.script_websocket("config/entity_registry/get", {"entity_id": SENSOR, "platform": "mqtt"})
    app = make_app(
        Notifier,
        {
            "entities": entities_block(mosquitto, uuid.uuid4().hex[:8]),
            "state_file": str(tmp_path / "n.json"),
        },
        hass,
        name="notifier",
    )
    await app.initialize()
    try:
        assert hass.state_of(SENSOR) is not None
    finally:
        await app.terminate()


@pytest.mark.mqtt
async def test_an_unanswered_registry_lookup_deletes_nothing(mosquitto, tmp_path):
    hass = FakeHass()
    hass.seed(SENSOR, "3", {})
    hass.script_websocket("config/entity_registry/get", TimeOut())
    app = make_app(
        Notifier,
        {
            "entities": entities_block(mosquitto, uuid.uuid4().hex[:8]),
            "state_file": str(tmp_path / "n.json"),
        },
        hass,
        name="notifier",
    )
    await app.initialize()
    try:
        assert hass.state_of(SENSOR) is not None
    finally:
        await app.terminate()


# --- what the apps tell the backend ---------------------------------------------


def test_link_monitor_groups_each_links_entities_under_its_device():
    hass = FakeHass()
    link = {
        "name": "gateway",
        "mqtt": {"host": "127.0.0.1"},
        "values": [{"name": "grid_power", "source": "meter/state"}],
    }
    app = make_app(LinkMonitorApp, {"links": [link]}, hass, name="link_monitor")
    config, _ = load_app_config(app.schema, app.args, app_name="link_monitor")
    devices = app.entity_devices(config)
    assert set(devices) == {
        "sensor.gateway_grid_power",
        "binary_sensor.gateway_connected",
        "sensor.gateway_link_status",
    }
    (device,) = set(devices.values())
    assert device.name == "gateway"
    assert device.identifier == "gridwatch_link_monitor_gateway"
    assert device.model == "mqtt link (link_monitor)"


def test_energy_tally_keeps_its_energy_sensors_until_the_first_good_cycle():
    hass = FakeHass()
    meters = [
        {"statistic_id": "sensor.a", "name": "Grid import", "role": "import"},
        {"statistic_id": "sensor.b", "name": "Heat pump"},
    ]
    app = make_app(EnergyTally, {"meters": meters}, hass, name="energy_tally")
    config, _ = load_app_config(app.schema, app.args, app_name="energy_tally")
    assert set(app.expected_entities(config)) == {
        "sensor.grid_import_energy_today",
        "sensor.grid_import_energy_this_month",
        "sensor.heat_pump_energy_today",
        "sensor.heat_pump_energy_this_month",
        "sensor.energy_tally_import_today",
        "sensor.energy_tally_import_this_month",
    }


# --- a restart removes nothing the app still has --------------------------------

GUARD_ARGS = {
    "export_limit_w": 3000,
    "daily_export_cap_kwh": 10,
    "max_discharge_w": 5000,
    "readings": {
        "grid_power": {"entity": "sensor.grid_power"},
        "soc": {"entity": "sensor.battery_soc"},
        "export_today": {"entity": "sensor.grid_export_today"},
    },
    "actuators": {
        "enable": {"entity": "input_boolean.discharge"},
        "power": {"entity": "input_number.discharge_power"},
    },
}
TALLY_ARGS = {
    "meters": [{"statistic_id": "sensor.a", "name": "Grid import", "role": "import"}],
    "time_zone": "Europe/Berlin",
}
LINKS_ARGS = {
    "links": [
        {
            "name": "gateway",
            # Nothing listens there: the link stays offline, its entities say so.
            "mqtt": {"host": "127.0.0.1", "port": 1},
            "values": [{"name": "grid_power", "source": "meter/state"}],
        }
    ]
}


def _world(*, statistics: bool = False) -> FakeHass:
    hass = FakeHass(FakeClock(wall=datetime(2026, 6, 15, 8, 30, tzinfo=UTC)))
    if statistics:  # the recorder answers: the tally's energy sensors appear
        model = RecorderModel(ZoneInfo("Europe/Berlin"))
        hass.script_websocket(COMMAND_TYPE, *([model.answer] * 4))
    for entity_id, state in (
        ("sensor.grid_power", "0"),
        ("sensor.battery_soc", "80"),
        ("sensor.grid_export_today", "1.0"),
        ("input_boolean.discharge", "off"),
        ("input_number.discharge_power", "0"),
    ):
        hass.seed(entity_id, state)
    return hass


@pytest.mark.mqtt
@pytest.mark.parametrize(
    ("app_cls", "name", "args"),
    [
        (Notifier, "notifier", {}),
        (ExportGuard, "export_guard", GUARD_ARGS),
        (EnergyTally, "energy_tally", TALLY_ARGS),
        (LinkMonitorApp, "link_monitor", LINKS_ARGS),
    ],
)
async def test_a_restart_removes_nothing_the_app_still_has(
    mosquitto, tmp_path, app_cls, name, args
):
    tag = uuid.uuid4().hex[:8]
    full = {**args, "entities": entities_block(mosquitto, tag)}
    if app_cls is Notifier:
        full["state_file"] = str(tmp_path / "n.json")

    async def run_once(hass: FakeHass) -> set[str]:
        app = make_app(app_cls, full, hass, name=name)
        await app.initialize()
        assert app.hass_port is not None
        if isinstance(app, ExportGuard):
            assert app.controller is not None
            await app.controller.wait_idle()  # its entities are written by a task
        await app.terminate()
        return set(await retained(mosquitto, f"ha_{tag}/#"))

    # The tally's first run gets statistics, its second does not (a recorder
    # restart): its energy sensors must stay all the same.
    first = await run_once(_world(statistics=True))
    assert first
    if app_cls is EnergyTally:
        assert any("grid_import_energy_today" in topic for topic in first)
    # Watch the second run: an empty retained config is HA deleting the entity.
    emptied: list[str] = []
    watcher = MqttLink("watch", MqttSettings(host=mosquitto.host, port=mosquitto.port))
    await watcher.subscribe(
        f"ha_{tag}/#", lambda m: emptied.append(m.key) if not m.payload else None, qos=1
    )
    await watcher.connect(10)
    try:
        second = await run_once(_world())
    finally:
        await watcher.disconnect()
    assert emptied == []
    assert second == first
