"""The link monitor's apps.yaml schema: good entries load, bad ones say why."""

from __future__ import annotations

import copy

import pytest

from gridwatch.config.base import ConfigError, load_config
from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.links.values import ValueKind
from gridwatch.transport.ble_settings import BleSettings
from gridwatch.transport.http_settings import HttpPollSettings, WebSocketSettings
from gridwatch.transport.mqtt_settings import MqttSettings

SECRET = "s3cr3t-do-not-log"

GOOD = {
    "name": "link_monitor",
    "module": "gridwatch_link_monitor",
    "class": "LinkMonitorApp",
    "links": [
        {
            "name": "gateway",
            "mqtt": {"host": "192.168.1.10", "username": "gw", "password": SECRET},
            "stale_after_s": 120,
            "values": [
                {
                    "name": "grid_power",
                    "source": "gateway/meter/state",
                    "path": "power",
                    "unit": "W",
                    "device_class": "power",
                    "state_class": "measurement",
                    "min": -50000,
                    "max": 50000,
                },
                {"name": "mode", "source": "gateway/mode", "kind": "text"},
            ],
        },
        {
            "name": "controller",
            "websocket": {"url": "http://192.168.1.20", "username": "a", "password": SECRET},
            "values": [{"name": "pv_power", "source": "pv", "path": "w"}],
        },
        {
            "name": "meter",
            "http": {"url": "https://192.168.1.30", "poll_interval_s": 30},
            "values": [{"name": "energy", "source": "/api/energy", "path": "total.kwh"}],
        },
        {
            "name": "battery",
            "ble": {"address": "AA:BB:CC:DD:EE:FF"},
            "grace_period_s": 300,
            "values": [
                {
                    "name": "soc",
                    "source": "0000ffe1-0000-1000-8000-00805f9b34fb",
                    "offset": 4,
                    "format": "<H",
                    "scale": 0.1,
                    "min": 0,
                    "max": 100,
                }
            ],
        },
    ],
}


def load(args):
    return load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)


def test_good_entry_loads_into_frozen_config():
    config = load(GOOD)
    assert [link.name for link in config.links] == ["gateway", "controller", "meter", "battery"]
    assert [link.transport for link in config.links] == ["mqtt", "websocket", "http", "ble"]
    gateway, controller, meter, battery = config.links
    assert isinstance(gateway.settings, MqttSettings)
    assert gateway.settings.port == 1883
    assert gateway.settings.password == SECRET
    assert SECRET not in repr(gateway)  # passwords never reach a repr (or a log)
    assert gateway.policy.grace_period_s == 600
    assert gateway.policy.stale_after_s == 120
    assert gateway.values[0].key == "gateway/meter/state"
    assert gateway.values[0].maximum == 50000
    assert gateway.values[1].kind is ValueKind.TEXT
    assert isinstance(controller.settings, WebSocketSettings)
    assert isinstance(meter.settings, HttpPollSettings)
    assert meter.poll_interval_s == 30
    assert isinstance(battery.settings, BleSettings)
    assert battery.values[0].fmt == "<H"
    assert battery.values[0].binary
    assert battery.policy.grace_period_s == 300
    assert config.tick_interval_s == 5
    with pytest.raises(AttributeError):
        config.tick_interval_s = 1  # type: ignore[misc]


def bad(mutate) -> ConfigError:
    args = copy.deepcopy(GOOD)
    mutate(args)
    with pytest.raises(ConfigError) as info:
        load(args)
    return info.value


def _set(path, value):
    def mutate(args):
        node = args
        for part in path[:-1]:
            node = node[part]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "key", "why"),
    [
        (_set(["links"], []), "links", "at least one link"),
        (_set(["links", 0, "name"], "Gateway 1"), "links[0].name", "lowercase"),
        (_set(["links", 0, "mqtt", "port"], 70000), "links[0].mqtt.port", ""),
        (_set(["links", 0, "mqtt", "password"], None), "links[0].mqtt.password", "both"),
        (_set(["links", 0, "values", 0, "path"], "a..b"), "links[0].values[0].path", "JSON path"),
        (_set(["links", 0, "values", 0, "min"], 1e6), "links[0].values[0].min", "maximum"),
        (_set(["links", 0, "values", 0, "name"], "link_status"), "links[0].values[0].name", ""),
        (_set(["links", 0, "values", 0, "source"], KeyError), "links[0].values[0].source", ""),
        (
            _set(["links", 0, "values", 0, "state_class"], "sum"),
            "links[0].values[0].state_class",
            "",
        ),
        (_set(["links", 3, "values", 0, "format"], "<4s"), "links[3].values[0].format", "number"),
        (
            _set(["links", 3, "values", 0, "offset"], KeyError),
            "links[3].values[0].format",
            "together",
        ),
        (_set(["links", 3, "ble", "address"], "nope"), "links[3].ble.address", "Bluetooth"),
        (_set(["links", 2, "http", "url"], "192.168.1.30"), "links[2].http.url", "http"),
        (_set(["links", 2, "grace_period_s"], 40), "links[2].grace_period_s", "twice the poll"),
        (_set(["links", 2, "stale_after_s"], 20), "links[2].stale_after_s", "poll interval"),
        (_set(["links", 1, "connect_timeout_max_s"], 5), "links[1].connect_timeout_max_s", ""),
        (_set(["links", 1, "http"], {"url": "http://x"}), "links[1]", "exactly one"),
        (_set(["links", 1, "websocket"], None), "links[1]", "exactly one"),
        (_set(["links", 0, "values", 0, "offset"], 1), "links[0].values[0].format", "together"),
        (_set(["links", 0, "grace_perod_s"], 60), "links[0].grace_perod_s", "grace_period_s"),
        (_set(["tick_interval_s"], 0), "tick_interval_s", ""),
        (_set(["links", 0, "values", 0, "source"], "gw/#/x"), "links[0].values", "last level"),
        (_set(["links", 0, "values", 0, "source"], "gw/a+/x"), "links[0].values", "whole level"),
        (_set(["links", 0, "mqtt", "protocol"], "3"), "links[0].mqtt.protocol", ""),
        # URLs the old pattern let through; each aborted the link at start.
        (_set(["links", 1, "websocket", "url"], "http://[::1"), "links[1].websocket.url", "IPv6"),
        (_set(["links", 2, "http", "url"], "http://h:99999"), "links[2].http.url", "not a valid"),
        (_set(["links", 2, "http", "url"], "http://:80"), "links[2].http.url", "no host"),
        (_set(["links", 2, "http", "url"], "http://h:0"), "links[2].http.url", "port 0"),
        (_set(["links", 2, "http", "url"], "http://h:x"), "links[2].http.url", "not a valid"),
        (_set(["links", 2, "http", "url"], "ftp://h"), "links[2].http.url", "http(s)"),
        (_set(["links", 2, "http", "url"], "http://h/a b"), "links[2].http.url", "spaces"),
        (_set(["links", 2, "http", "url"], "http://h/?x=1"), "links[2].http.url", "query"),
        (
            _set(["links", 0, "mqtt", "clean_session"], False),
            "links[0].mqtt.client_id",
            "persistent session",
        ),
        (_set(["links", 0, "mqtt", "session_expiry_s"], 0), "links[0].mqtt.session_expiry_s", ""),
        (
            _set(["links", 0, "no_data_reconnect_after_s"], 60),
            "links[0].no_data_reconnect_after_s",
            "at least no_data_degraded_after_s",
        ),
        (
            _set(["links", 0, "no_data_degraded_after_s"], 0),
            "links[0].no_data_degraded_after_s",
            "",
        ),
    ],
)
def test_bad_entry_names_the_key(mutate, key, why):
    def with_watchdog(args):
        args["links"][0]["no_data_degraded_after_s"] = 120
        mutate(args)

    error = bad(with_watchdog)
    keys = error.keys
    assert key in keys, str(error)
    problem = next(p for p in error.problems if p.key == key)
    assert why in problem.why
    assert SECRET not in str(error)


def test_binary_value_on_a_json_transport_is_refused():
    def mutate(args):
        args["links"][0]["values"][0].update({"path": "", "offset": 0, "format": "<h"})

    error = bad(mutate)
    assert "links[0].values" in error.keys
    assert "for BLE" in str(error)


def test_duplicate_names_and_colliding_entity_ids_are_refused():
    def dup_value(args):
        args["links"][0]["values"][1]["name"] = "grid_power"

    assert "listed twice" in str(bad(dup_value))

    def colliding(args):
        # link "gateway" + value "x_y" and link "gateway_x" + value "y" both
        # want sensor.gateway_x_y
        args["links"][0]["values"][0]["name"] = "x_y"
        args["links"][1]["name"] = "gateway_x"
        args["links"][1]["values"][0]["name"] = "y"

    error = bad(colliding)
    assert "sensor.gateway_x_y" in str(error)

    def dup_link(args):
        args["links"][1]["name"] = "gateway"

    assert "listed twice" in str(bad(dup_link))


def test_every_field_has_an_example():
    # The loader's error messages show the example: every field needs one.
    from gridwatch.config import link_monitor_schema as mod

    for schema in (
        mod.LinkMonitorSchema,
        mod.LinkSchema,
        mod.ValueSchema,
        mod.MqttSchema,
        mod.WebSocketSchema,
        mod.HttpSchema,
        mod.BleSchema,
    ):
        for name, field in schema().fields.items():
            assert "example" in field.metadata, f"{schema.__name__}.{name}"


def test_wrong_password_type_is_reported_without_its_value():
    def mutate(args):
        args["links"][0]["mqtt"]["password"] = 12345678

    error = bad(mutate)
    assert "links[0].mqtt.password" in error.keys
    assert "12345678" not in str(error)


def test_targets_never_show_credentials_in_a_url():
    args = copy.deepcopy(GOOD)
    args["links"][1]["websocket"]["url"] = f"http://admin:{SECRET}@192.168.1.20:8080/x"
    config = load(args)
    assert config.links[1].settings.target() == "http://192.168.1.20:8080/x"
    assert config.links[0].settings.target() == "mqtt://192.168.1.10:1883"


def test_ipv6_and_port_urls_load():
    args = copy.deepcopy(GOOD)
    args["links"][1]["websocket"]["url"] = "http://[fe80::1]:8080"
    args["links"][2]["http"]["url"] = "https://meter.local:8443/base"
    config = load(args)
    assert config.links[1].settings.target() == "http://[fe80::1]:8080"
    assert config.links[2].settings.target() == "https://meter.local:8443/base"


def test_persistent_session_and_watchdog_options_load():
    args = copy.deepcopy(GOOD)
    args["links"][0]["mqtt"].update(
        {"clean_session": False, "client_id": "gw-monitor", "session_expiry_s": 86400}
    )
    args["links"][0]["no_data_degraded_after_s"] = 120
    args["links"][0]["no_data_reconnect_after_s"] = 600
    gateway = load(args).links[0]
    assert isinstance(gateway.settings, MqttSettings)
    assert (gateway.settings.clean_session, gateway.settings.client_id) == (False, "gw-monitor")
    assert gateway.settings.session_expiry_s == 86400
    assert gateway.health.watchdog.degraded_after_s == 120
    assert gateway.health.watchdog.reconnect_after_s == 600
    # Off unless asked for: only the user knows how often a device sends.
    controller = load(GOOD).links[1]
    assert not controller.health.watchdog.enabled


# Settings fields a user does not set in apps.yaml, each with the reason.
NOT_IN_APPS_YAML = {
    # Fixed by design: the availability payloads are what HA's MQTT
    # availability defaults expect.
    (MqttSettings, "payload_online"),
    (MqttSettings, "payload_offline"),
    # Library timeouts with safe defaults; no user has needed them.
    (MqttSettings, "request_timeout_s"),
    (MqttSettings, "socket_connect_timeout_s"),
    (WebSocketSettings, "receive_timeout_s"),
    (WebSocketSettings, "max_payload_bytes"),
    (HttpPollSettings, "max_payload_bytes"),
    # Built from the block's username / password / login_path.
    (WebSocketSettings, "login"),
    (HttpPollSettings, "login"),
    # Set from the block's request_timeout_s.
    (WebSocketSettings, "http_timeout_s"),
}


@pytest.mark.parametrize(
    ("schema_name", "settings_class"),
    [
        ("MqttSchema", MqttSettings),
        ("WebSocketSchema", WebSocketSettings),
        ("HttpSchema", HttpPollSettings),
        ("BleSchema", BleSettings),
    ],
)
def test_each_transport_block_is_its_settings_class(schema_name, settings_class):
    # The schema loads straight into the transport's settings: a field of
    # one is a field of the other (or explicitly left out above), so a new
    # transport option cannot be forgotten in apps.yaml, and nothing copies
    # options between config and transport.
    import dataclasses

    from gridwatch.config import link_monitor_schema as mod

    schema = getattr(mod, schema_name)()
    # Device logins: three apps.yaml keys make the settings' one "login".
    login_keys = {"username", "password", "login_path"} if schema_name != "MqttSchema" else set()
    schema_fields = set(schema.fields) - login_keys
    settings_fields = {f.name for f in dataclasses.fields(settings_class)}
    left_out = {name for cls, name in NOT_IN_APPS_YAML if cls is settings_class}
    assert schema_fields <= settings_fields
    assert settings_fields - schema_fields == left_out


def test_a_push_link_with_a_known_rate_gets_a_data_watchdog_by_default():
    # Issue 22: a path that loses the data while keepalives pass left such a
    # link connected and silent for ever unless the watchdog was configured.
    gateway, controller, meter = load(GOOD).links[:3]
    assert gateway.policy.stale_after_s == 120
    assert gateway.health.watchdog.reconnect_after_s == 3 * 120
    assert gateway.health.watchdog.degraded_after_s is None
    # No known rate (no stale_after_s): only the user knows how often it sends.
    assert not controller.health.watchdog.enabled
    # An HTTP link asks and counts the rounds that get no answer instead.
    args = copy.deepcopy(GOOD)
    args["links"][2]["stale_after_s"] = 120
    assert not load(args).links[2].health.watchdog.enabled
    assert meter.transport == "http"


@pytest.mark.parametrize(
    ("options", "reconnect"),
    [
        ({"no_data_reconnect_after_s": 0}, None),
        ({"no_data_reconnect_after_s": 200}, 200),
        ({"no_data_degraded_after_s": 500}, 500),
        ({"stale_after_s": 30, "websocket_link": True}, 90),
    ],
    ids=["0 turns it off", "a given value wins", "never below degraded", "websocket too"],
)
def test_the_default_data_watchdog_follows_what_is_given(options, reconnect):
    args = copy.deepcopy(GOOD)
    index = 1 if options.pop("websocket_link", False) else 0
    args["links"][index].update(options)
    link = load(args).links[index]
    assert link.health.watchdog.reconnect_after_s == reconnect
