"""The export guard's schema: good and bad entries."""

from __future__ import annotations

import pytest

from gridwatch.config import ConfigError, load_config
from gridwatch.config.export_guard_schema import (
    ActuatorsSchema,
    ExportGuardConfig,
    ExportGuardSchema,
    ReadingSchema,
    ReadingsSchema,
    SwitchActuator,
    SwitchSchema,
    ValueActuator,
    ValueSchema,
)
from gridwatch.guard.readings import GridSign
from gridwatch.safety.validation import POWER_RANGE, SOC_RANGE, Range

AD = {"name": "export_guard", "module": "gridwatch_export_guard", "class": "ExportGuard"}
MINIMAL = {
    **AD,
    "export_limit_w": 3680,
    "daily_export_cap_kwh": 20,
    "max_discharge_w": 5000,
    "readings": {
        "grid_power": {"entity": "sensor.grid_power"},
        "soc": {"entity": "sensor.battery_soc", "max_age_s": 900},
        "export_today": {"entity": "sensor.grid_export_today"},
    },
    "actuators": {
        "enable": {"entity": "input_boolean.battery_discharge"},
        "power": {"entity": "input_number.battery_discharge_power"},
    },
}


def load(args):
    return load_config(ExportGuardSchema, args, into=ExportGuardConfig)


def test_minimal_entry_gets_the_documented_defaults():
    config = load(MINIMAL)
    guard = config.guard
    assert (guard.export_limit_w, guard.deadband_w) == (3680, 100)
    assert (guard.daily_cap_kwh, guard.margin_kwh) == (20, 0.2)
    # HA's own convention, as the README and apps.yaml document it.
    assert guard.grid_sign is GridSign.IMPORT_POSITIVE
    # Two meter periods of 2 s plus a second of inverter ramp.
    assert guard.settle_s == 5.0
    assert guard.lease_min is None  # no duration actuator: no lease
    assert (guard.max_raise_step_w, guard.min_write_interval_s) == (2000, 10)
    assert guard.specs.grid_power.bounds == POWER_RANGE
    assert guard.specs.grid_power.max_age_s == 30
    assert guard.specs.soc.max_age_s == 900
    assert guard.specs.soc.bounds == SOC_RANGE
    assert config.enable == SwitchActuator(
        "input_boolean.battery_discharge", "input_boolean/turn_on", "input_boolean/turn_off"
    )
    assert config.power == ValueActuator(
        "input_number.battery_discharge_power", "input_number/set_value", 1.0
    )
    assert config.cutoff_soc is None
    assert config.request_entity is None
    assert config.event == "gridwatch_export_guard"
    assert config.tick_s == 5
    assert config.dry_run is False
    assert (config.verify.call_timeout_s, config.verify.attempts) == (5, 3)
    assert (config.breaker_threshold, config.breaker_reset_s) == (5, 60)
    assert config.entities == {
        "grid_power": "sensor.grid_power",
        "soc": "sensor.battery_soc",
        "export_today": "sensor.grid_export_today",
        "enable": "input_boolean.battery_discharge",
    }


def test_full_entry():
    args = {
        **MINIMAL,
        "grid_sign": "import_positive",
        "dry_run": True,
        "request_entity": "input_boolean.discharge_request",
        "readings": {
            **MINIMAL["readings"],
            "grid_power": {"entity": "sensor.grid", "min": -20000, "max": 20000},
            "pv_power": {"entity": "sensor.pv"},
        },
        "actuators": {
            "enable": {
                "entity": "select.battery_mode",
                "on_service": "script.discharge_on",
                "off_service": "script/discharge_off",
            },
            "power": {"entity": "number.discharge_power", "tolerance": 10},
            "cutoff_soc": {"entity": "number.cutoff_soc"},
            "duration": {"entity": "input_number.minutes"},
        },
    }
    config = load(args)
    assert config.guard.grid_sign is GridSign.IMPORT_POSITIVE
    assert config.guard.specs.grid_power.bounds == Range(-20000, 20000, "W")
    assert config.entities["pv_power"] == "sensor.pv"
    assert config.enable.on_service == "script/discharge_on"
    assert config.enable.off_service == "script/discharge_off"
    assert config.power == ValueActuator("number.discharge_power", "number/set_value", 10)
    assert config.cutoff_soc is not None
    assert config.duration is not None
    assert config.dry_run is True


@pytest.mark.parametrize(
    ("bad", "key", "why"),
    [
        ({"export_limit_w": 0}, "export_limit_w", "greater than 0"),
        ({"export_limit_w": "lots"}, "export_limit_w", "Not a valid number"),
        ({"deadband_w": 5000}, "deadband_w", "below export_limit_w"),
        ({"cap_margin_kwh": 25}, "cap_margin_kwh", "below daily_export_cap_kwh"),
        ({"min_soc_pct": 120}, "min_soc_pct", "less than or equal to 100"),
        ({"grid_sign": "up"}, "grid_sign", "Must be one of"),
        ({"tick_s": 0}, "tick_s", "greater than or equal to 1"),
        ({"request_entity": "not an entity"}, "request_entity", "not an entity id"),
        ({"readings": {"soc": {"entity": "sensor.soc"}}}, "readings.grid_power", "required"),
        (
            {
                "readings": {
                    **MINIMAL["readings"],
                    "soc": {"entity": "sensor.soc", "min": 90, "max": 10},
                }
            },
            "readings.soc.min",
            "above max",
        ),
        (
            {"actuators": {"enable": {"entity": "select.mode"}, "power": {"entity": "number.p"}}},
            "actuators.enable.on_service",
            "need on_service",
        ),
        (
            {"actuators": {**MINIMAL["actuators"], "power": {"entity": "sensor.p"}}},
            "actuators.power.service",
            "need a service",
        ),
        ({"max_discharge_w": 50, "min_discharge_w": 100}, "min_discharge_w", "must not exceed"),
        ({"export_limt_w": 1}, "export_limt_w", "did you mean 'export_limit_w'"),
        # Settings that would switch a safety rule off.
        ({"min_discharge_w": 0}, "min_discharge_w", "greater than 0"),
        ({"retry_after_s": 0}, "retry_after_s", "greater than or equal to 1"),
        ({"deadband_w": 3680}, "deadband_w", "below export_limit_w"),
        ({"cap_margin_kwh": 20}, "cap_margin_kwh", "below daily_export_cap_kwh"),
        ({"max_request_min": 1e308}, "max_request_min", "less than or equal to 10080"),
        ({"lease_min": 0}, "lease_min", "greater than or equal to 1"),
        ({"settle_s": -1}, "settle_s", "greater than or equal to 0"),
        ({"settle_s": 1, "meter_period_s": 2}, "settle_s", "at least meter_period_s"),
        ({"max_raise_step_w": 200}, "max_raise_step_w", "at least response_min_w (300)"),
        (
            {"max_discharge_w": 1000, "response_min_w": 1500, "max_raise_step_w": 2000},
            "response_min_w",
            "must not exceed max_discharge_w",
        ),
        (
            {
                "actuators": {
                    **MINIMAL["actuators"],
                    "duration": {"entity": "input_number.m", "counts_from": "end"},
                }
            },
            "actuators.duration.counts_from",
            "Must be one of",
        ),
    ],
)
def test_bad_entries_name_the_key_and_why(bad, key, why):
    with pytest.raises(ConfigError) as info:
        load({**MINIMAL, **bad})
    assert any(k.startswith(key) for k in info.value.keys), info.value.keys
    assert why in str(info.value)


def test_a_duration_actuator_carries_the_lease_and_settle_follows_the_meter():
    actuators = {**MINIMAL["actuators"], "duration": {"entity": "input_number.minutes"}}
    config = load({**MINIMAL, "actuators": actuators, "lease_min": 3, "meter_period_s": 10})
    assert config.guard.lease_min == 3
    assert config.guard.settle_s == 21.0
    # Most remote-control timeouts restart at each write: the default.
    assert config.guard.timer_from_start is False


def test_a_timer_that_counts_from_the_start_is_said_so():
    duration = {"entity": "input_number.minutes", "counts_from": "start"}
    config = load({**MINIMAL, "actuators": {**MINIMAL["actuators"], "duration": duration}})
    assert config.guard.timer_from_start is True
    assert config.duration is not None
    assert config.duration.entity == "input_number.minutes"


def test_missing_required_keys_are_all_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load(AD)
    assert set(info.value.keys) >= {
        "export_limit_w",
        "daily_export_cap_kwh",
        "max_discharge_w",
        "readings",
        "actuators",
    }


@pytest.mark.parametrize(
    "schema",
    [ExportGuardSchema, ReadingSchema, ReadingsSchema, SwitchSchema, ValueSchema, ActuatorsSchema],
)
def test_every_field_has_an_example(schema):
    for name, field in schema().fields.items():
        assert "example" in field.metadata, f"{schema.__name__}.{name}"


def test_examples_of_top_level_fields_are_valid():
    for name, field in ExportGuardSchema().fields.items():
        load({**MINIMAL, name: field.metadata["example"]})


@pytest.mark.parametrize(
    ("reading", "bound", "value", "key"),
    [
        ("soc", "min", 150, "readings.soc.min"),  # above the default max of 100
        ("export_today", "max", -1, "readings.export_today.max"),  # below the default min of 0
        ("grid_power", "min", 60000, "readings.grid_power.min"),
    ],
)
def test_one_bound_that_empties_the_default_range_is_a_config_error(reading, bound, value, key):
    args = {**MINIMAL, "readings": {**MINIMAL["readings"]}}
    args["readings"][reading] = {**args["readings"][reading], bound: value}
    with pytest.raises(ConfigError) as caught:
        load(args)
    assert caught.value.keys == (key,)
    assert "empty" in str(caught.value)
