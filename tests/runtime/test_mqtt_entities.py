"""The MQTT entity backend against a real mosquitto.

What HA would see is read back from the broker by a separate client: the
retained configs, states and availability, as HA's MQTT integration gets
them when it (re)subscribes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gridwatch.config.entities_schema import MqttEntitiesConfig
from gridwatch.hass.errors import HassError
from gridwatch.runtime.entity_backend import app_device, build_mqtt_backend, sub_device
from gridwatch.runtime.mqtt_entities import MqttEntityBackend
from gridwatch.transport.link import Message
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.mqtt, pytest.mark.asyncio]

WAIT_S = 10.0


async def retained(broker: Mosquitto, topic_filter: str) -> dict[str, Any]:
    """Every retained message under ``topic_filter`` (JSON-decoded when it is JSON)."""
    seen: dict[str, Any] = {}
    done = asyncio.Event()
    probe = f"probe/{uuid.uuid4().hex}"

    def on_message(message: Message) -> None:
        if message.key == probe:
            done.set()
            return
        text = message.payload.decode()
        try:
            seen[message.key] = json.loads(text)
        except ValueError:
            seen[message.key] = text

    reader = MqttLink("reader", MqttSettings(host=broker.host, port=broker.port))
    await reader.subscribe(topic_filter, on_message, qos=1)
    await reader.subscribe(probe, on_message, qos=1)
    await reader.connect(WAIT_S)
    try:
        await reader.publish(probe, "x", qos=1)
        async with asyncio.timeout(WAIT_S):
            await done.wait()
    finally:
        await reader.disconnect()
    return seen


@pytest.fixture
def prefixes() -> tuple[str, str]:
    """A discovery prefix and base topic of this test only (the broker is shared)."""
    tag = uuid.uuid4().hex[:8]
    return f"ha_{tag}", f"gw_{tag}"


def make(
    broker: Mosquitto,
    prefixes: tuple[str, str],
    app: str = "tally",
    **kwargs: Any,
) -> MqttEntityBackend:
    discovery, base = prefixes
    cfg = MqttEntitiesConfig(
        host=broker.host,
        port=broker.port,
        discovery_prefix=discovery,
        base_topic=base,
        birth_topic=f"{discovery}/status",
    )
    return build_mqtt_backend(app, cfg, **kwargs)


@pytest.fixture
async def backends() -> AsyncIterator[list[MqttEntityBackend]]:
    made: list[MqttEntityBackend] = []
    yield made
    for backend in made:
        await backend.close()


ENERGY = {
    "friendly_name": "Grid import today",
    "unit_of_measurement": "kWh",
    "device_class": "energy",
    "state_class": "total",
    "last_reset": "2026-06-01T00:00:00+02:00",
    "stale": False,
}


async def test_write_leaves_retained_config_state_and_attributes(mosquitto, prefixes, backends):
    discovery, base = prefixes
    backend = make(mosquitto, prefixes)
    backends.append(backend)
    await backend.start()
    await backend.set_entity("sensor.grid_import_today", "1.5", ENERGY)
    seen = {**await retained(mosquitto, f"{base}/#"), **await retained(mosquitto, f"{discovery}/#")}
    config = seen[f"{discovery}/sensor/gridwatch_tally/grid_import_today/config"]
    assert config["default_entity_id"] == "sensor.grid_import_today"
    assert config["device"]["name"] == "tally"
    state = seen[f"{base}/tally/grid_import_today/state"]
    assert state == {"value": "1.5", "available": True, "last_reset": ENERGY["last_reset"]}
    assert seen[f"{base}/tally/grid_import_today/attributes"] == {"stale": False}
    assert seen[f"{base}/tally/availability"] == "online"


async def test_config_is_sent_again_only_when_it_changes(mosquitto, prefixes, backends):
    discovery, _ = prefixes
    backend = make(mosquitto, prefixes)
    backends.append(backend)
    await backend.start()
    configs: list[Any] = []
    watcher = MqttLink("watch", MqttSettings(host=mosquitto.host, port=mosquitto.port))
    got = asyncio.Event()

    def on_config(message: Message) -> None:
        configs.append(json.loads(message.payload))
        got.set()

    await watcher.subscribe(f"{discovery}/+/+/+/config", on_config, qos=1)
    await watcher.connect(WAIT_S)
    try:
        await backend.set_entity("sensor.x", "1", {"icon": "mdi:bell"})
        await backend.set_entity("sensor.x", "2", {"icon": "mdi:bell"})
        await backend.set_entity("sensor.x", "3", {"icon": "mdi:bell-check"})
        async with asyncio.timeout(WAIT_S):
            while len(configs) < 2:
                got.clear()
                await got.wait()
    finally:
        await watcher.disconnect()
    assert [c["icon"] for c in configs] == ["mdi:bell", "mdi:bell-check"]


async def test_stop_and_crash_mark_the_app_offline(mosquitto, prefixes, backends):
    _, base = prefixes
    backend = make(mosquitto, prefixes)
    await backend.start()
    await backend.set_entity("sensor.x", "1", {})
    await backend.close()
    assert (await retained(mosquitto, f"{base}/tally/availability"))[
        f"{base}/tally/availability"
    ] == "offline"


async def test_write_without_broker_is_a_hass_error(prefixes, backends):
    cfg = MqttEntitiesConfig(host="127.0.0.1", port=1, base_topic=prefixes[1])
    backend = build_mqtt_backend("tally", cfg)
    backends.append(backend)
    await backend.start(connect_timeout_s=2)  # logs, never raises
    with pytest.raises(HassError, match=r"cannot write sensor\.x"):
        await backend.set_entity("sensor.x", "1", {})


async def test_unsupported_entity_is_a_hass_error(mosquitto, prefixes, backends):
    backend = make(mosquitto, prefixes)
    backends.append(backend)
    await backend.start()
    with pytest.raises(HassError, match="MQTT discovery supports"):
        await backend.set_entity("switch.x", "on", {})


async def test_remove_entity_clears_every_retained_topic(mosquitto, prefixes, backends):
    discovery, base = prefixes
    backend = make(mosquitto, prefixes)
    backends.append(backend)
    await backend.start()
    await backend.set_entity("sensor.a", "1", {})
    await backend.set_entity("sensor.b", "2", {})
    await backend.remove_entity("sensor.a")
    seen = {**await retained(mosquitto, f"{base}/#"), **await retained(mosquitto, f"{discovery}/#")}
    assert not [t for t in seen if "/a/" in t]
    assert f"{discovery}/sensor/gridwatch_tally/b/config" in seen
    assert list(seen[f"{base}/tally/manifest"]["entities"]) == ["sensor.b"]


async def test_next_run_sweeps_what_the_config_no_longer_has(mosquitto, prefixes, backends):
    discovery, base = prefixes
    first = make(mosquitto, prefixes)
    await first.start()
    for entity in ("sensor.kept", "sensor.later", "sensor.deleted"):
        await first.set_entity(entity, "1", {})
    await first.close()

    second = make(mosquitto, prefixes)
    backends.append(second)
    await second.start()
    await second.set_entity("sensor.kept", "2", {})
    removed = await second.sweep(keep={"sensor.later"})
    assert removed == ["sensor.deleted"]
    configs = sorted(t.split("/")[-2] for t in await retained(mosquitto, f"{discovery}/#"))
    assert configs == ["kept", "later"]
    seen = await retained(mosquitto, f"{base}/#")
    assert not [t for t in seen if "/deleted/" in t]
    assert sorted(seen[f"{base}/tally/manifest"]["entities"]) == ["sensor.kept", "sensor.later"]


async def test_apps_gone_from_apps_yaml_are_swept(mosquitto, prefixes, backends):
    discovery, base = prefixes
    old = make(mosquitto, prefixes, app="old_app")
    await old.start()
    await old.set_entity("sensor.old_thing", "1", {})
    await old.close()

    current = make(mosquitto, prefixes, app="tally", configured_apps=lambda: {"tally"})
    backends.append(current)
    await current.start()
    await current.set_entity("sensor.x", "1", {})
    assert await current.sweep() == ["sensor.old_thing"]
    seen = {**await retained(mosquitto, f"{base}/#"), **await retained(mosquitto, f"{discovery}/#")}
    assert not [t for t in seen if "old" in t]
    assert f"{base}/tally/x/state" in seen


async def test_a_link_device_groups_its_entities(mosquitto, prefixes, backends):
    discovery, _ = prefixes
    device = sub_device("link_monitor", "gateway", "mqtt link")
    backend = make(
        mosquitto,
        prefixes,
        app="link_monitor",
        devices={"sensor.gateway_power": device},
    )
    backends.append(backend)
    await backend.start()
    await backend.set_entity("sensor.gateway_power", "5", {})
    seen = await retained(mosquitto, f"{discovery}/#")
    config = seen[f"{discovery}/sensor/gridwatch_link_monitor_gateway/gateway_power/config"]
    assert config["device"]["name"] == "gateway"
    assert config["device"]["identifiers"] != [app_device("link_monitor").identifier]


async def test_ha_birth_republishes_everything(mosquitto, prefixes, backends):
    discovery, base = prefixes
    backend = make(mosquitto, prefixes)
    backends.append(backend)
    await backend.start()
    await backend.set_entity("sensor.x", "7", {})
    # A broker that lost its store: clear the retained state, then HA's birth.
    tool = MqttLink("tool", MqttSettings(host=mosquitto.host, port=mosquitto.port))
    await tool.connect(WAIT_S)
    try:
        await tool.publish(f"{base}/tally/x/state", "", qos=1, retain=True)
        await tool.publish(f"{discovery}/status", "online", qos=1)
    finally:
        await tool.disconnect()
    async with asyncio.timeout(WAIT_S):
        while True:
            seen = await retained(mosquitto, f"{base}/tally/x/state")
            if seen:
                break
    assert seen[f"{base}/tally/x/state"]["value"] == "7"


async def test_remove_without_broker_is_a_hass_error(prefixes, backends):
    cfg = MqttEntitiesConfig(host="127.0.0.1", port=1, base_topic=prefixes[1])
    backend = build_mqtt_backend("tally", cfg)
    backends.append(backend)
    await backend.start(connect_timeout_s=2)
    with pytest.raises(HassError, match=r"cannot remove sensor\.x"):
        await backend.remove_entity("sensor.x")
