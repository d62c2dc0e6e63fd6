"""Configuration of the link monitor app (``apps.yaml``).

Each link names exactly one transport block (``mqtt``, ``websocket``,
``http`` or ``ble``) with its settings, and lists the values it carries.

Example::

    link_monitor:
      module: gridwatch_link_monitor
      class: LinkMonitorApp
      links:
        - name: gateway
          mqtt:
            host: 192.168.1.10
            username: gridwatch
            password: !secret mqtt_password
          stale_after_s: 120
          values:
            - name: grid_power
              source: gateway/meter/state
              path: power
              unit: W
              device_class: power
              state_class: measurement
              min: -50000
              max: 50000
        - name: battery
          ble:
            address: "AA:BB:CC:DD:EE:FF"
          values:
            - name: soc
              source: 0000ffe1-0000-1000-8000-00805f9b34fb
              offset: 4
              format: "<H"
              scale: 0.1
              unit: "%"
              device_class: battery
              min: 0
              max: 100
        - name: house_battery           # a BMS read through aiobmsble
          ble:
            address: "A4:C1:37:00:00:01"
            device: jbd
          values:                       # optional: default is the profile's set
            - name: pack_voltage
              source: voltage           # the library's value name
              max: 60
            - name: cell_1
              source: cell_voltages[0]
        - name: shunt                   # a Victron advertising its readings
          ble:
            address: "C4:4F:33:00:00:02"
            device: victron
            key: !secret victron_shunt_key
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from gridwatch.config.base import (
    ConfigSchema,
    DecimalFloat,
    DecimalInteger,
    bounded_int,
    host_field,
    tcp_port_field,
)
from gridwatch.links.availability import AvailabilityPolicy
from gridwatch.links.entities import RESERVED_VALUE_NAMES, link_entity_ids
from gridwatch.links.profiles import PROFILES, UnknownValueError, profile_for
from gridwatch.links.values import ValueKind, ValueSpec
from gridwatch.transport.backoff_policy import TimeoutPolicy
from gridwatch.transport.ble_settings import (
    DEVICE_KEY,
    BleRadioSettings,
    BleSettings,
    EsphomeProxy,
)
from gridwatch.transport.health import HealthPolicy
from gridwatch.transport.http_settings import (
    HttpPollSettings,
    LoginSettings,
    WebSocketSettings,
    http_url_problem,
)
from gridwatch.transport.mqtt_settings import MqttSettings
from gridwatch.transport.mqtt_topics import validate_filter
from gridwatch.transport.watchdog import DataWatchdog, default_reconnect_after

__all__ = [
    "TRANSPORTS",
    "BleSchema",
    "HttpSchema",
    "LinkConfig",
    "LinkMonitorConfig",
    "LinkMonitorSchema",
    "MqttSchema",
    "TransportSettings",
    "WebSocketSchema",
]

TRANSPORTS = ("mqtt", "websocket", "http", "ble")
# Names become entity object ids: HA's slug alphabet, starting with a letter.
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_SLUG_ERROR = "use lowercase letters, digits and _ (starting with a letter)"
# MQTT 3.1.1 guarantees client ids up to 23 bytes; mosquitto and most
# brokers take far longer ones, up to the protocol's 65535.
_MQTT_CLIENT_ID_MAX = 65535
# MQTT 5's session expiry is a 32-bit count of seconds (0xFFFFFFFF: never).
_MQTT_SESSION_EXPIRY_MAX = 0xFFFFFFFF
# Victron's advertisement key: 16 bytes, shown as 32 hex digits in VictronConnect.
_VICTRON_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")
_MODULE_ATTRIBUTE = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
# BLE: a MAC address (Linux/BlueZ) or a CoreBluetooth UUID (macOS).
_BLE_ADDRESS = re.compile(
    r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$"
)


# --- result dataclasses ---------------------------------------------------------
#
# The transport blocks load straight into the transports' own settings
# dataclasses (MqttSettings, WebSocketSettings, HttpPollSettings, BleSettings):
# each schema below names its fields after the settings' fields (data_key
# gives the apps.yaml spelling where it differs), so an option is declared
# in the settings class and in its schema, and nothing copies it in between.
# tests/config/test_link_monitor.py checks the two agree.

TransportSettings = MqttSettings | WebSocketSettings | HttpPollSettings | BleSettings


@dataclass(frozen=True)
class LinkConfig:
    """One link: transport, timing and values.

    Attributes:
        name: slug naming the link's entities.
        transport: mqtt / websocket / http / ble.
        settings: the transport block.
        values: the values it carries.
        policy: grace, staleness and outage alert timing.
        health: adaptive connect timeout and data watchdog.
    """

    name: str
    transport: str
    settings: TransportSettings
    values: tuple[ValueSpec, ...]
    policy: AvailabilityPolicy
    health: HealthPolicy
    radio: BleRadioSettings = field(default_factory=BleRadioSettings)

    @property
    def timeouts(self) -> TimeoutPolicy:
        """The adaptive connect timeout."""
        return self.health.timeouts

    @property
    def poll_interval_s(self) -> float | None:
        """Seconds between polls for a polling link, else ``None``."""
        if isinstance(self.settings, HttpPollSettings):
            return self.settings.poll_interval_s
        return None


@dataclass(frozen=True)
class LinkMonitorConfig:
    """The link monitor's validated options.

    Attributes:
        links: the links, in the order given.
        tick_interval_s: seconds between availability evaluations.
    """

    links: tuple[LinkConfig, ...]
    tick_interval_s: float = 5.0
    ble: BleRadioSettings = field(default_factory=BleRadioSettings)


# --- schemas ----------------------------------------------------------------------


def _seconds(default: float | None, low: float, high: float, example: float, what: str) -> Any:
    return DecimalFloat(
        load_default=default,
        allow_none=default is None,
        allow_nan=False,
        validate=validate.Range(min=low, max=high),
        metadata={"example": example, "description": what},
    )


def _username() -> Any:
    return fields.String(
        load_default=None, metadata={"example": "gridwatch", "description": "login user"}
    )


def _password() -> Any:
    return fields.String(
        load_default=None,
        metadata={
            "example": "!secret device_password",
            "description": "login password; use !secret",
            "secret": True,
        },
    )


def _check_http_url(url: str) -> None:
    problem = http_url_problem(url)
    if problem is not None:
        raise ValidationError(problem)


def _http_url(example: str) -> Any:
    return fields.String(
        data_key="url",
        required=True,
        validate=_check_http_url,
        metadata={"example": example, "description": "the device's base URL"},
    )


def _path(default: str | None, example: str, what: str) -> Any:
    return fields.String(
        load_default=default,
        allow_none=default is None,
        validate=validate.Regexp(r"^/\S*$", error="a path starts with /"),
        metadata={"example": example, "description": what},
    )


def _simulator_hook(example: str, description: str) -> Any:
    """An optional ``module:attribute`` naming a stand-in for the host's radio."""
    return fields.String(
        load_default=None,
        validate=validate.Regexp(_MODULE_ATTRIBUTE, error="not module:attribute"),
        metadata={"example": example, "description": description},
    )


def _verify_ssl() -> Any:
    return fields.Boolean(
        load_default=True,
        metadata={
            "example": True,
            "description": "verify the TLS certificate (false only for self-signed devices)",
        },
    )


class _NeedsPasswordWithUser(ConfigSchema):
    @validates_schema
    def _credentials(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if (data.get("username") is None) != (data.get("password") is None):
            raise ValidationError("give both username and password, or neither", "password")


class _DeviceLoginSchema(_NeedsPasswordWithUser):
    """A device block with an optional token login (username, password,
    login_path), loaded into the settings' ``login``."""

    username = _username()
    password = _password()
    login_path = _path("/api/login", "/api/login", "token login path")

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        username, password = data.pop("username"), data.pop("password")
        path = data.pop("login_path")
        login = None
        if username is not None and password is not None:
            login = LoginSettings(username=username, password=password, path=path)
        cls = type(self).config_class
        assert cls is not None
        return cls(login=login, **data)


class MqttSchema(_NeedsPasswordWithUser):
    config_class = MqttSettings

    host = host_field("192.168.1.10", "broker host name or address")
    port = tcp_port_field(1883, "broker port (8883 with tls)")
    username = _username()
    password = _password()
    tls = fields.Boolean(
        load_default=False, metadata={"example": True, "description": "connect with TLS"}
    )
    ca_file = fields.String(
        load_default=None,
        metadata={"example": "/config/ca.pem", "description": "CA bundle for TLS"},
    )
    tls_insecure = fields.Boolean(
        load_default=False,
        metadata={"example": False, "description": "skip certificate checks (testing only)"},
    )
    client_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=_MQTT_CLIENT_ID_MAX),
        metadata={
            "example": "gridwatch-link-monitor",
            "description": "MQTT client id (default: a random one); "
            "required for clean_session: false",
        },
    )
    keepalive_s = DecimalInteger(
        load_default=30,
        validate=validate.Range(min=5, max=600),
        metadata={
            "example": 30,
            "description": "MQTT keepalive (dead path seen in 2-3 of these)",
        },
    )
    protocol = fields.String(
        load_default="3.1.1",
        validate=validate.OneOf(["3.1.1", "5"]),
        metadata={"example": "5", "description": "MQTT protocol version"},
    )
    default_qos = DecimalInteger(
        data_key="qos",
        load_default=1,
        validate=validate.OneOf([0, 1, 2]),
        metadata={"example": 1, "description": "subscription QoS"},
    )
    availability_topic = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[^#+]+$", error="a topic without wildcards"),
        metadata={
            "example": "gridwatch/gateway/availability",
            "description": "retained online/offline of the monitor's own connection",
        },
    )
    clean_session = fields.Boolean(
        load_default=True,
        metadata={
            "example": False,
            "description": "false: a persistent session; the broker queues QoS 1/2 messages "
            "while the link is away and delivers them after the reconnect (needs client_id)",
        },
    )
    session_expiry_s = DecimalInteger(
        load_default=3600,
        validate=validate.Range(min=1, max=_MQTT_SESSION_EXPIRY_MAX),
        metadata={
            "example": 86400,
            "description": "MQTT 5: how long the broker keeps a persistent session "
            "after the link goes away",
        },
    )

    @validates_schema
    def _persistent_needs_id(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("clean_session") is False and not data.get("client_id"):
            raise ValidationError(
                "a persistent session (clean_session: false) needs a fixed client_id",
                "client_id",
            )

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        # null and "" both mean "a random id" (MqttSettings spells it "").
        data["client_id"] = data["client_id"] or ""
        return MqttSettings(**data)


class WebSocketSchema(_DeviceLoginSchema):
    config_class = WebSocketSettings

    base_url = _http_url("http://192.168.1.20")
    ws_path = _path("/ws", "/ws", "WebSocket endpoint path")
    heartbeat_s = _seconds(10.0, 1, 300, 10, "ping after this long without traffic")
    request_timeout_s = _seconds(10.0, 1, 120, 10, "limit for each request")
    verify_ssl = _verify_ssl()

    @post_load
    def _make_config(self, data: dict[str, Any], **kwargs: Any) -> Any:
        # One user-facing timeout covers the login and handshake as well.
        data["http_timeout_s"] = data["request_timeout_s"]
        return super()._make_config(data, **kwargs)


class HttpSchema(_DeviceLoginSchema):
    config_class = HttpPollSettings

    base_url = _http_url("http://192.168.1.30")
    poll_interval_s = _seconds(10.0, 1, 3600, 10, "seconds between polls")
    request_timeout_s = _seconds(10.0, 1, 120, 10, "limit for each request")
    failures_before_offline = DecimalInteger(
        load_default=3,
        validate=validate.Range(min=1, max=100),
        metadata={
            "example": 3,
            "description": "failed poll rounds in a row before the link counts as offline",
        },
    )
    probe_path = _path(
        None,
        "/api/status",
        "fetched on connect to prove the device answers (a 4xx answer also proves it; "
        "the link's last_error then names the path)",
    )
    verify_ssl = _verify_ssl()


class BleSchema(ConfigSchema):
    config_class = BleSettings

    address = fields.String(
        required=True,
        validate=validate.Regexp(_BLE_ADDRESS, error="not a Bluetooth address"),
        metadata={"example": "AA:BB:CC:DD:EE:FF", "description": "device address"},
    )
    connect_attempts = bounded_int(
        3, 1, 10, example=3, description="tries within one connect before backing off"
    )
    scan_timeout_s = _seconds(10.0, 1, 120, 10, "how long to look for the device")
    request_timeout_s = _seconds(10.0, 1, 120, 10, "limit for notify setup, reads, writes")
    backend = _simulator_hook(
        "demo.ble_battery:BACKEND",
        "bleak backend class instead of the host's Bluetooth (simulators)",
    )
    device = fields.String(
        load_default=None,
        validate=validate.OneOf(sorted(PROFILES)),
        metadata={
            "example": "jbd",
            "description": "device profile: read the device through its library "
            "(jbd, jk, daly ... or auto: aiobmsble; renogy; victron) instead of offsets",
        },
    )
    key = fields.String(
        load_default=None,
        metadata={
            "example": "!secret victron_shunt_key",
            "description": "the device's encryption key (victron: its advertisement key, "
            "32 hex digits from VictronConnect); use !secret",
            "secret": True,
        },
    )
    poll_interval_s = _seconds(30.0, 1, 3600, 30, "seconds between polls of a device profile")
    failures_before_offline = bounded_int(
        3, 1, 100, example=3, description="failed polls in a row before reconnecting"
    )
    advertisement_timeout_s = _seconds(
        120.0, 5, 86400, 120, "an advertising device not heard for this long is offline"
    )
    scanner = _simulator_hook(
        "demo.ble_victron:ADVERTISER", "advertisement source instead of a scan (simulators)"
    )

    @validates_schema
    def _profile(self, data: dict[str, Any], **_kwargs: Any) -> None:
        kind, key = data.get("device"), data.get("key")
        if kind is None:
            if key is not None:
                raise ValidationError("key is for a device profile (device: victron)", "key")
            return
        profile = profile_for(kind)
        if profile.needs_key and key is None:
            raise ValidationError(
                f"device: {kind} needs the device's key (32 hex digits; use !secret)", "key"
            )
        if profile.needs_key and key is not None and not _VICTRON_KEY.match(key):
            # Never echo the key itself: it is a secret.
            raise ValidationError("the key is 32 hex digits (16 bytes)", "key")
        if not profile.needs_key and key is not None:
            raise ValidationError(f"device: {kind} takes no key", "key")


class ValueSchema(ConfigSchema):
    """One value of a link."""

    config_class: ClassVar[type[Any] | None] = None

    name = fields.String(
        required=True,
        validate=validate.Regexp(_SLUG, error=_SLUG_ERROR),
        metadata={"example": "grid_power", "description": "names sensor.<link>_<name>"},
    )
    source = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "example": "gateway/meter/state",
            "description": "MQTT topic, WebSocket event, HTTP path or BLE characteristic UUID",
        },
    )
    path = fields.String(
        load_default="",
        metadata={"example": "data.phases[0].power", "description": "JSON path in the payload"},
    )
    offset = bounded_int(
        None, 0, 512, example=4, description="byte offset in a binary (BLE) payload"
    )
    fmt = fields.String(
        data_key="format",
        load_default=None,
        metadata={"example": "<H", "description": "struct format of the number at offset"},
    )
    scale = DecimalFloat(
        load_default=1.0,
        allow_nan=False,
        metadata={"example": 0.1, "description": "multiplier applied to the number"},
    )
    kind = fields.Enum(
        ValueKind,
        by_value=True,
        load_default=ValueKind.NUMBER,
        metadata={"example": "number", "description": "number or text"},
    )
    unit = fields.String(
        load_default=None, metadata={"example": "W", "description": "unit of measurement"}
    )
    device_class = fields.String(
        load_default=None, metadata={"example": "power", "description": "HA device class"}
    )
    state_class = fields.String(
        load_default=None,
        validate=validate.OneOf(["measurement", "total", "total_increasing"]),
        metadata={"example": "measurement", "description": "HA state class"},
    )
    minimum = DecimalFloat(
        data_key="min",
        load_default=None,
        allow_nan=False,
        metadata={"example": -50000, "description": "smallest valid value"},
    )
    maximum = DecimalFloat(
        data_key="max",
        load_default=None,
        allow_nan=False,
        metadata={"example": 50000, "description": "largest valid value"},
    )
    precision = bounded_int(None, 0, 10, example=1, description="decimals in the published state")

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("name") in RESERVED_VALUE_NAMES:
            raise ValidationError(
                f"{data['name']!r} is the link's own entity; pick another name", "name"
            )
        try:
            ValueSpec(key=data.get("source") or "-", **_spec_args(data))
        except ValueError as err:
            raise ValidationError(str(err), _key_of(str(err))) from None

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        return ValueSpec(key=data["source"], **_spec_args(data))


def _key_of(message: str) -> str:
    """The apps.yaml key a :class:`ValueSpec` complaint is about."""
    for word, key in (
        ("JSON path", "path"),
        ("offset must", "offset"),
        ("fmt", "format"),
        ("struct", "format"),
        ("minimum", "min"),
        ("scale", "scale"),
        ("precision", "precision"),
    ):
        if word in message:
            return key
    return "_schema"


def _spec_args(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "source"}


def _topic_filter_problem(topic: str) -> str | None:
    try:
        validate_filter(topic)
    except ValueError as err:
        return f"source: {err}"
    return None


class LinkSchema(ConfigSchema):
    """One link."""

    config_class: ClassVar[type[Any] | None] = None

    name = fields.String(
        required=True,
        validate=validate.Regexp(_SLUG, error=_SLUG_ERROR),
        metadata={"example": "gateway", "description": "names the link's entities"},
    )
    mqtt = fields.Nested(
        MqttSchema,
        load_default=None,
        metadata={"example": {"host": "192.168.1.10"}, "description": "MQTT broker"},
    )
    websocket = fields.Nested(
        WebSocketSchema,
        load_default=None,
        metadata={
            "example": {"url": "http://192.168.1.20", "username": "admin", "password": "..."},
            "description": "controller with HTTP login and WebSocket events",
        },
    )
    http = fields.Nested(
        HttpSchema,
        load_default=None,
        metadata={"example": {"url": "http://192.168.1.30"}, "description": "HTTP JSON polling"},
    )
    ble = fields.Nested(
        BleSchema,
        load_default=None,
        metadata={"example": {"address": "AA:BB:CC:DD:EE:FF"}, "description": "Bluetooth LE"},
    )
    connect_timeout_s = _seconds(25.0, 1, 300, 25, "connect timeout after a success")
    connect_timeout_max_s = _seconds(45.0, 1, 600, 45, "connect timeout after many failures")
    grace_period_s = _seconds(600.0, 10, 86400, 600, "outage before values go unavailable")
    stale_after_s = _seconds(None, 1, 86400, 120, "data older than this is stale")
    outage_notice_after_s = _seconds(600.0, 10, 86400, 600, "outage before a notice")
    no_data_degraded_after_s = _seconds(
        None,
        1,
        86400,
        300,
        "connected but no message on any of the link's sources for this long: "
        "the link reports degraded (default: off)",
    )
    no_data_reconnect_after_s = _seconds(
        None,
        0,
        86400,
        900,
        "connected but no message for this long: drop the connection and reconnect "
        "(default: 3 x stale_after_s on an MQTT or WebSocket link that sets stale_after_s, "
        "else off; 0: off)",
    )
    values = fields.List(
        fields.Nested(ValueSchema),
        load_default=None,
        validate=validate.Length(min=1, error="list at least one value"),
        metadata={
            "example": [{"name": "grid_power", "source": "gateway/meter/state", "path": "power"}],
            "description": "values the link carries (a BLE device profile: optional, "
            "source is the library's value name)",
        },
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        given = [t for t in TRANSPORTS if data.get(t) is not None]
        if len(given) != 1:
            errors.setdefault("_schema", []).append(
                "give exactly one transport block: mqtt, websocket, http or ble"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if data["connect_timeout_max_s"] < data["connect_timeout_s"]:
            errors.setdefault("connect_timeout_max_s", []).append(
                "must be at least connect_timeout_s"
            )
        degraded = data.get("no_data_degraded_after_s")
        reconnect = data.get("no_data_reconnect_after_s")
        if degraded is not None and reconnect and reconnect < degraded:
            errors.setdefault("no_data_reconnect_after_s", []).append(
                "must be at least no_data_degraded_after_s"
            )
        values: list[ValueSpec] = data.get("values") or []
        profile_errors = _profile_values(data)
        if profile_errors:
            errors.setdefault("values", []).extend(profile_errors)
        elif not values and not _device_of(data):
            errors.setdefault("values", []).append("list at least one value")
        names = [v.name for v in values]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            errors.setdefault("values", []).append(f"value {dup!r} is listed twice")
        if len(given) == 1:
            transport = given[0]
            if transport == "mqtt":
                for spec in values:
                    problem = _topic_filter_problem(spec.key)
                    if problem:
                        errors.setdefault("values", []).append(f"{spec.name}: {problem}")
            binary = [v.name for v in values if v.binary]
            if transport != "ble" and binary:
                errors.setdefault("values", []).append(
                    f"{', '.join(binary)}: offset/format are for BLE; use path for {transport}"
                )
            poll = _poll_interval(data[transport])
            if poll is not None:
                # A single failed poll must never exhaust the grace period.
                if data["grace_period_s"] < 2 * poll:
                    errors.setdefault("grace_period_s", []).append(
                        f"must be at least twice the poll interval ({2 * poll:g} s)"
                    )
                stale = data.get("stale_after_s")
                if stale is not None and stale <= poll:
                    errors.setdefault("stale_after_s", []).append(
                        f"must exceed the poll interval ({poll:g} s)"
                    )
        if errors:
            raise ValidationError(errors)

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        transport = next(t for t in TRANSPORTS if data.get(t) is not None)
        return LinkConfig(
            name=data["name"],
            transport=transport,
            settings=data[transport],
            values=_link_values(data),
            policy=AvailabilityPolicy(
                grace_period_s=data["grace_period_s"],
                stale_after_s=data["stale_after_s"],
                outage_notice_after_s=data["outage_notice_after_s"],
            ),
            health=HealthPolicy(
                timeouts=TimeoutPolicy(
                    base_s=data["connect_timeout_s"], max_s=data["connect_timeout_max_s"]
                ),
                watchdog=_watchdog(data, transport),
            ),
        )


def _poll_interval(settings: TransportSettings) -> float | None:
    """Seconds between polls of a link that polls (HTTP, a polled BLE device)."""
    if isinstance(settings, HttpPollSettings):
        return settings.poll_interval_s
    if isinstance(settings, BleSettings) and settings.device is not None:
        return None if profile_for(settings.device).passive else settings.poll_interval_s
    return None


# Links that wait for what the peer pushes: a path that loses it while
# keepalives pass shows only as silence. (An HTTP link asks, and counts the
# rounds that get no answer.)
_PUSH_TRANSPORTS = frozenset({"mqtt", "websocket"})


def _watchdog(data: dict[str, Any], transport: str) -> DataWatchdog:
    """The data watchdog: as configured, else (for a push link with a known
    rate, its ``stale_after_s``) one that reconnects after a few silent
    intervals; ``no_data_reconnect_after_s: 0`` turns that off."""
    degraded = data["no_data_degraded_after_s"]
    reconnect = data["no_data_reconnect_after_s"]
    if reconnect is None and transport in _PUSH_TRANSPORTS:
        reconnect = default_reconnect_after(data["stale_after_s"])
        if reconnect is not None and degraded is not None:
            reconnect = max(reconnect, degraded)
    return DataWatchdog(degraded_after_s=degraded, reconnect_after_s=reconnect or None)


def _device_of(data: dict[str, Any]) -> str | None:
    ble = data.get("ble")
    return ble.device if isinstance(ble, BleSettings) else None


def _profile_values(data: dict[str, Any]) -> list[str]:
    """What is wrong with a device profile link's values (empty: nothing)."""
    kind = _device_of(data)
    if kind is None:
        return []
    problems = []
    for spec in data.get("values") or []:
        if spec.path or spec.binary:
            problems.append(
                f"{spec.name}: a device profile's value is picked by source "
                "(the library's value name, e.g. voltage or cell_voltages[0]), "
                "not by path/offset/format"
            )
            continue
        try:
            profile_for(kind).spec(replace(spec, key=DEVICE_KEY), spec.key)
        except (UnknownValueError, ValueError) as err:
            problems.append(f"{spec.name}: {err}")
    return problems


def _link_values(data: dict[str, Any]) -> tuple[ValueSpec, ...]:
    """The link's values; a device profile's completed from the profile."""
    values: list[ValueSpec] = data.get("values") or []
    kind = _device_of(data)
    if kind is None:
        return tuple(values)
    profile = profile_for(kind)
    if not values:
        return profile.default_specs(DEVICE_KEY)
    return tuple(profile.spec(replace(v, key=DEVICE_KEY), v.key) for v in values)


class LinkMonitorSchema(ConfigSchema):
    """The link monitor's ``apps.yaml`` entry."""

    config_class = LinkMonitorConfig

    links = fields.List(
        fields.Nested(LinkSchema),
        required=True,
        validate=validate.Length(min=1, error="list at least one link"),
        metadata={
            "example": [
                {
                    "name": "gateway",
                    "mqtt": {"host": "192.168.1.10"},
                    "values": [{"name": "grid_power", "source": "meter/state", "path": "power"}],
                }
            ],
            "description": "device links to monitor",
        },
    )
    tick_interval_s = _seconds(5.0, 1, 300, 5, "seconds between availability checks")
    ble = fields.Nested(
        lambda: BleRadioSchema(),
        load_default=None,
        metadata={
            "example": {"adapter": "esphome", "proxies": [{"host": "192.168.1.40"}]},
            "description": "the radio of the BLE links: local (this host's Bluetooth) or "
            "esphome (ESPHome Bluetooth proxies, for AppDaemon without Bluetooth)",
        },
    )

    @validates_schema
    def _unique(self, data: dict[str, Any], **_kwargs: Any) -> None:
        links: list[LinkConfig] = data.get("links") or []
        seen: dict[str, str] = {}
        problems: list[str] = []
        for link in links:
            if link.name in seen.values():
                problems.append(f"link {link.name!r} is listed twice")
                continue
            for entity_id in link_entity_ids(link.name, [v.name for v in link.values]):
                if entity_id in seen:
                    problems.append(
                        f"{entity_id} would belong to links {seen[entity_id]!r} and "
                        f"{link.name!r}; rename one of them"
                    )
                seen[entity_id] = link.name
        if problems:
            raise ValidationError(problems, "links")

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        radio = data.pop("ble", None) or BleRadioSettings()
        data["links"] = tuple(
            replace(link, radio=radio) if link.transport == "ble" else link
            for link in data["links"]
        )
        return LinkMonitorConfig(ble=radio, **data)


class EsphomeProxySchema(ConfigSchema):
    config_class = EsphomeProxy

    host = host_field("192.168.1.40", "the proxy's host name or address")
    port = tcp_port_field(6053, "its native API port")
    noise_psk = fields.String(
        load_default=None,
        metadata={
            "example": "!secret proxy_api_key",
            "description": "its API encryption key (api: encryption: key:); use !secret",
            "secret": True,
        },
    )


class BleRadioSchema(ConfigSchema):
    config_class = BleRadioSettings

    adapter = fields.String(
        load_default="local",
        validate=validate.OneOf(["local", "esphome"]),
        metadata={
            "example": "esphome",
            "description": "local: this host's Bluetooth (BlueZ); esphome: the proxies below",
        },
    )
    proxies = fields.List(
        fields.Nested(EsphomeProxySchema),
        load_default=list,
        metadata={
            "example": [{"host": "192.168.1.40"}, {"host": "192.168.1.41"}],
            "description": "ESPHome Bluetooth proxies (adapter: esphome): the one hearing a "
            "device best is used, another when it drops out",
        },
    )
    connect_timeout_s = _seconds(30.0, 1, 300, 30, "how long the first proxy may take to answer")

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_kwargs: Any) -> None:
        adapter, proxies = data.get("adapter"), data.get("proxies") or []
        if adapter == "esphome" and not proxies:
            raise ValidationError(
                "adapter: esphome needs at least one proxy, e.g. proxies: [{host: 192.168.1.40}]",
                "proxies",
            )
        if adapter == "local" and proxies:
            raise ValidationError("proxies are used with adapter: esphome", "adapter")

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> Any:
        return BleRadioSettings(
            adapter=data["adapter"],
            proxies=tuple(data["proxies"]),
            connect_timeout_s=data["connect_timeout_s"],
        )
