"""The link monitor's apps.yaml schema: good entries load, bad ones say why."""

from __future__ import annotations

import copy

import pytest

from gridwatch.config.base import ConfigError, load_config
from gridwatch.config.link_monitor_schema import (
    BleConfig,
    HttpConfig,
    LinkMonitorConfig,
    LinkMonitorSchema,
    MqttConfig,
    WebSocketConfig,
)
from gridwatch.links.values import ValueKind

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
    assert isinstance(gateway.settings, MqttConfig)
    assert gateway.settings.port == 1883
    assert gateway.settings.password == SECRET
    assert SECRET not in repr(gateway)  # passwords never reach a repr (or a log)
    assert gateway.policy.grace_period_s == 600
    assert gateway.policy.stale_after_s == 120
    assert gateway.values[0].key == "gateway/meter/state"
    assert gateway.values[0].maximum == 50000
    assert gateway.values[1].kind is ValueKind.TEXT
    assert isinstance(controller.settings, WebSocketConfig)
    assert isinstance(meter.settings, HttpConfig)
    assert meter.poll_interval_s == 30
    assert isinstance(battery.settings, BleConfig)
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
    ],
)
def test_bad_entry_names_the_key(mutate, key, why):
    error = bad(mutate)
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
