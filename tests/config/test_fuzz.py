"""Fuzz every app's schema (issue 12): whatever an apps.yaml entry holds,
``load_config`` gives a config or a ConfigError that the schema itself
found, never a traceback and never a value only the building refused.

Each schema gets FUZZ_ENTRIES generated entries: mostly good entries with
one to three keys changed at any depth (see tests/config/schema_fuzz.py),
some built from scratch. Derandomized under CI=true (tests/conftest.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from marshmallow import Schema

from gridwatch.config.base import APPDAEMON_KEYS, ConfigError, load_config
from gridwatch.config.energy_tally_schema import EnergyTallySchema
from gridwatch.config.export_guard_schema import ExportGuardSchema
from gridwatch.config.link_monitor_schema import LinkMonitorSchema
from gridwatch.config.notifier_schema import NotifierSchema
from tests.config import test_energy_tally, test_export_guard, test_link_monitor
from tests.config.schema_fuzz import fuzz_entries

# Four long, independent, CPU-bound tests: ./run test deals them out to its
# workers one by one (tests/conftest.py).
SPLIT_ACROSS_WORKERS = True

# The issue asks for at least 10,000 entries per schema: BATCH entries per
# hypothesis example, which spreads the engine's per-example cost.
BATCH = 10
FUZZ_ENTRIES = 10_000
FUZZ = settings(
    max_examples=FUZZ_ENTRIES // BATCH,
    # No example database: CI has none to replay from; a failure still shrinks.
    phases=(Phase.generate, Phase.shrink),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _options(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(entry).items() if k not in APPDAEMON_KEYS}


# Known-good entries the mutations start from: the schema tests' own.
NOTIFIER_GOOD = {
    "min_repost_s": 30,
    "push_services": ["notify.mobile_app_phone", "notify/family"],
    "repeat_minutes": 15,
    "tick_s": 5,
    "state_file": "/config/n.json",
}
GUARD_GOOD = {
    **_options(test_export_guard.MINIMAL),
    "readings": {
        **test_export_guard.MINIMAL["readings"],
        "soc": {"entity": "sensor.battery_soc", "max_age_s": 900, "min": 5, "max": 100},
        "pv_power": {"entity": "sensor.pv_power"},
    },
    "request_entity": "input_boolean.discharge_request",
}
LINKS_GOOD = _options(test_link_monitor.GOOD)
TALLY_GOOD = _options(test_energy_tally.GOOD)

# Instances: building a schema is costly, loading with one is not.
CASES = {
    "notifier": (NotifierSchema(), [NOTIFIER_GOOD, {}]),
    "link_monitor": (LinkMonitorSchema(), [LINKS_GOOD]),
    "export_guard": (ExportGuardSchema(), [GUARD_GOOD]),
    "energy_tally": (EnergyTallySchema(), [TALLY_GOOD]),
}


def batches(case: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(fuzz_entries(*CASES[case]), min_size=BATCH, max_size=BATCH)


def check(schema: Schema, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        # Anything but a ConfigError escapes and fails the test by itself.
        error: ConfigError | None = None
        try:
            load_config(schema, {"name": "fuzzed", **entry})
        except ConfigError as err:
            error = err
        if error is not None:
            assert not error.unchecked, f"validation let this through: {error}"
            assert error.problems


def test_the_good_entries_load() -> None:
    # Otherwise the mutations would start from an error and prove little.
    for schema, goods in CASES.values():
        for good in goods:
            load_config(schema, {"name": "fuzzed", **good})


def fuzz(case: str) -> int:
    """Run the fuzz of one case; return how many entries it checked."""
    schema = CASES[case][0]
    checked = 0

    @FUZZ
    @given(batches(case))
    def run(entries: list[dict[str, Any]]) -> None:
        nonlocal checked
        check(schema, entries)
        checked += len(entries)

    run()
    return checked


# An example hypothesis drops (one that outgrew its buffer) checks nothing:
# each test counts the entries really checked.


def test_notifier_schema_fuzz() -> None:
    assert fuzz("notifier") >= FUZZ_ENTRIES


def test_link_monitor_schema_fuzz() -> None:
    assert fuzz("link_monitor") >= FUZZ_ENTRIES


def test_export_guard_schema_fuzz() -> None:
    assert fuzz("export_guard") >= FUZZ_ENTRIES


def test_energy_tally_schema_fuzz() -> None:
    assert fuzz("energy_tally") >= FUZZ_ENTRIES


@pytest.mark.parametrize(
    ("schema", "entry"),
    [
        # The entries the independent fault run found (issue 12).
        (LinkMonitorSchema, {"links": [{"name": "a", "http": {"url": "http://[::1"}}]}),
        (LinkMonitorSchema, {"links": [{"name": "a", "http": {"url": "http://h:99999"}}]}),
        (LinkMonitorSchema, {"links": [{"name": "a", "http": {"url": "http://:80"}}]}),
        (
            ExportGuardSchema,
            {
                **GUARD_GOOD,
                "readings": {**GUARD_GOOD["readings"], "soc": {"entity": "sensor.s", "min": 150}},
            },
        ),
        (
            ExportGuardSchema,
            {
                **GUARD_GOOD,
                "readings": {
                    **GUARD_GOOD["readings"],
                    "export_today": {"entity": "sensor.e", "max": -1},
                },
            },
        ),
    ],
)
def test_found_entries_are_schema_errors(schema: type[Schema], entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(schema, {"name": "x", **entry})
    assert not caught.value.unchecked
