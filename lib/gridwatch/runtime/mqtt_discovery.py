"""Optional entity backend: MQTT discovery instead of AppDaemon's set_state.

For users who run HA's MQTT integration. Entities announced this way get a
``unique_id`` and a device (so they can be renamed and grouped in the UI),
and survive HA restarts because every config and state is RETAINED on the
broker. Availability follows the link's last will: the
:class:`~gridwatch.transport.mqtt_link.MqttLink` publishes ``online`` after each connect
and the broker publishes ``offline`` when the link dies.

:class:`MqttDiscoveryWriter` has the same ``set_entity`` signature as the
:class:`~gridwatch.hass.ports.EntityWriter` port, so an app can hand it to its
logic in place of the HA port. The first write of an entity announces it;
the announcement is derived from the attributes HA itself would read
(``friendly_name``, ``unit_of_measurement``, ``device_class``,
``state_class``, ``icon``) and is sent again only when those change.

Topics (``node`` = device identifier)::

    <discovery_prefix>/<component>/<node>/<object_id>/config   retained
    <base_topic>/<node>/<object_id>/state                      retained, JSON
    <base_topic>/<node>/<object_id>/attributes                 retained, JSON
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gridwatch.hass.ports import StateValue
from gridwatch.hass.states import state_text

# Attributes that belong in the discovery config, not in the attributes topic.
_CONFIG_ATTRIBUTES: Final = {
    "friendly_name": "name",
    "unit_of_measurement": "unit_of_measurement",
    "device_class": "device_class",
    "state_class": "state_class",
    "icon": "icon",
}
_SUPPORTED: Final = frozenset({"sensor", "binary_sensor"})
_ID_RE: Final = re.compile(r"^[a-z0-9_]+$")
# Retained configs and states must reach the broker: at-least-once.
DISCOVERY_QOS: Final = 1


class Publisher(Protocol):
    """What the backend needs from an MQTT link (``MqttLink.publish``)."""

    async def publish(
        self,
        topic: str,
        payload: bytes | str | None,
        qos: int | None = None,
        retain: bool = False,
    ) -> None:
        """Publish one message; raises a TransportError on failure."""
        ...


@dataclass(frozen=True)
class DiscoveryDevice:
    """The HA device the entities belong to.

    Attributes:
        identifier: stable id, ``[a-z0-9_]`` (also the topic node id).
        name: device name shown in HA.
        manufacturer: shown in HA's device page.
        model: shown in HA's device page.
        sw_version: optional version string.
    """

    identifier: str = "gridwatch"
    name: str = "Gridwatch"
    manufacturer: str = "Gridwatch"
    model: str = "AppDaemon energy suite"
    sw_version: str | None = None

    def as_config(self) -> dict[str, Any]:
        """The ``device`` member of a discovery config."""
        device: dict[str, Any] = {
            "identifiers": [self.identifier],
            "name": self.name,
            "manufacturer": self.manufacturer,
            "model": self.model,
        }
        if self.sw_version:
            device["sw_version"] = self.sw_version
        return device


@dataclass(frozen=True)
class DiscoveryTopics:
    """Where configs and states go.

    Attributes:
        discovery_prefix: HA's discovery prefix (``homeassistant`` by default).
        base_topic: root of state and attribute topics.
        availability_topic: the link's availability topic (None: always available).
        payload_online: the link's "online" payload.
        payload_offline: the link's "offline" payload (its last will).
    """

    discovery_prefix: str = "homeassistant"
    base_topic: str = "gridwatch"
    availability_topic: str | None = None
    payload_online: str = "online"
    payload_offline: str = "offline"


def split_entity_id(entity_id: str) -> tuple[str, str]:
    """``sensor.x`` -> ``("sensor", "x")``.

    Raises:
        ValueError: unsupported domain or an object id outside ``[a-z0-9_]``.
    """
    component, _, object_id = entity_id.partition(".")
    if component not in _SUPPORTED or not _ID_RE.match(object_id):
        raise ValueError(
            f"{entity_id!r}: MQTT discovery supports {sorted(_SUPPORTED)} with [a-z0-9_] ids"
        )
    return component, object_id


def discovery_message(
    entity_id: str,
    attributes: Mapping[str, Any],
    device: DiscoveryDevice,
    topics: DiscoveryTopics,
) -> tuple[str, dict[str, Any]]:
    """The discovery config topic and payload announcing ``entity_id``.

    Args:
        entity_id: ``sensor.<object_id>`` or ``binary_sensor.<object_id>``.
        attributes: the entity's attributes (config-relevant ones are used).
        device: the device the entity belongs to.
        topics: topic layout.

    Returns:
        ``(topic, payload)``; publish the payload as JSON, retained.
    """
    component, object_id = split_entity_id(entity_id)
    node = device.identifier
    base = f"{topics.base_topic}/{node}/{object_id}"
    config: dict[str, Any] = {
        "unique_id": f"{node}_{object_id}",
        "object_id": object_id,
        "name": object_id.replace("_", " ").capitalize(),
        "device": device.as_config(),
        "state_topic": f"{base}/state",
        "value_template": "{{ value_json.value }}",
        "json_attributes_topic": f"{base}/attributes",
    }
    for attr, key in _CONFIG_ATTRIBUTES.items():
        if attributes.get(attr) is not None:
            config[key] = attributes[attr]
    if component == "binary_sensor":
        config["payload_on"], config["payload_off"] = "on", "off"
    if "last_reset" in attributes:
        config["last_reset_value_template"] = "{{ value_json.last_reset }}"
    if topics.availability_topic:
        config["availability_topic"] = topics.availability_topic
        config["payload_available"] = topics.payload_online
        config["payload_not_available"] = topics.payload_offline
    return f"{topics.discovery_prefix}/{component}/{node}/{object_id}/config", config


def state_messages(
    entity_id: str,
    state: StateValue,
    attributes: Mapping[str, Any],
    device: DiscoveryDevice,
    topics: DiscoveryTopics,
) -> list[tuple[str, dict[str, Any]]]:
    """The state and attribute messages of one write.

    Returns:
        ``[(state_topic, {"value": ..., "last_reset"?: ...}), (attributes_topic, {...})]``.
    """
    _, object_id = split_entity_id(entity_id)
    base = f"{topics.base_topic}/{device.identifier}/{object_id}"
    value: dict[str, Any] = {"value": state_text(state)}
    if "last_reset" in attributes:
        value["last_reset"] = attributes["last_reset"]
    extra = {
        k: v for k, v in attributes.items() if k not in _CONFIG_ATTRIBUTES and k != "last_reset"
    }
    return [(f"{base}/state", value), (f"{base}/attributes", extra)]


def _json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, default=str, sort_keys=True)


class MqttDiscoveryWriter:
    """Writes entities through MQTT discovery (see the module docstring).

    Args:
        publisher: the MQTT link (``MqttLink``) or any :class:`Publisher`.
        device: the device the entities belong to.
        topics: topic layout; set ``availability_topic`` to the link's.
    """

    def __init__(
        self,
        publisher: Publisher,
        device: DiscoveryDevice | None = None,
        topics: DiscoveryTopics | None = None,
    ) -> None:
        self._publisher = publisher
        self.device = device or DiscoveryDevice()
        self.topics = topics or DiscoveryTopics()
        self._announced: dict[str, dict[str, Any]] = {}
        self._last: dict[str, tuple[StateValue, dict[str, Any]]] = {}

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        """Announce ``entity_id`` if new or changed, then publish its state.

        Raises:
            ValueError: the entity id cannot be announced over MQTT.
            TransportError: the link could not publish (nothing is queued).
        """
        topic, config = discovery_message(entity_id, attributes, self.device, self.topics)
        if self._announced.get(entity_id) != config:
            await self._publisher.publish(topic, _json(config), DISCOVERY_QOS, True)
            self._announced[entity_id] = config
        for state_topic, payload in state_messages(
            entity_id, state, attributes, self.device, self.topics
        ):
            await self._publisher.publish(state_topic, _json(payload), DISCOVERY_QOS, True)
        self._last[entity_id] = (state, dict(attributes))

    async def republish(self) -> None:
        """Announce and publish every entity again (after HA's MQTT birth
        message ``homeassistant/status: online`` or a broker that lost its
        retained store)."""
        self._announced.clear()
        for entity_id, (state, attributes) in list(self._last.items()):
            await self.set_entity(entity_id, state, attributes)

    async def remove(self, entity_id: str) -> None:
        """Delete the entity from HA (empty retained config) and forget it."""
        component, object_id = split_entity_id(entity_id)
        node = self.device.identifier
        topic = f"{self.topics.discovery_prefix}/{component}/{node}/{object_id}/config"
        await self._publisher.publish(topic, "", DISCOVERY_QOS, True)
        self._announced.pop(entity_id, None)
        self._last.pop(entity_id, None)
