"""The ledger's rules, and the whole tally against sums worked out by hand.

The reference below walks a meter's hourly series from the start, by the
rules the tally promises (a row without a sum is a gap, a drop is a reset
never subtracted, each change belongs to the local day its row starts in),
with no windows, no day rows and no kept days. The tally under test reads
the same series only through HA-shaped answers (:mod:`tests.energy.recorder_model`:
day rows carry the day's last sum, HA's alignment, unit conversion) and its
own run loop (cold start, recheck, history, rollovers) on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.config.base import load_config
from gridwatch.config.energy_tally_schema import EnergyTallyConfig, EnergyTallySchema
from gridwatch.energy.ledger import Reset, SumPoint, walk_sums
from gridwatch.energy.periods import local_days_before, tally_periods
from gridwatch.energy.recorder_statistics import COMMAND_TYPE, StatRow
from gridwatch.energy.runner import TallyRunner
from gridwatch.notices.client import NoticeClient
from tests.energy.recorder_model import HOUR, RecorderModel
from tests.support.clock import FakeClock
from tests.support.fake_hass import FakeHass

LOG = logging.getLogger("tests.energy_ledger")
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def row(hour: int, total: float | None) -> StatRow:
    start = T0 + timedelta(hours=hour)
    return StatRow(start, start + HOUR, total)


# --- the rules, row by row -----------------------------------------------------


def test_a_row_without_a_sum_is_a_gap_bridged_by_the_next_sum():
    walk = walk_sums([row(0, 10.0), row(1, None), row(2, 13.0)], SumPoint(T0, 9.0), "s")
    assert walk.kwh == pytest.approx(4.0)  # 1 + the 3 across the gap, landing on hour 2
    assert walk.last == SumPoint(T0 + 3 * HOUR, 13.0)
    assert (walk.rows, walk.sums, walk.unanchored) == (3, 2, False)


def test_the_first_sum_without_a_baseline_counts_nothing():
    # HA's own change would count 2053.269 here (the sum against 0).
    walk = walk_sums([row(0, None), row(1, 2053.269), row(2, 2054.0)], None, "s")
    assert walk.kwh == pytest.approx(0.731)
    assert walk.unanchored


def test_a_drop_is_a_reset_never_subtracted_and_counting_goes_on_from_it():
    walk = walk_sums([row(0, 50.0), row(1, 2.0), row(2, 5.0)], SumPoint(T0, 40.0), "s")
    assert walk.kwh == pytest.approx(10.0 + 3.0)
    assert walk.resets == (Reset("s", T0 + HOUR, -48.0),)


def test_scale_converts_to_kwh():
    walk = walk_sums([row(0, 1500.0), row(1, 4000.0)], SumPoint(T0, 1.0), "s", 0.001)
    assert walk.kwh == pytest.approx(3.0)


# --- the tally end to end on the fake port, against the hand reference -----------


@dataclass
class Series:
    """One meter's hourly sums (None: the row has no sum; absent: no row)."""

    unit: str
    sums: dict[datetime, float | None]


def reference(
    series: Series, zone: ZoneInfo, now: datetime, hourly_from: datetime
) -> tuple[float | None, float | None, int]:
    """(today, month, resets) by hand, in kWh.

    Days from ``hourly_from`` on are reckoned hour by hour; earlier days of the
    month by their day-end sums (the tally's cold read; a day's sum is its
    last row's). Rows not yet compiled at ``now`` do not exist.
    """
    scale = {"Wh": 0.001, "kWh": 1.0}[series.unit]
    rows = sorted((s, v) for s, v in series.sums.items() if s + HOUR <= now)
    today_start = local_days_before(now, 0, zone)
    month_start = tally_periods(now, zone).month_start
    if not any(v is not None for _, v in rows):
        return (None, None, 0)

    def day_of(moment: datetime) -> datetime:
        return local_days_before(moment, 0, zone)

    last: float | None = None
    month = today = 0.0
    resets = 0
    # Before the month, and the month's day-level days: one point per day.
    by_day: dict[datetime, float | None] = {}
    for start, value in rows:
        if start < hourly_from:
            by_day[day_of(start)] = value  # rows are in order: the last one stays
    for day in sorted(by_day):
        value = by_day[day]
        if value is None:
            continue
        value *= scale
        if last is not None and day >= month_start:
            if value < last:
                resets += 1
            else:
                month += value - last
        last = value
    for start, value in rows:
        if start < hourly_from or value is None:
            continue
        value *= scale
        if last is not None:
            if value < last:
                resets += 1
            elif start >= today_start:
                today += value - last
            else:
                month += value - last
        last = value
    return (today, month + today, resets)


ZONES = [ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]
# Runs that cross a DST change (2026-10-25, 2026-03-29 in Europe; 11-01 and
# 03-08 in New York) and month edges.
STARTS = [
    datetime(2026, 10, 23, 20, tzinfo=UTC),
    datetime(2026, 10, 30, 9, tzinfo=UTC),
    datetime(2026, 3, 27, 12, tzinfo=UTC),
    datetime(2026, 3, 6, 23, tzinfo=UTC),
    datetime(2026, 6, 29, 3, tzinfo=UTC),
    datetime(2026, 2, 27, 15, tzinfo=UTC),
    datetime(2026, 6, 12, 10, tzinfo=UTC),
]

# Mostly use; now and then an empty sum, a missing row or a drop.
step = st.integers(0, 39).flatmap(
    lambda k: (
        st.just(("blank", 0.0))
        if k == 0
        else st.just(("missing", 0.0))
        if k == 1
        else st.floats(0.5, 30.0).map(lambda d: ("drop", round(d, 3)))
        if k == 2
        else st.floats(0.0, 4.0).map(lambda c: ("use", round(c, 3)))
    )
)


def build(
    steps: list[tuple[str, float]], first: datetime, unit: str, keep: set[datetime]
) -> Series:
    """Hourly rows from ``first``; ``keep`` hours always have a sum."""
    factor = 1000.0 if unit == "Wh" else 1.0
    total = 5000.0  # a meter's lifetime reading: never published
    sums: dict[datetime, float | None] = {}
    for i, (kind, amount) in enumerate(steps):
        hour = first + i * HOUR
        if kind == "drop":
            total = max(0.0, total - amount)
        elif kind == "use":
            total += amount
        if kind == "blank" and hour not in keep:
            sums[hour] = None
        elif kind == "missing" and hour not in keep:
            continue
        else:
            sums[hour] = round(total * factor, 6)
    return Series(unit, sums)


def hourly_reckoned_from(zone: ZoneInfo, started: datetime, run_hours: int) -> datetime:
    """From which day on the run's rechecks reckoned the final month hour by hour.

    The schedule, not the arithmetic: the first cycle (and the first of a new
    month) reads the month's day rows; every cycle, that one too, re-reads
    the last two complete days hour by hour.
    """
    month = None
    first_window: datetime | None = None
    for k in range(run_hours + 1):
        periods = tally_periods(started + k * HOUR, zone)
        if periods.month_start != month:
            month, first_window = periods.month_start, None
        window = max(periods.month_start, local_days_before(periods.today_start, 2, zone))
        if first_window is None and window < periods.today_start:
            first_window = window
    end = tally_periods(started + run_hours * HOUR, zone)
    return first_window if first_window is not None else end.today_start


def last_hour_before(moment: datetime) -> datetime:
    """The UTC hour row that starts last before ``moment`` (a local midnight)."""
    return (moment - timedelta(seconds=1)).replace(minute=0, second=0, microsecond=0)


def boot(zone: ZoneInfo, start: datetime, model: RecorderModel, options: dict) -> FakeHass:
    hass = FakeHass(FakeClock(wall=start))

    def respond(command):
        model.compiled_until = hass.now()  # hours compile as they end
        return model.answer(command)

    hass.script_websocket(COMMAND_TYPE, *([respond] * 2000))
    hass.script_websocket("get_config", *([{"time_zone": zone.key}] * 10))
    return hass


def tally_config(series: dict[str, Series], request_units: bool) -> EnergyTallyConfig:
    meters = [
        {"statistic_id": sid, "name": sid.split(".")[1], "role": "import", "unit": s.unit}
        for sid, s in series.items()
    ]
    args = {"meters": meters, "request_units": request_units, "interval_s": 3600}
    return load_config(EnergyTallySchema, args, into=EnergyTallyConfig)


def published(hass: FakeHass, entity_id: str) -> float | None:
    entity = hass.state_of(entity_id)
    assert entity is not None, entity_id
    return None if entity.raw == "unknown" else float(entity.raw or "nan")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    start=st.sampled_from(STARTS),
    offset_min=st.integers(0, 23 * 60),
    run_hours=st.integers(1, 30),
    steps=st.lists(st.lists(step, min_size=160, max_size=160), min_size=1, max_size=2),
    units=st.lists(st.sampled_from(["Wh", "kWh"]), min_size=2, max_size=2),
    request_units=st.booleans(),
)
def test_tally_matches_sums_worked_out_by_hand(
    zone, start, offset_min, run_hours, steps, units, request_units
):
    started = start + timedelta(minutes=offset_min) + timedelta(minutes=20)
    started = started.replace(second=0)
    end = started + timedelta(hours=run_hours)
    cold_periods = tally_periods(started, zone)
    end_periods = tally_periods(end, zone)
    # Generated hours from 100 h before the cold start's midnight (through
    # the run's end); steady use before that, back to before the month.
    detail = cold_periods.today_start.replace(minute=0) - timedelta(hours=100)
    first = min(detail, cold_periods.month_start.replace(minute=0) - timedelta(hours=60))
    steady = int((detail - first) / HOUR)
    hourly_from = hourly_reckoned_from(zone, started, run_hours)
    # The hours just before the month and before the hourly reckoning carry
    # a sum: the baseline there is a convention tested by example below.
    keep = {
        last_hour_before(cold_periods.month_start),
        last_hour_before(end_periods.month_start),
        last_hour_before(hourly_from),
    }
    model = RecorderModel(zone)
    series: dict[str, Series] = {}
    for i, meter_steps in enumerate(steps):
        s = build([("use", 1.0)] * steady + meter_steps, first, units[i], keep)
        series[f"sensor.m{i}"] = s
        model.stats[f"sensor.m{i}"] = model_stat(s)
    hass = boot(zone, started, model, {})
    cfg = tally_config(series, request_units)

    runner = TallyRunner(cfg, hass, NoticeClient(hass, "energy_tally"), "energy_tally", LOG)

    async def run() -> None:
        await runner.start()
        await hass.advance((end - started).total_seconds())
        await runner.stop()

    asyncio.run(run())
    now = hass.now()
    for sid, s in series.items():
        today, month, resets = reference(s, zone, now, hourly_from)
        slug = sid.split(".")[1]
        got_today = published(hass, f"sensor.{slug}_energy_today")
        got_month = published(hass, f"sensor.{slug}_energy_this_month")
        if today is None:
            assert got_today is None
            assert got_month is None
            continue
        assert got_today == pytest.approx(today, abs=0.0015), (sid, now)
        assert got_month == pytest.approx(month, abs=0.0015), (sid, now)
        entity = hass.state_of(f"sensor.{slug}_energy_this_month")
        assert entity is not None
        assert entity.attributes["resets"] == resets


def model_stat(series: Series):
    from tests.energy.recorder_model import Statistic

    return Statistic(
        unit=series.unit,
        hours={h: (v, v) for h, v in series.sums.items()},
    )
