"""The suite-wide entity backend: how every app writes its entities to HA.

Every Gridwatch app accepts the same optional ``entities:`` block beside its
own options. AppDaemon 4.5.13 has no shared section for apps (a top-level
entry without ``module``/``class`` makes it reject the whole apps.yaml), so
"set it once" is a YAML anchor: the first app defines the block, the others
repeat it with ``*anchor``::

    notifier:
      module: gridwatch_notifier
      class: Notifier
      entities: &gridwatch_entities
        backend: mqtt
        mqtt:
          host: !secret mqtt_host
          username: !secret mqtt_username
          password: !secret mqtt_password

    export_guard:
      ...
      entities: *gridwatch_entities

``backend: rest`` (the default) writes through HA's ``/api/states``;
``backend: mqtt`` announces each entity with MQTT discovery through the
user's broker (see :mod:`gridwatch.runtime.mqtt_entities`).

The block is validated here, beside the app's own schema, so a typo in it is
reported in the app's ONE configuration error (:func:`load_app_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from marshmallow import ValidationError, fields, validate, validates_schema

from gridwatch.config.base import (
    ConfigError,
    ConfigSchema,
    bounded_int,
    host_field,
    load_config,
    tcp_port_field,
)

# The apps.yaml key of the block, in every app's entry.
ENTITIES_KEY: Final = "entities"
BACKENDS: Final = ("rest", "mqtt")
_TOPIC_RE: Final = r"^[^#+\s]+$"  # no wildcards, no spaces; '/' allowed


@dataclass(frozen=True)
class MqttEntitiesConfig:
    """The broker HA's MQTT integration uses, and the topic layout.

    Attributes:
        host: broker host name or address.
        port: broker port.
        username: user name (None: anonymous).
        password: password (never logged).
        tls: connect with TLS (certificate checked unless ``tls_insecure``).
        ca_file: CA bundle for TLS (None: the system's).
        tls_insecure: skip certificate checks.
        keepalive_s: MQTT keepalive; the broker marks the app offline (last
            will) within about 1.5 of these after AppDaemon dies.
        discovery_prefix: HA's discovery prefix (HA's default ``homeassistant``).
        base_topic: root of the state, attribute and availability topics.
        birth_topic: HA's birth / last-will topic; ``online`` there makes
            the app publish its entities again.
    """

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    discovery_prefix: str = "homeassistant"
    base_topic: str = "gridwatch"
    birth_topic: str = "homeassistant/status"


@dataclass(frozen=True)
class EntitiesConfig:
    """Where an app's entities go.

    Attributes:
        backend: ``rest`` or ``mqtt``.
        mqtt: the broker, required with ``backend: mqtt``.
    """

    backend: str = "rest"
    mqtt: MqttEntitiesConfig | None = None


REST_ENTITIES: Final = EntitiesConfig()


def _topic(default: str, example: str, description: str) -> fields.String:
    return fields.String(
        load_default=default,
        validate=validate.Regexp(_TOPIC_RE, error="a topic without wildcards or spaces"),
        metadata={"example": example, "description": description},
    )


class MqttEntitiesSchema(ConfigSchema):
    """The ``entities.mqtt`` block."""

    config_class = MqttEntitiesConfig

    host = host_field("core-mosquitto", "broker host name or address")
    port = tcp_port_field(1883, "broker port (8883 with tls)")
    username = fields.String(
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"example": "gridwatch", "description": "broker user name"},
    )
    password = fields.String(
        load_default=None,
        metadata={"example": "!secret mqtt_password", "secret": True},
    )
    tls = fields.Boolean(
        load_default=False, metadata={"example": True, "description": "connect with TLS"}
    )
    ca_file = fields.String(
        load_default=None,
        metadata={"example": "/ssl/ca.pem", "description": "CA bundle for TLS"},
    )
    tls_insecure = fields.Boolean(
        load_default=False,
        metadata={"example": False, "description": "skip certificate checks (testing only)"},
    )
    keepalive_s = bounded_int(
        30, 5, 600, example=30, description="MQTT keepalive; offline seen within ~1.5x"
    )
    discovery_prefix = _topic("homeassistant", "homeassistant", "HA's MQTT discovery prefix")
    base_topic = _topic("gridwatch", "gridwatch", "root of state and availability topics")
    birth_topic = _topic("homeassistant/status", "homeassistant/status", "HA's birth topic")

    @validates_schema
    def _credentials(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if (data.get("username") is None) != (data.get("password") is None):
            raise ValidationError("give both username and password, or neither", "password")


class EntitiesSchema(ConfigSchema):
    """The ``entities:`` block every app accepts."""

    config_class = EntitiesConfig

    backend = fields.String(
        load_default="rest",
        validate=validate.OneOf(BACKENDS),
        metadata={"example": "mqtt", "description": "rest (HA's /api/states) or mqtt (discovery)"},
    )
    mqtt = fields.Nested(
        MqttEntitiesSchema,
        load_default=None,
        metadata={"example": {"host": "core-mosquitto"}, "description": "the broker"},
    )

    @validates_schema
    def _mqtt_needs_broker(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("backend") == "mqtt" and data.get("mqtt") is None:
            raise ValidationError("backend: mqtt needs the broker (mqtt: {host: ...})", "mqtt")


def load_app_config(
    schema: Any, args: Mapping[str, Any], *, app_name: str
) -> tuple[Any, EntitiesConfig]:
    """Validate an app's entry: its own options and the ``entities:`` block.

    Args:
        schema: the app's schema (class or instance).
        args: the app's ``self.args``.
        app_name: the app's name (for messages).

    Returns:
        ``(app config, entities config)``.

    Raises:
        ConfigError: every bad key of both parts, in one error.
    """
    own = {k: v for k, v in args.items() if k != ENTITIES_KEY}
    problems = []
    config: Any = None
    entities = REST_ENTITIES
    try:
        config = load_config(schema, own, app_name=app_name)
    except ConfigError as err:
        problems += list(err.problems)
    raw = args.get(ENTITIES_KEY)
    if raw is not None:
        if not isinstance(raw, Mapping):
            raw = {"backend": raw}  # "entities: mqtt" gets the usual message
        try:
            entities = load_config(EntitiesSchema, raw, into=EntitiesConfig, app_name=app_name)
        except ConfigError as err:
            problems += [type(p)(f"{ENTITIES_KEY}.{p.key}", p.why, p.example) for p in err.problems]
    if problems:
        raise ConfigError(app_name, problems)
    return config, entities
