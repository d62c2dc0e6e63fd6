"""MQTT-discovery payloads: what announces an entity to HA, and its state.

Pure (no I/O, no paho): :mod:`gridwatch.runtime.mqtt_entities` publishes what
is built here. The form is HA's per-component discovery, which both HA
versions of the test matrix (2024.1 and 2026.2) accept; the device-based
form (one config with ``cmps``) is newer than HA 2024.1, which does not read it.

Topics (``app`` = the app's slug, ``node`` = its device identifier)::

    <discovery_prefix>/<component>/<node>/<object_id>/config   retained, JSON
    <base_topic>/<app>/<object_id>/state                       retained, JSON
    <base_topic>/<app>/<object_id>/attributes                  retained, JSON
    <base_topic>/<app>/availability                            online / offline (last will)
    <base_topic>/<app>/manifest                                retained: what the app announced

Entity ids: ``default_entity_id`` (HA 2025.10+) and ``object_id`` (older HA;
ignored from 2026.4) both name the README's entity id, so every version
creates the same one. An entity is available while the app is online AND its
own state says so (``"available": false`` stands for the ``unavailable``
state the REST backend would write).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gridwatch.hass.ports import StateValue
from gridwatch.hass.states import state_text

# Attributes that become discovery options rather than JSON attributes.
_CONFIG_ATTRIBUTES: Final = {
    "unit_of_measurement": "unit_of_measurement",
    "device_class": "device_class",
    "state_class": "state_class",
    "icon": "icon",
}
# HA's MQTT integration drops these from JSON attributes (MQTT_ATTRIBUTES_BLOCKED
# in homeassistant/components/mqtt, 2024.1 to 2026.2): sending them is noise.
HA_BLOCKED_ATTRIBUTES: Final = frozenset(
    {
        "assumed_state",
        "available",
        "device_class",
        "device_info",
        "entity_category",
        "entity_picture",
        "entity_registry_enabled_default",
        "extra_state_attributes",
        "force_update",
        "friendly_name",
        "icon",
        "name",
        "should_poll",
        "state",
        "supported_features",
        "unique_id",
        "unit_of_measurement",
    }
)
# Attributes the config (or the state topic) carries instead.
_MOVED_ATTRIBUTES: Final = frozenset({"state_class", "last_reset"})
SUPPORTED_COMPONENTS: Final = frozenset({"sensor", "binary_sensor"})
_ID_RE: Final = re.compile(r"^[a-z0-9_]+$")
# States the REST backend writes as text that mean "no value".
_NO_VALUE: Final = frozenset({"unknown", "unavailable", ""})
ORIGIN: Final = {"name": "Gridwatch"}
MANUFACTURER: Final = "Gridwatch"


@dataclass(frozen=True)
class DiscoveryDevice:
    """An HA device the entities belong to.

    Attributes:
        identifier: stable id, ``[a-z0-9_]`` (also the topic node id).
        name: device name shown in HA (entity names are shown after it).
        model: shown on HA's device page.
        via_device: identifier of the parent device (a link's app).
    """

    identifier: str
    name: str
    model: str = "AppDaemon app"
    via_device: str | None = None

    def as_config(self) -> dict[str, Any]:
        """The ``device`` member of a discovery config."""
        device: dict[str, Any] = {
            "identifiers": [self.identifier],
            "name": self.name,
            "manufacturer": MANUFACTURER,
            "model": self.model,
        }
        if self.via_device:
            device["via_device"] = self.via_device
        return device


@dataclass(frozen=True)
class DiscoveryLayout:
    """Where one app's configs and states go.

    Attributes:
        app: the app's slug (state topics, unique ids).
        discovery_prefix: HA's discovery prefix.
        base_topic: root of the state, attribute and availability topics.
    """

    app: str
    discovery_prefix: str = "homeassistant"
    base_topic: str = "gridwatch"

    @property
    def availability_topic(self) -> str:
        """The app's online/offline topic (the MQTT link's last will)."""
        return f"{self.base_topic}/{self.app}/availability"

    @property
    def manifest_topic(self) -> str:
        """Retained list of what the app announced (for removing ghosts)."""
        return f"{self.base_topic}/{self.app}/manifest"

    def entity_topics(self, device: DiscoveryDevice, entity_id: str) -> EntityTopics:
        """The three topics of one entity."""
        component, object_id = split_entity_id(entity_id)
        base = f"{self.base_topic}/{self.app}/{object_id}"
        return EntityTopics(
            config=f"{self.discovery_prefix}/{component}/{device.identifier}/{object_id}/config",
            state=f"{base}/state",
            attributes=f"{base}/attributes",
        )


@dataclass(frozen=True)
class EntityTopics:
    """The topics of one announced entity."""

    config: str
    state: str
    attributes: str

    def as_dict(self) -> dict[str, str]:
        """For the manifest."""
        return {"config": self.config, "state": self.state, "attributes": self.attributes}


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """``sensor.x`` -> ``("sensor", "x")``.

    Raises:
        ValueError: unsupported domain or an object id outside ``[a-z0-9_]``.
    """
    component, _, object_id = entity_id.partition(".")
    if component not in SUPPORTED_COMPONENTS or not _ID_RE.match(object_id):
        raise ValueError(
            f"{entity_id!r}: MQTT discovery supports {sorted(SUPPORTED_COMPONENTS)} "
            "with [a-z0-9_] ids"
        )
    return component, object_id


def entity_name(friendly_name: str | None, object_id: str, device: DiscoveryDevice) -> str:
    """The entity's name under its device.

    HA shows ``<device name> <entity name>``; an entity name that starts with
    the device name is shortened (HA 2024.1 would do it with a repair warning,
    later versions would show the device name twice).
    """
    name = friendly_name or object_id.replace("_", " ").capitalize()

    def norm(text: str) -> str:
        return text.replace("_", " ").casefold()

    prefix = norm(device.name) + " "
    if norm(name).startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix) :]
    return name


def discovery_config(
    entity_id: str,
    attributes: Mapping[str, Any],
    device: DiscoveryDevice,
    layout: DiscoveryLayout,
    sw_version: str | None = None,
) -> tuple[EntityTopics, dict[str, Any]]:
    """The discovery config announcing ``entity_id``.

    Args:
        entity_id: ``sensor.<object_id>`` or ``binary_sensor.<object_id>``.
        attributes: the entity's attributes (name, unit and classes are used).
        device: the device the entity belongs to.
        layout: the app's topic layout.
        sw_version: the suite's version, shown as the origin's.

    Returns:
        The entity's topics and the config payload (publish as JSON, retained).
    """
    component, object_id = split_entity_id(entity_id)
    topics = layout.entity_topics(device, entity_id)
    origin = dict(ORIGIN)
    if sw_version:
        origin["sw_version"] = sw_version
    config: dict[str, Any] = {
        "unique_id": f"gridwatch_{layout.app}_{component}_{object_id}",
        "default_entity_id": entity_id,
        "object_id": object_id,
        "name": entity_name(attributes.get("friendly_name"), object_id, device),
        "device": device.as_config(),
        "origin": origin,
        "state_topic": topics.state,
        "value_template": "{{ value_json.value }}",
        "json_attributes_topic": topics.attributes,
        "availability": [
            {"topic": layout.availability_topic},
            {
                "topic": topics.state,
                "value_template": "{{ 'online' if value_json.available else 'offline' }}",
            },
        ],
        "availability_mode": "all",
        "qos": 1,
    }
    for attr, key in _CONFIG_ATTRIBUTES.items():
        if attributes.get(attr) is not None:
            config[key] = attributes[attr]
    if attributes.get("device_class") == "enum" and attributes.get("options"):
        config["options"] = list(attributes["options"])
    if component == "binary_sensor":
        config["payload_on"], config["payload_off"] = "on", "off"
    if "last_reset" in attributes:
        config["last_reset_value_template"] = "{{ value_json.last_reset }}"
    return topics, config


def state_payload(state: StateValue, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON the state topic carries.

    ``None``, ``unknown`` and ``''`` become ``null`` (HA: unknown);
    ``unavailable`` becomes ``null`` with ``available: false``.
    """
    text = state_text(state)
    payload: dict[str, Any] = {
        "value": None if text in _NO_VALUE else text,
        "available": text != "unavailable",
    }
    if "last_reset" in attributes:
        payload["last_reset"] = attributes["last_reset"]
    return payload


def attributes_payload(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON attributes (everything HA's MQTT integration shows as such)."""
    moved = _MOVED_ATTRIBUTES | ({"options"} if attributes.get("device_class") == "enum" else set())
    return {
        k: v for k, v in attributes.items() if k not in HA_BLOCKED_ATTRIBUTES and k not in moved
    }


def dump(payload: Mapping[str, Any]) -> str:
    """JSON text of a payload (datetimes and the like as text)."""
    return json.dumps(payload, default=str, sort_keys=True, allow_nan=False)


def parse_manifest(payload: bytes | str) -> dict[str, EntityTopics]:
    """Read a retained manifest; anything malformed reads as empty.

    Returns:
        entity id -> its topics.
    """
    try:
        data = json.loads(payload or b"{}")
        entities = data.get("entities", {}) if isinstance(data, dict) else {}
        return {
            str(entity_id): EntityTopics(str(t["config"]), str(t["state"]), str(t["attributes"]))
            for entity_id, t in entities.items()
            if isinstance(t, dict)
        }
    except (ValueError, KeyError, AttributeError):
        return {}


def manifest_payload(entities: Mapping[str, EntityTopics]) -> str:
    """The retained manifest listing ``entities`` (empty text when none)."""
    if not entities:
        return ""
    return dump({"entities": {k: v.as_dict() for k, v in sorted(entities.items())}})
