"""MQTT-discovery payloads (pure): what HA is told about each entity.

The expectations come from HA's MQTT discovery documentation and its
2024.1 / 2026.2 source (schema keys, PAYLOAD_NONE = "None", blocked JSON
attributes), not from the module under test.
"""

from __future__ import annotations

import json

import pytest
from jinja2 import Template

from gridwatch.runtime.mqtt_discovery import (
    DiscoveryDevice,
    DiscoveryLayout,
    EntityTopics,
    attributes_payload,
    discovery_config,
    entity_name,
    manifest_payload,
    parse_manifest,
    split_entity_id,
    state_payload,
)

LAYOUT = DiscoveryLayout(app="energy_tally")
DEVICE = DiscoveryDevice(identifier="gridwatch_energy_tally", name="energy_tally")
ENERGY = {
    "friendly_name": "Grid import today",
    "unit_of_measurement": "kWh",
    "device_class": "energy",
    "state_class": "total",
    "last_reset": "2026-06-01T00:00:00+02:00",
    "stale": False,
    "resets": 0,
}


def render(template: str, payload: str) -> str:
    """Render a value template as HA does for a JSON payload (value_json)."""
    return Template(template).render(value_json=json.loads(payload), value=payload)


def test_config_names_the_readme_entity_id_for_old_and_new_ha():
    topics, config = discovery_config("sensor.grid_import_today", ENERGY, DEVICE, LAYOUT, "0.1.0")
    assert topics.config == ("homeassistant/sensor/gridwatch_energy_tally/grid_import_today/config")
    # HA >= 2025.10 reads default_entity_id, older HA object_id (HA source).
    assert config["default_entity_id"] == "sensor.grid_import_today"
    assert config["object_id"] == "grid_import_today"
    assert config["unique_id"] == "gridwatch_energy_tally_sensor_grid_import_today"
    assert config["origin"] == {"name": "Gridwatch", "sw_version": "0.1.0"}
    assert config["device"]["identifiers"] == ["gridwatch_energy_tally"]
    assert (config["unit_of_measurement"], config["device_class"], config["state_class"]) == (
        "kWh",
        "energy",
        "total",
    )
    assert config["state_topic"] == "gridwatch/energy_tally/grid_import_today/state"
    assert config["json_attributes_topic"] == "gridwatch/energy_tally/grid_import_today/attributes"


def test_unique_ids_differ_between_apps_and_entities():
    ids = {
        discovery_config(e, {}, DEVICE, DiscoveryLayout(app=a))[1]["unique_id"]
        for a in ("tally", "guard")
        for e in ("sensor.a", "sensor.b", "binary_sensor.a")
    }
    assert len(ids) == 6


def test_availability_needs_the_app_online_and_the_entity_available():
    _, config = discovery_config("sensor.x", {}, DEVICE, LAYOUT)
    assert config["availability_mode"] == "all"
    app, own = config["availability"]
    assert app == {"topic": "gridwatch/energy_tally/availability"}
    assert own["topic"] == config["state_topic"]
    live = json.dumps(state_payload("3", {}))
    gone = json.dumps(state_payload("unavailable", {}))
    assert render(own["value_template"], live) == "online"
    assert render(own["value_template"], gone) == "offline"


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (12.5, "12.5"),
        (0, "0"),
        ("0.000", "0.000"),
        (None, "None"),  # HA's PAYLOAD_NONE: the sensor reads unknown
        ("unknown", "None"),
        ("", "None"),
        ("unavailable", "None"),
        (True, "on"),
        (False, "off"),
    ],
)
def test_state_renders_as_ha_expects(state, shown):
    _, config = discovery_config("sensor.x", {}, DEVICE, LAYOUT)
    assert render(config["value_template"], json.dumps(state_payload(state, {}))) == shown


def test_last_reset_travels_with_the_state_for_the_statistics():
    _, config = discovery_config("sensor.x", ENERGY, DEVICE, LAYOUT)
    payload = json.dumps(state_payload("1.234", ENERGY))
    assert render(config["last_reset_value_template"], payload) == ENERGY["last_reset"]


def test_attributes_topic_carries_what_ha_shows_as_attributes():
    shown = attributes_payload({**ENERGY, "state": "open", "icon": "mdi:x", "options": ["a"]})
    # HA's MQTT integration drops state / icon / friendly_name from JSON
    # attributes; unit, classes and last_reset live in the config.
    assert shown == {"stale": False, "resets": 0, "options": ["a"]}


def test_enum_options_go_to_the_config():
    attrs = {"device_class": "enum", "options": ["connected", "offline"]}
    _, config = discovery_config("sensor.gateway_link_status", attrs, DEVICE, LAYOUT)
    assert config["options"] == ["connected", "offline"]
    assert "options" not in attributes_payload(attrs)


def test_binary_sensor_payloads_match_the_suite_states():
    _, config = discovery_config(
        "binary_sensor.gateway_connected", {"device_class": "connectivity"}, DEVICE, LAYOUT
    )
    assert (config["payload_on"], config["payload_off"]) == ("on", "off")
    assert render(config["value_template"], json.dumps(state_payload(True, {}))) == "on"


def test_sub_device_points_at_the_app():
    link = DiscoveryDevice("gridwatch_lm_gateway", "gateway", via_device="gridwatch_lm")
    topics, config = discovery_config("sensor.gateway_grid_power", {}, link, LAYOUT)
    assert config["device"]["via_device"] == "gridwatch_lm"
    assert "/gridwatch_lm_gateway/" in topics.config


@pytest.mark.parametrize(
    ("friendly", "device", "name"),
    [
        ("gateway grid power", "gateway", "grid power"),
        ("export_guard health", "export_guard", "health"),
        ("Energy tally health", "energy_tally", "health"),
        ("Gridwatch active notices", "notifier", "Gridwatch active notices"),
        ("gateway", "gateway", "gateway"),
        (None, "x", "Grid power"),
    ],
)
def test_entity_name_does_not_repeat_the_device_name(friendly, device, name):
    assert entity_name(friendly, "grid_power", DiscoveryDevice("d", device)) == name


@pytest.mark.parametrize("bad", ["switch.x", "sensor.X", "sensor.a-b", "sensor", "light.y"])
def test_unsupported_entity_ids_are_refused(bad):
    with pytest.raises(ValueError, match="MQTT discovery supports"):
        split_entity_id(bad)


def test_manifest_round_trip_and_garbage():
    topics = EntityTopics("c", "s", "a")
    text = manifest_payload({"sensor.b": topics, "sensor.a": topics})
    assert parse_manifest(text.encode()) == {"sensor.a": topics, "sensor.b": topics}
    assert manifest_payload({}) == ""
    for garbage in (b"", b"not json", b"[1]", b'{"entities": {"x": 1}}', b'{"entities": 3}'):
        assert parse_manifest(garbage) == {}
