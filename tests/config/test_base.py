"""The config framework: AppDaemon keys excluded, every bad key reported."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from marshmallow import fields, validate

from gridwatch.config import APPDAEMON_KEYS, ConfigError, ConfigSchema, app_options, load_config
from gridwatch.config.base import DecimalFloat, DecimalInteger


@dataclass(frozen=True)
class Meter:
    entity_id: str


@dataclass(frozen=True)
class Sample:
    export_limit_w: float
    min_soc_pct: float
    password: str | None
    meters: tuple[Meter, ...]


class MeterSchema(ConfigSchema):
    config_class = Meter
    entity_id = fields.String(required=True, metadata={"example": "sensor.meter_energy"})


class SampleSchema(ConfigSchema):
    config_class = Sample
    export_limit_w = fields.Float(
        required=True, validate=validate.Range(min=0), metadata={"example": 3680}
    )
    min_soc_pct = fields.Float(
        load_default=10.0, validate=validate.Range(min=0, max=100), metadata={"example": 15}
    )
    password = fields.String(load_default=None, metadata={"example": "!secret p", "secret": True})
    meters = fields.List(
        fields.Nested(MeterSchema),
        load_default=(),
        metadata={"example": [{"entity_id": "sensor.meter_energy"}]},
    )


AD_ARGS = {
    "name": "export_guard",
    "module": "gridwatch_export_guard",
    "class": "ExportGuard",
    "priority": 10,
    "dependencies": ["notifier"],
    "log": "gridwatch_log",
    "log_level": "DEBUG",
    "constrain_input_boolean": "input_boolean.guard_enabled",
    "pin_app": True,
    "config_path": "/conf/apps/apps.yaml",
}


def test_good_config_loads_into_a_frozen_dataclass():
    config = load_config(
        SampleSchema,
        {**AD_ARGS, "export_limit_w": 3680, "meters": [{"entity_id": "sensor.a"}]},
        into=Sample,
    )
    assert config == Sample(3680.0, 10.0, None, [Meter("sensor.a")])  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.export_limit_w = 1  # type: ignore[misc]


def test_appdaemon_keys_are_excluded_explicitly():
    assert {"module", "class", "priority", "dependencies", "log", "log_level"} <= APPDAEMON_KEYS
    assert app_options({**AD_ARGS, "x": 1}) == {"x": 1}


def test_typo_is_reported_with_did_you_mean_and_example():
    with pytest.raises(ConfigError) as info:
        load_config(SampleSchema, {**AD_ARGS, "export_limt_w": 3680})
    err = info.value
    assert err.app_name == "export_guard"
    assert set(err.keys) == {"export_limt_w", "export_limit_w"}
    text = str(err)
    assert (
        "export_limt_w: unknown key; did you mean 'export_limit_w'? Example: export_limit_w: 3680"
        in text
    )
    assert "export_limit_w: Missing data for required field" in text


def test_every_bad_key_is_named_with_why_and_example():
    args = {
        "export_limit_w": "lots",
        "min_soc_pct": 120,
        "meters": [{"entity_id": "sensor.ok"}, {"entity": "sensor.b"}],
        "colour": "blue",
    }
    with pytest.raises(ConfigError) as info:
        load_config(SampleSchema, args, app_name="guard")
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == {
        "export_limit_w",
        "min_soc_pct",
        "meters[1].entity",
        "meters[1].entity_id",
        "colour",
    }
    assert "Not a valid number" in problems["export_limit_w"].why
    assert "(got 'lots')" in problems["export_limit_w"].why
    assert problems["export_limit_w"].example == "export_limit_w: 3680"
    assert "less than or equal to 100" in problems["min_soc_pct"].why
    assert problems["min_soc_pct"].example == "min_soc_pct: 15"
    assert "did you mean 'entity_id'" in problems["meters[1].entity"].why
    assert problems["meters[1].entity_id"].example == "entity_id: sensor.meter_energy"
    assert "valid keys are: export_limit_w, meters, min_soc_pct, password" in problems["colour"].why
    text = str(info.value)
    assert text.startswith("Gridwatch: guard configuration error (5 problems)")
    assert text.count("\n  - ") == 5


def test_secret_values_never_appear_in_messages():
    with pytest.raises(ConfigError) as info:
        load_config(SampleSchema, {"export_limit_w": 1, "password": 12345678})
    assert "password" in info.value.keys
    assert "12345678" not in str(info.value)


def test_unknown_key_values_never_appear_in_messages():
    # A mistyped secret key must not leak its value either.
    with pytest.raises(ConfigError) as info:
        load_config(SampleSchema, {"export_limit_w": 1, "pasword": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "did you mean 'password'" in str(info.value)


def test_into_checks_the_result_type():
    with pytest.raises(TypeError, match="expected Meter"):
        load_config(SampleSchema, {"export_limit_w": 1}, into=Meter)


@dataclass(frozen=True)
class Window:
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")


class WindowSchema(ConfigSchema):
    # Deliberately misses the low <= high check the dataclass makes.
    config_class = Window
    low = fields.Float(required=True, metadata={"example": 1})
    high = fields.Float(required=True, metadata={"example": 2})


def test_a_value_only_the_build_refuses_is_still_one_config_error():
    with pytest.raises(ConfigError) as caught:
        load_config(WindowSchema, {"name": "w", "low": 5, "high": 1})
    error = caught.value
    assert error.unchecked  # what the fuzz tests assert never happens in our schemas
    assert error.keys == ("(entry)",)
    assert "low 5.0 is above high 1.0" in str(error)


def test_a_schema_checked_error_is_not_unchecked():
    with pytest.raises(ConfigError) as caught:
        load_config(WindowSchema, {"name": "w", "low": "x", "high": 1})
    assert not caught.value.unchecked


class NumbersSchema(ConfigSchema):
    limit_w = DecimalFloat(required=True, metadata={"example": 3680})
    count = DecimalInteger(required=True, metadata={"example": 3})


@pytest.mark.parametrize(
    ("limit", "count", "bad"),
    [
        ("\u0661\u0662\u0663", 3, "limit_w"),  # Arabic-Indic digits: float() reads 123
        ("1_0.5", 3, "limit_w"),  # float() reads 10.5
        (100, "1_0", "count"),  # int() reads 10
        (100, "\uff13", "count"),  # fullwidth 3
    ],
)
def test_numbers_written_as_text_must_be_ascii_decimal(limit, count, bad):
    with pytest.raises(ConfigError) as caught:
        load_config(NumbersSchema, {"name": "n", "limit_w": limit, "count": count})
    assert caught.value.keys == (bad,)


def test_ascii_numbers_as_text_still_load():
    loaded = load_config(NumbersSchema, {"name": "n", "limit_w": " -1.5e3", "count": "+7"})
    assert loaded == {"limit_w": -1500.0, "count": 7}
