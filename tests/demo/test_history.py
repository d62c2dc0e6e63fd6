"""The demo's past: rows HA's recorder would have written for a real site."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from demo.entities import GRID_EXPORT_ENERGY, GRID_IMPORT_ENERGY, PV_ENERGY
from demo.history import GAP_DAYS_AGO, GAP_HOURS, RESET_DAYS_AGO, RESET_HOUR, build_history
from demo.site_model import SiteState

ZONE = ZoneInfo("Europe/Amsterdam")
COUNTERS = SiteState(imported_kwh=4210.0, exported_kwh=1830.0, pv_kwh=6120.0, battery_out_kwh=950)
moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=25, deadline=None)
@given(now=moments)
def test_rows_join_the_live_meter_and_count_every_hour(now: datetime) -> None:
    histories = build_history(now, ZONE, COUNTERS)
    readings = {
        "sensor.grid_import_energy": COUNTERS.imported_kwh,
        "sensor.grid_export_energy": COUNTERS.exported_kwh,
        "sensor.pv_energy": COUNTERS.pv_kwh,
        "sensor.battery_discharge_energy": COUNTERS.battery_out_kwh,
    }
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for history in histories:
        rows = history.rows
        # Ends at the last complete hour with HA's zero point: the live meter's reading.
        assert rows[-1]["start"] == last_hour
        assert rows[-1]["sum"] == 0
        assert rows[-1]["state"] == readings[history.sensor.entity_id]
        starts = [r["start"] for r in rows]
        assert all(s.minute == 0 and s.second == 0 and s.tzinfo is not None for s in starts)
        assert starts == sorted(set(starts))
        # A meter's sum never runs backwards (HA's energy dashboard reads it).
        sums = [r["sum"] for r in rows]
        assert all(b >= a for a, b in itertools.pairwise(sums))
        # More than a month back, from a local midnight.
        first = starts[0].astimezone(ZONE)
        assert (now.astimezone(ZONE).date() - first.date()).days >= 40
        assert first.hour == 0


@settings(max_examples=25, deadline=None)
@given(now=moments)
def test_one_gap_and_one_replaced_meter(now: datetime) -> None:
    histories = {h.sensor.entity_id: h.rows for h in build_history(now, ZONE, COUNTERS)}
    local_today = now.astimezone(ZONE).date()
    for rows in histories.values():
        starts = [r["start"] for r in rows]
        missing = [
            a + timedelta(hours=1)
            for a, b in itertools.pairwise(starts)
            if b - a > timedelta(hours=1)
        ]
        gap_local = [m.astimezone(ZONE) for m in missing]
        assert len(missing) == 1  # one gap (its hours are consecutive)
        assert (local_today - gap_local[0].date()).days == GAP_DAYS_AGO
        assert gap_local[0].hour == GAP_HOURS.start
    imports = histories[GRID_IMPORT_ENERGY.entity_id]
    drops = [(a, b) for a, b in itertools.pairwise(imports) if b["state"] < 0.9 * a["state"]]
    assert len(drops) == 1
    before, after = drops[0]
    local = after["start"].astimezone(ZONE)
    assert (local_today - local.date()).days == RESET_DAYS_AGO
    assert local.hour == RESET_HOUR
    # The recorder absorbed the reset: the sum moved by the hour's energy only.
    assert 0 <= after["sum"] - before["sum"] < 5
    for sid in (GRID_EXPORT_ENERGY.entity_id, PV_ENERGY.entity_id):
        states = [r["state"] for r in histories[sid]]
        assert all(b >= a for a, b in itertools.pairwise(states))


def test_pv_is_zero_at_night_and_export_needs_a_source() -> None:
    now = datetime(2026, 6, 20, 12, 30, tzinfo=UTC)
    h = {x.sensor.entity_id: x.rows for x in build_history(now, ZONE, COUNTERS)}
    pv = h[PV_ENERGY.entity_id]
    exported = h[GRID_EXPORT_ENERGY.entity_id]
    for a, b in itertools.pairwise(pv):
        hour = b["start"].astimezone(ZONE).hour
        if b["start"] - a["start"] == timedelta(hours=1) and hour in (0, 1, 2, 3, 23):
            assert b["sum"] == a["sum"]
    # A sunny June: each full day exports something and produces more than it exports.
    daily_pv = pv[-1]["sum"] - pv[0]["sum"]
    daily_export = exported[-1]["sum"] - exported[0]["sum"]
    assert 0 < daily_export < daily_pv
