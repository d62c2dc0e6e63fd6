"""The published entities: ids, states, HA energy attributes, stale marking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.entities import meter_entity_ids, tally_entities
from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import StatRow
from gridwatch.energy.tally import Meter, Role, compute_tally, compute_tally_from
from gridwatch.hass.states import slugify

BERLIN = ZoneInfo("Europe/Berlin")
PERIODS = tally_periods(datetime(2026, 6, 15, 10, 0, tzinfo=UTC), BERLIN)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Grid import", "grid_import"),
        ("Wärmepumpe (EG)", "warmepumpe_eg"),
        ("  PV--East  ", "pv_east"),
        ("Meter 2", "meter_2"),
        ("!!!", ""),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def build(stale: bool = False):
    meters = [
        Meter("sensor.grid_in", "Grid in", "grid_in", Role.IMPORT),
        Meter("sensor.new", "New", "new", Role.EXPORT),
    ]
    rows = {
        "sensor.grid_in": (
            # The hour before midnight gives the baseline sum.
            StatRow(PERIODS.today_start - timedelta(hours=1), PERIODS.today_start, 100.0),
            StatRow(PERIODS.today_start, PERIODS.today_start.replace(hour=23), 101.23456),
        )
    }
    tally = compute_tally(meters, rows, {}, {}, PERIODS, zone=BERLIN)
    return {u.entity_id: u for u in tally_entities(tally, "energy_tally", BERLIN, stale=stale)}


def test_meter_entities_carry_what_the_energy_dashboard_needs():
    updates = build()

    today = updates["sensor.grid_in_energy_today"]
    month = updates["sensor.grid_in_energy_this_month"]
    assert today.state == "1.235"
    assert month.state == "1.235"
    for update in (today, month):
        assert update.attributes["unit_of_measurement"] == "kWh"
        assert update.attributes["device_class"] == "energy"
        assert update.attributes["state_class"] == "total"
        assert update.attributes["stale"] is False
        assert update.attributes["statistic_id"] == "sensor.grid_in"
    assert datetime.fromisoformat(today.attributes["last_reset"]) == PERIODS.today_start
    assert datetime.fromisoformat(month.attributes["last_reset"]) == PERIODS.month_start
    # Local offset, readable in HA's UI.
    assert today.attributes["last_reset"] == "2026-06-15T00:00:00+02:00"


def test_unknown_meter_and_its_role_total_are_unknown():
    updates = build()

    assert updates["sensor.new_energy_today"].state == "unknown"
    assert updates["sensor.energy_tally_export_today"].state == "unknown"
    assert updates["sensor.energy_tally_export_today"].attributes["missing_meters"] == ["New"]
    assert updates["sensor.energy_tally_import_this_month"].state == "1.235"
    assert updates["sensor.energy_tally_import_this_month"].attributes["meters"] == ["Grid in"]
    # Totals carry the cycle time, so each cycle refreshes them in HA.
    assert updates["sensor.energy_tally_import_today"].attributes["as_of"] == (
        "2026-06-15T12:00:00+02:00"
    )
    assert "as_of" not in updates["sensor.grid_in_energy_today"].attributes


def test_every_entity_of_a_stale_tally_says_so():
    updates = build(stale=True)

    assert set(updates) == {
        *meter_entity_ids(Meter("sensor.grid_in", "Grid in", "grid_in")),
        *meter_entity_ids(Meter("sensor.new", "New", "new")),
        "sensor.energy_tally_import_today",
        "sensor.energy_tally_import_this_month",
        "sensor.energy_tally_export_today",
        "sensor.energy_tally_export_this_month",
    }
    assert all(u.attributes["stale"] is True for u in updates.values())


def test_a_meter_waiting_for_its_read_is_stale_with_the_reason_and_so_is_its_role_total():
    meters = [
        Meter("sensor.grid_in", "Grid in", "grid_in", Role.IMPORT),
        Meter("sensor.pv", "PV", "pv", Role.PV),
    ]
    tally = compute_tally_from(
        meters, {}, {}, {}, PERIODS, waiting={"sensor.grid_in": "imported later; next cycle"}
    )
    updates = {u.entity_id: u for u in tally_entities(tally, "energy_tally", BERLIN)}

    month = updates["sensor.grid_in_energy_this_month"].attributes
    assert (month["stale"], month["stale_reason"]) == (True, "imported later; next cycle")
    assert updates["sensor.energy_tally_import_this_month"].attributes["stale"] is True
    assert updates["sensor.energy_tally_import_this_month"].attributes["stale_meters"] == [
        "Grid in"
    ]
    # Others are not touched by it.
    assert updates["sensor.pv_energy_this_month"].attributes["stale"] is False
    assert updates["sensor.energy_tally_pv_this_month"].attributes["stale"] is False


def test_entities_of_meters_and_roles_no_longer_configured_are_retired():
    from gridwatch.energy.entities import REMOVED_REASON, registry_entity, removed_entities
    from gridwatch.hass.ports import EntityState

    before = [
        Meter("sensor.a", "A", "a", Role.IMPORT),
        Meter("sensor.b", "B", "b", Role.EXPORT),
    ]
    now = [Meter("sensor.a", "A", "a", Role.IMPORT), Meter("sensor.b", "B 2", "b_2")]
    written = registry_entity("energy_tally", before)
    previous = EntityState(written.entity_id, str(written.state), written.attributes)

    retired = {u.entity_id: u for u in removed_entities(previous, now, "energy_tally")}

    assert set(retired) == {
        "sensor.b_energy_today",
        "sensor.b_energy_this_month",
        "sensor.energy_tally_export_today",
        "sensor.energy_tally_export_this_month",
    }
    for update in retired.values():
        assert update.state == "unavailable"
        assert update.attributes["reason"] == REMOVED_REASON
        assert update.attributes["stale"] is True
    assert removed_entities(None, now, "energy_tally") == []
    # A registry spoiled by hand is read safely.
    junk = EntityState(written.entity_id, "2", {"meter_slugs": "a", "roles": [1, "x"]})
    assert removed_entities(junk, now, "energy_tally") == []
