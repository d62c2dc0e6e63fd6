"""The energy tally's apps.yaml schema."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.config.base import ConfigError, load_config
from gridwatch.config.energy_tally_schema import (
    DEFAULT_REFRESH_EVENT,
    EnergyTallyConfig,
    EnergyTallySchema,
)
from gridwatch.energy.periods import zone_of
from gridwatch.energy.tally import Role
from gridwatch.energy.units import EnergyUnit

GOOD = {
    "name": "energy_tally",
    "module": "gridwatch_energy_tally",
    "class": "EnergyTally",
    "meters": [
        {"statistic_id": "sensor.grid_import_energy", "name": "Grid import", "role": "import"},
        {"statistic_id": "tibber:energy_pv", "name": "PV roof", "unit": "Wh"},
    ],
}


def load(args):
    return load_config(EnergyTallySchema, args, into=EnergyTallyConfig)


def test_defaults_and_meters():
    config = load(GOOD)

    assert config.interval_s == 300
    assert config.refresh_event == DEFAULT_REFRESH_EVENT
    assert config.failure_threshold == 3
    assert config.request_units is True
    assert config.time_zone is None
    assert config.recheck_days == 2
    assert config.reset_tolerance_kwh == 0.001
    grid, pv = config.meters
    assert (grid.slug, grid.role, grid.unit) == ("grid_import", Role.IMPORT, EnergyUnit.KWH)
    assert (pv.statistic_id, pv.slug, pv.role, pv.unit) == (
        "tibber:energy_pv",
        "pv_roof",
        None,
        EnergyUnit.WH,
    )


@pytest.mark.parametrize(
    ("change", "bad_key"),
    [
        ({"meters": []}, "meters"),
        ({"interval_s": 5}, "interval_s"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"recheck_days": 0}, "recheck_days"),
        # More hourly rows of 500 meters than AppDaemon's 4 MiB message cap allows.
        ({"recheck_days": 5}, "recheck_days"),
        ({"recheck_days": "two"}, "recheck_days"),
        ({"reset_tolerance_kwh": -0.001}, "reset_tolerance_kwh"),
        ({"reset_tolerance_kwh": 2}, "reset_tolerance_kwh"),
        ({"reset_tolerance_kwh": "nan"}, "reset_tolerance_kwh"),
        ({"refresh_event": "Refresh Now"}, "refresh_event"),
        ({"meters": [{"statistic_id": "Grid Import", "name": "x"}]}, "meters[0].statistic_id"),
        (
            {"meters": [{"statistic_id": "sensor.a", "name": "x", "role": "imported"}]},
            "meters[0].role",
        ),
        ({"meters": [{"statistic_id": "sensor.a", "name": "x", "unit": "kW"}]}, "meters[0].unit"),
        ({"meters": [{"statistic_id": "sensor.a", "name": "!!"}]}, "meters[0].name"),
        ({"meters": [{"statistic_id": "sensor.a"}]}, "meters[0].name"),
        (
            {
                "meters": [
                    {"statistic_id": "sensor.a", "name": "A"},
                    {"statistic_id": "sensor.a", "name": "B"},
                ]
            },
            "meters",
        ),
        (
            {
                "meters": [
                    {"statistic_id": "sensor.a", "name": "A b"},
                    {"statistic_id": "sensor.b", "name": "a-B"},
                ]
            },
            "meters",
        ),
        ({"intervall": 60}, "intervall"),
    ],
)
def test_bad_values_name_the_key(change, bad_key):
    with pytest.raises(ConfigError) as info:
        load(GOOD | change)

    assert bad_key in info.value.keys


def test_every_field_has_an_example():
    for schema in (EnergyTallySchema(), EnergyTallySchema().fields["meters"].inner.schema):
        for name, field in schema.fields.items():
            assert "example" in field.metadata, name


def test_zone_of_appdaemon_and_stdlib_zones():
    import pytz  # AppDaemon's own zone type

    assert str(zone_of(pytz.timezone("Europe/Berlin"))) == "Europe/Berlin"
    assert str(zone_of(dt.UTC)) == "UTC"
    assert zone_of(dt.timezone(dt.timedelta(hours=2))) is None
