"""MQTT-discovery payloads, checked with a recording publisher."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from gridwatch.hass.ports import EntityWriter
from gridwatch.runtime.mqtt_discovery import (
    DiscoveryDevice,
    DiscoveryTopics,
    MqttDiscoveryWriter,
    discovery_message,
)

TOPICS = DiscoveryTopics(availability_topic="gridwatch/status")
ENERGY = {
    "friendly_name": "Grid import today",
    "unit_of_measurement": "kWh",
    "device_class": "energy",
    "state_class": "total",
    "last_reset": "2026-06-01T00:00:00+02:00",
    "stale": False,
    "meters": 0,
}


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, Any, int | None, bool]] = []

    async def publish(
        self, topic: str, payload: bytes | str | None, qos: int | None = None, retain: bool = False
    ) -> None:
        decoded = json.loads(payload) if payload else payload
        self.messages.append((topic, decoded, qos, retain))


def test_config_has_unique_id_device_availability_and_ha_attributes():
    topic, config = discovery_message(
        "sensor.grid_import_today", ENERGY, DiscoveryDevice(sw_version="0.1"), TOPICS
    )
    assert topic == "homeassistant/sensor/gridwatch/grid_import_today/config"
    assert config["unique_id"] == "gridwatch_grid_import_today"
    assert config["object_id"] == "grid_import_today"
    assert config["device"] == {
        "identifiers": ["gridwatch"],
        "name": "Gridwatch",
        "manufacturer": "Gridwatch",
        "model": "AppDaemon energy suite",
        "sw_version": "0.1",
    }
    assert config["name"] == "Grid import today"
    assert (config["unit_of_measurement"], config["device_class"], config["state_class"]) == (
        "kWh",
        "energy",
        "total",
    )
    assert config["state_topic"] == "gridwatch/gridwatch/grid_import_today/state"
    assert config["last_reset_value_template"] == "{{ value_json.last_reset }}"
    assert config["availability_topic"] == "gridwatch/status"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")


def test_binary_sensor_payloads_and_no_availability_without_topic():
    _, config = discovery_message(
        "binary_sensor.breaker_open", {}, DiscoveryDevice(), DiscoveryTopics()
    )
    assert (config["payload_on"], config["payload_off"]) == ("on", "off")
    assert "availability_topic" not in config


@pytest.mark.parametrize("entity_id", ["switch.x", "sensor.Bad-Id", "sensor"])
def test_unsupported_entity_ids(entity_id):
    with pytest.raises(ValueError, match="MQTT discovery supports"):
        discovery_message(entity_id, {}, DiscoveryDevice(), TOPICS)


async def test_writer_announces_once_and_publishes_retained_state_with_zero_intact():
    pub = RecordingPublisher()
    writer: EntityWriter = MqttDiscoveryWriter(pub, topics=TOPICS)
    await writer.set_entity("sensor.grid_import_today", 0, ENERGY)
    await writer.set_entity("sensor.grid_import_today", 1.5, {**ENERGY, "meters": 2})
    topics = [m[0] for m in pub.messages]
    assert topics == [
        "homeassistant/sensor/gridwatch/grid_import_today/config",
        "gridwatch/gridwatch/grid_import_today/state",
        "gridwatch/gridwatch/grid_import_today/attributes",
        "gridwatch/gridwatch/grid_import_today/state",
        "gridwatch/gridwatch/grid_import_today/attributes",
    ]
    assert all(qos == 1 and retain for _, _, qos, retain in pub.messages)
    assert pub.messages[1][1] == {"value": "0", "last_reset": "2026-06-01T00:00:00+02:00"}
    assert pub.messages[2][1] == {"stale": False, "meters": 0}
    assert pub.messages[4][1]["meters"] == 2


async def test_changed_unit_reannounces_and_republish_sends_everything():
    pub = RecordingPublisher()
    writer = MqttDiscoveryWriter(pub, topics=TOPICS)
    await writer.set_entity("sensor.power", 5, {"unit_of_measurement": "W"})
    await writer.set_entity("sensor.power", 5, {"unit_of_measurement": "kW"})
    configs = [m for m in pub.messages if m[0].endswith("/config")]
    assert [c[1]["unit_of_measurement"] for c in configs] == ["W", "kW"]
    pub.messages.clear()
    await writer.republish()
    assert [m[0].rsplit("/", 1)[1] for m in pub.messages] == ["config", "state", "attributes"]


async def test_remove_sends_an_empty_retained_config():
    pub = RecordingPublisher()
    writer = MqttDiscoveryWriter(pub, topics=TOPICS)
    await writer.set_entity("sensor.power", 5, {})
    await writer.remove("sensor.power")
    assert pub.messages[-1] == ("homeassistant/sensor/gridwatch/power/config", "", 1, True)
    pub.messages.clear()
    await writer.republish()
    assert pub.messages == []


def test_mqtt_link_is_a_publisher():
    # Checked by mypy: the real link fits the backend's port.
    from gridwatch.runtime.mqtt_discovery import Publisher
    from gridwatch.transport.mqtt_link import MqttLink

    def as_publisher(link: MqttLink) -> Publisher:
        return link

    params = inspect.signature(MqttLink.publish).parameters
    assert list(params)[:5] == ["self", "topic", "payload", "qos", "retain"]
    assert as_publisher is not None
