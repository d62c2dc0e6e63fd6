"""apps.yaml for BLE device profiles: defaults from the profile, the user's
picks, renames and ranges, and one error per bad key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.config.base import ConfigError, load_config
from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.links.profiles import PROFILES
from gridwatch.links.values import Reading, ValueKind, extract
from gridwatch.transport.ble_settings import DEVICE_KEY

KEY = "aff4d0995b7d1e176c0c33ecb9e70dcd"
# HA's units for each sensor device class the profiles use (HA's own
# sensor/const.py DEVICE_CLASS_UNITS, the ones recorder's statistics accept).
HA_UNITS = {
    "voltage": {"V", "mV"},
    "current": {"A", "mA"},
    "power": {"W", "kW"},
    "battery": {"%"},
    "temperature": {"°C", "°F", "K"},
    "energy": {"Wh", "kWh", "MWh"},
    "energy_storage": {"Wh", "kWh", "MWh"},
    "duration": {"s", "min", "h", "d"},
    "apparent_power": {"VA"},
}


def load(link: dict) -> LinkMonitorConfig:
    return load_config(LinkMonitorSchema, {"links": [link]}, into=LinkMonitorConfig)


def test_a_bms_with_no_values_publishes_the_profile_set_with_units_and_classes():
    config = load(
        {"name": "house_battery", "ble": {"address": "A4:C1:37:00:00:01", "device": "jbd"}}
    )
    (link,) = config.links
    by_name = {v.name: v for v in link.values}
    assert {"voltage", "current", "battery_level", "power", "temperature"} <= set(by_name)
    assert all(v.key == DEVICE_KEY for v in link.values)
    assert (by_name["voltage"].unit, by_name["voltage"].device_class) == ("V", "voltage")
    assert by_name["battery_level"].state_class == "measurement"
    assert by_name["cycles"].state_class == "total_increasing"
    assert by_name["problem"].kind is ValueKind.TEXT
    assert by_name["problem"].state_class is None
    assert link.settings.target() == "A4:C1:37:00:00:01 (jbd)"


def test_picked_values_are_renamed_range_checked_and_indexed():
    config = load(
        {
            "name": "house_battery",
            "ble": {"address": "A4:C1:37:00:00:01", "device": "auto", "poll_interval_s": 10},
            "values": [
                {"name": "pack_voltage", "source": "voltage", "max": 16},
                {"name": "cell_1", "source": "cell_voltages[0]", "precision": 2},
            ],
        }
    )
    pack, cell = config.links[0].values
    assert (pack.name, pack.path, pack.unit, pack.maximum, pack.minimum) == (
        "pack_voltage",
        "voltage",
        "V",
        16,
        0,
    )
    sample = {"voltage": 15.6, "cell_voltages": [3.43, 3.425]}
    assert extract(pack, sample) == Reading(15.6)
    assert extract(cell, sample) == Reading(3.43)
    assert extract(pack, {"voltage": 17.0}).kind == "out_of_range"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ble", "values", "key", "words"),
    [
        ({"device": "nosuch"}, None, "device", "Must be one of"),
        ({"device": "victron"}, None, "key", "needs the device's key"),
        ({"device": "victron", "key": "not-hex"}, None, "key", "32 hex digits"),
        ({"device": "jbd", "key": KEY}, None, "key", "takes no key"),
        ({"key": KEY}, [{"name": "x", "source": "ff01", "offset": 0, "format": "<H"}], "key", ""),
        ({"device": "jbd"}, [{"name": "v", "source": "volts"}], "values", "reports no value"),
        ({"device": "jbd"}, [{"name": "v", "source": "voltage", "path": "a"}], "values", "source"),
        ({}, None, "values", "list at least one value"),
    ],
)
def test_bad_profile_config_names_the_key(ble, values, key, words):
    link: dict = {"name": "b", "ble": {"address": "A4:C1:37:00:00:01", **ble}}
    if values is not None:
        link["values"] = values
    with pytest.raises(ConfigError) as info:
        load(link)
    text = str(info.value)
    assert key in text
    assert words in text
    assert KEY not in text  # a key is a secret: never echoed


def test_the_key_never_reaches_a_repr():
    config = load(
        {"name": "shunt", "ble": {"address": "C4:4F:33:00:00:02", "device": "victron", "key": KEY}}
    )
    assert KEY not in repr(config)
    assert KEY not in config.links[0].settings.target()


@given(kind=st.sampled_from(sorted(PROFILES)))
def test_every_profile_value_has_a_unit_ha_accepts_for_its_class(kind):
    profile = PROFILES[kind]
    for name, value in profile.values.items():
        if value.device_class is not None:
            assert value.unit in HA_UNITS[value.device_class], (kind, name)
        if value.kind is ValueKind.TEXT:
            assert value.state_class is None, (kind, name)
        # A total_increasing counter never has a range that allows a drop below 0.
        if value.state_class == "total_increasing" and value.minimum is not None:
            assert value.minimum >= 0


def _radio(ble: dict) -> LinkMonitorConfig:
    return load_config(
        LinkMonitorSchema,
        {
            "ble": ble,
            "links": [{"name": "b", "ble": {"address": "A4:C1:37:00:00:01", "device": "jbd"}}],
        },
        into=LinkMonitorConfig,
    )


def test_esphome_proxies_load_and_reach_every_ble_link():
    psk = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA="
    config = _radio(
        {
            "adapter": "esphome",
            "proxies": [{"host": "192.168.1.40", "noise_psk": psk}, {"host": "p2", "port": 6054}],
        }
    )
    radio = config.links[0].radio
    assert radio is config.ble
    assert radio.adapter == "esphome"
    assert [(p.host, p.port) for p in radio.proxies] == [("192.168.1.40", 6053), ("p2", 6054)]
    assert psk not in repr(config)  # the API key is a secret


@pytest.mark.parametrize(
    ("ble", "words"),
    [
        ({"adapter": "esphome"}, "needs at least one proxy"),
        (
            {"adapter": "local", "proxies": [{"host": "p"}]},
            "proxies are used with adapter: esphome",
        ),
        ({"adapter": "bluez"}, "Must be one of"),
        ({"adapter": "esphome", "proxies": [{"port": 6053}]}, "host"),
    ],
)
def test_bad_radio_config_names_the_key(ble, words):
    with pytest.raises(ConfigError) as info:
        _radio(ble)
    assert "ble" in str(info.value)
    assert words in str(info.value)


def test_no_ble_block_is_the_local_adapter():
    config = load({"name": "b", "ble": {"address": "A4:C1:37:00:00:01", "device": "jbd"}})
    assert config.ble.adapter == "local"
    assert config.links[0].radio.adapter == "local"
