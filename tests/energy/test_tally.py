"""Tally arithmetic: DST days, month starts, resets, missing data, units.

Answers come from :class:`RecorderModel` (HA's statistics semantics), so each
case exercises request building, parsing and arithmetic together.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import month_request, parse_statistics, today_request
from gridwatch.energy.tally import LiveReading, Meter, Role, Tally, compute_tally
from gridwatch.energy.units import EnergyUnit
from tests.energy.recorder_model import RecorderModel

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def meter(sid: str, role: Role | None = None, unit: EnergyUnit = EnergyUnit.KWH) -> Meter:
    name = sid.split(".")[-1]
    return Meter(statistic_id=sid, name=name, slug=name, role=role, unit=unit)


def complete_hours(first: datetime, now: datetime) -> int:
    """Hours the recorder has compiled by ``now`` (each row ends <= now)."""
    return int((now.replace(minute=0, second=0, microsecond=0) - first) / HOUR)


def run(
    model: RecorderModel,
    meters: list[Meter],
    now: datetime,
    live: dict[str, LiveReading] | None = None,
    request_units: bool = True,
) -> Tally:
    periods = tally_periods(now, model.zone)
    ids = [m.statistic_id for m in meters]
    return compute_tally(
        meters,
        parse_statistics(model.answer(today_request(ids, periods, request_units=request_units))),
        parse_statistics(
            model.answer(
                month_request(ids, periods.month_start, periods, request_units=request_units)
            )
        ),
        live or {},
        periods,
        zone=model.zone,
        units_requested=request_units,
    )


@pytest.mark.parametrize(
    ("now", "today", "month"),
    [
        pytest.param("2026-06-15T08:42", 10, 346, id="ordinary-day"),
        # 29 March has 23 hours; the next morning counts them all once.
        pytest.param("2026-03-30T05:30", 7, 702, id="after-23h-day"),
        # 25 October has 25 hours.
        pytest.param("2026-10-26T05:30", 6, 607, id="after-25h-day"),
        pytest.param("2026-10-25T22:59", 24, 600, id="last-minute-of-25h-day"),
        pytest.param("2026-03-29T21:59", 22, 694, id="last-minute-of-23h-day"),
        # 01:10 local on the 1st: one complete hour, October not counted.
        pytest.param("2026-11-01T00:10", 1, 1, id="first-hour-of-month"),
        # 00:05 local on the 1st: nothing compiled yet, but known: 0, not unknown.
        pytest.param("2026-10-31T23:05", 0, 0, id="month-rollover-at-midnight"),
        pytest.param("2026-10-31T22:59", 23, 744, id="last-minute-of-month"),
    ],
)
def test_one_kwh_per_hour(now, today, month):
    model = RecorderModel(BERLIN)
    first = utc("2026-02-15T00:00")
    model.add_hours("sensor.a", first, [1.0] * complete_hours(first, utc(now)))

    result = run(model, [meter("sensor.a")], utc(now)).meters[0]

    assert result.today_kwh == pytest.approx(today)
    assert result.month_kwh == pytest.approx(month)
    assert result.resets == ()


def test_meter_without_statistics_is_unknown_not_zero():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-15T00:00"), [2.0] * 3)

    tally = run(
        model,
        [meter("sensor.a", Role.IMPORT), meter("sensor.new", Role.IMPORT)],
        utc("2026-06-15T03:10"),
    )

    known, unknown = tally.meters
    assert known.today_kwh == pytest.approx(6.0)
    assert (unknown.today_kwh, unknown.month_kwh, unknown.partial_hour_kwh) == (None, None, None)
    # A total missing a meter would under-report: unknown, naming the meter.
    total = tally.totals[Role.IMPORT]
    assert (total.today_kwh, total.month_kwh) == (None, None)
    assert total.missing == ("new",)


def test_negative_change_today_is_reported_not_subtracted():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-15T00:00"), [1.0, 2.0, -5.0, 1.5])

    result = run(model, [meter("sensor.a")], utc("2026-06-15T04:00")).meters[0]

    assert result.today_kwh == pytest.approx(4.5)
    assert result.month_kwh == pytest.approx(4.5)
    (reset,) = result.resets
    assert reset.start == utc("2026-06-15T02:00")
    assert reset.change_kwh == pytest.approx(-5.0)


def test_negative_day_earlier_in_month_is_not_subtracted():
    model = RecorderModel(BERLIN)
    # 2 June (local) nets -10 kWh: a replacement meter starting lower.
    model.add_hours("sensor.a", utc("2026-05-31T21:00"), [0.0])
    model.add_hours("sensor.a", utc("2026-06-01T22:00"), [-14.0] + [1.0] * 4)
    model.add_hours("sensor.a", utc("2026-06-03T22:00"), [1.0] * 4, start_sum=-10, start_state=-10)

    result = run(model, [meter("sensor.a")], utc("2026-06-04T02:30")).meters[0]

    assert result.today_kwh == pytest.approx(4.0)
    # The 4 kWh used on 2 June after the drop count: a cold read reckons the
    # day hour by hour, never netting the drop against the day's use.
    assert result.month_kwh == pytest.approx(8.0)
    assert [r.start for r in result.resets] == [utc("2026-06-01T22:00")]


def test_rows_without_a_sum_are_skipped():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-15T00:00"), [1.0, 1.0])
    periods = tally_periods(utc("2026-06-15T02:10"), BERLIN)
    rows = parse_statistics(model.answer(today_request(["sensor.a"], periods)))["sensor.a"]
    with_gap = {"sensor.a": (*rows[:-1], replace(rows[-1], sum=None))}

    result = compute_tally([meter("sensor.a")], with_gap, {}, {}, periods, zone=BERLIN).meters[0]

    assert result.today_kwh == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("stored_unit", "changes", "request_units", "configured_unit", "expected"),
    [
        pytest.param("Wh", [1000.0, 500.0], True, EnergyUnit.KWH, 1.5, id="recorder-converts-Wh"),
        pytest.param("MWh", [0.002], True, EnergyUnit.KWH, 2.0, id="recorder-converts-MWh"),
        pytest.param("Wh", [1000.0, 500.0], False, EnergyUnit.WH, 1.5, id="tally-converts-Wh"),
        pytest.param("kWh", [1.0, 0.5], False, EnergyUnit.KWH, 1.5, id="kWh-as-is"),
    ],
)
def test_unit_conversion(stored_unit, changes, request_units, configured_unit, expected):
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-15T00:00"), changes, unit=stored_unit)

    result = run(
        model,
        [meter("sensor.a", unit=configured_unit)],
        utc("2026-06-15T03:00"),
        request_units=request_units,
    ).meters[0]

    assert result.today_kwh == pytest.approx(expected)
    assert result.month_kwh == pytest.approx(expected)


# --- the live partial hour ---------------------------------------------------


def seeded(state_after: float) -> RecorderModel:
    """Three 1 kWh hours from 00:00 UTC 15 June; the reading ends at ``state_after``."""
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-15T00:00"), [1.0] * 3, start_state=state_after - 3)
    return model


@pytest.mark.parametrize(
    ("live", "partial", "resets"),
    [
        pytest.param(LiveReading(1000.4, EnergyUnit.KWH), 0.4, 0, id="kWh"),
        pytest.param(LiveReading(1_000_250.0, EnergyUnit.WH), 0.25, 0, id="Wh-live-reading"),
        pytest.param(LiveReading(1000.0, EnergyUnit.KWH), 0.0, 0, id="no-use-yet"),
        pytest.param(LiveReading(3.0, EnergyUnit.KWH), 0.0, 1, id="meter-reset"),
        pytest.param(LiveReading(None, EnergyUnit.KWH), None, 0, id="unavailable"),
        pytest.param(LiveReading(1000.4, None), None, 0, id="no-unit"),
    ],
)
def test_live_partial_hour(live, partial, resets):
    result = run(
        seeded(1000.0), [meter("sensor.a")], utc("2026-06-15T03:20"), {"sensor.a": live}
    ).meters[0]

    if partial is None:
        assert result.partial_hour_kwh is None
    else:
        assert result.partial_hour_kwh == pytest.approx(partial)
    assert result.today_kwh == pytest.approx(3.0 + (partial or 0.0))
    assert result.month_kwh == pytest.approx(3.0 + (partial or 0.0))
    assert len(result.resets) == resets


def test_partial_hour_after_midnight_uses_the_hour_before_midnight():
    model = RecorderModel(BERLIN)
    # Last hour of 14 June local (21:00-22:00 UTC); reading 50 kWh at midnight.
    # The meter's history starts the day before (its first day counts from
    # its first sum, see test_ledger).
    model.add_hours("sensor.a", utc("2026-06-13T21:00"), [0.0] * 24 + [1.0], start_state=49.0)

    result = run(
        model,
        [meter("sensor.a")],
        utc("2026-06-14T22:30"),
        {"sensor.a": LiveReading(50.7, EnergyUnit.KWH)},
    ).meters[0]

    assert result.today_kwh == pytest.approx(0.7)
    # The hour before midnight is still June: it counts for the month only.
    assert result.month_kwh == pytest.approx(1.7)


def test_no_partial_hour_from_a_baseline_before_midnight():
    model = RecorderModel(BERLIN)
    # The hour before midnight is not compiled yet; 20:00-21:00 UTC is older
    # than midnight (22:00 UTC) and would count yesterday's energy as today's.
    model.add_hours("sensor.a", utc("2026-06-14T20:00"), [1.0], start_state=49.0)

    result = run(
        model,
        [meter("sensor.a")],
        utc("2026-06-14T22:01"),
        {"sensor.a": LiveReading(51.0, EnergyUnit.KWH)},
    ).meters[0]

    assert result.partial_hour_kwh is None
    assert result.today_kwh == 0.0


# --- properties --------------------------------------------------------------

ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
MONTH_START = utc("2026-03-01T00:00")


@settings(max_examples=60, deadline=None)
@given(
    zone=ZONES,
    changes=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=24 * 40),
    minutes=st.integers(0, 24 * 40 * 60),
)
def test_today_never_exceeds_month_for_non_negative_changes(zone, changes, minutes):
    model = RecorderModel(ZoneInfo(zone))
    first = MONTH_START - timedelta(days=3)
    now = first + timedelta(minutes=minutes)
    model.add_hours("sensor.a", first, changes[: complete_hours(first, now)])

    result = run(model, [meter("sensor.a")], now).meters[0]

    if result.today_kwh is not None and result.month_kwh is not None:
        assert 0.0 <= result.today_kwh <= result.month_kwh + 1e-9
        assert result.resets == ()


@settings(max_examples=60, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(list(Role)),
            st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=72),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_role_total_is_the_sum_of_its_meters(plan):
    model = RecorderModel(BERLIN)
    now = utc("2026-06-03T12:00")
    meters = []
    for i, (role, changes) in enumerate(plan):
        sid = f"sensor.m{i}"
        model.add_hours(sid, now - HOUR * len(changes), changes)
        meters.append(meter(sid, role))

    tally = run(model, meters, now)

    for role, total in tally.totals.items():
        members = [m for m in tally.meters if m.meter.role is role]
        assert total.today_kwh is not None
        assert total.month_kwh is not None
        assert math.isclose(total.today_kwh, sum(m.today_kwh or 0 for m in members), abs_tol=1e-9)
        assert math.isclose(total.month_kwh, sum(m.month_kwh or 0 for m in members), abs_tol=1e-9)
    assert set(tally.totals) == {role for role, _ in plan}


def test_half_hour_offset_zone_counts_each_utc_hour_by_its_local_start():
    # India (UTC+5:30): local midnight falls mid-way through a recorder hour.
    # Like HA's own day period, the hour starting 23:30 local is yesterday's.
    model = RecorderModel(ZoneInfo("Asia/Kolkata"))
    first = utc("2026-05-20T00:00")
    now = utc("2026-06-15T08:42")
    model.add_hours("sensor.a", first, [1.0] * complete_hours(first, now))

    result = run(model, [meter("sensor.a")], now).meters[0]

    assert result.today_kwh == pytest.approx(13)  # 19:00Z .. 07:00Z rows
    assert result.month_kwh == pytest.approx(14 * 24 + 13)
