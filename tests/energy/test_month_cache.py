"""The month's complete days kept between cycles (lib/gridwatch/energy/month_cache.py).

Validity across local day and month rollovers (DST days included), a changed
meter set, forced refetches, the settle time after midnight, and the
property that matters: a cycle using the kept days computes exactly what a
cycle sending both requests computes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.energy.month_cache import (
    SETTLE_GRACE,
    MonthCacheHolder,
    cached_days,
    fill_month_cache,
    month_key,
    settled_at,
)
from gridwatch.energy.periods import day_start, tally_periods
from gridwatch.energy.recorder_statistics import build_requests, parse_statistics
from gridwatch.energy.tally import CompletedDays, Meter, Tally, compute_tally, compute_tally_from
from gridwatch.energy.units import EnergyUnit
from tests.energy.recorder_model import RecorderModel

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
IDS = ("sensor.a", "sensor.b")
METERS = [Meter(sid, sid, sid.split(".")[1]) for sid in IDS]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def filled(now: datetime, zone: ZoneInfo = BERLIN, meters: list[Meter] = METERS):
    """A cache filled at ``now`` from a month answer with one day row per meter."""
    periods = tally_periods(now, zone)
    rows = {}
    for m in meters:
        model = RecorderModel(zone)
        model.add_hours(m.statistic_id, periods.month_start, [1.0] * 3)
        rows |= parse_statistics(model.answer(build_requests([m.statistic_id], periods).month))
    return fill_month_cache(meters, rows, periods)


def serves(cache, at: datetime, zone: ZoneInfo = BERLIN, ids=IDS) -> bool:
    return cached_days(cache, month_key(tally_periods(at, zone), ids)) is not None


@pytest.mark.parametrize(
    ("filled_at", "later", "valid"),
    [
        pytest.param("2026-06-15T08:00", "2026-06-15T21:59", True, id="same-day"),
        pytest.param("2026-06-15T08:00", "2026-06-15T22:00", False, id="local-midnight"),
        pytest.param("2026-06-15T08:00", "2026-06-14T21:59", False, id="clock-went-back"),
        # 29 March (23 h): local midnight of the 30th is 22:00 UTC, CEST.
        pytest.param("2026-03-29T00:30", "2026-03-29T21:59", True, id="23h-day-last-minute"),
        pytest.param("2026-03-29T00:30", "2026-03-29T22:00", False, id="after-23h-day"),
        pytest.param("2026-03-28T23:30", "2026-03-29T01:30", True, id="across-spring-gap"),
        # 25 October (25 h): midnight of the 26th is 23:00 UTC, CET.
        pytest.param("2026-10-24T22:30", "2026-10-25T22:59", True, id="25h-day-last-minute"),
        pytest.param("2026-10-24T22:30", "2026-10-25T01:30", True, id="across-autumn-repeat"),
        pytest.param("2026-10-24T22:30", "2026-10-25T23:00", False, id="after-25h-day"),
        # Month rollover at local midnight (Berlin: 23:00 UTC on 31 October).
        pytest.param("2026-10-31T12:00", "2026-10-31T23:00", False, id="month-rollover"),
        pytest.param("2026-11-01T00:00", "2026-11-01T22:59", True, id="first-of-month"),
    ],
)
def test_valid_for_the_same_local_day_only(filled_at, later, valid):
    cache = filled(utc(filled_at))
    assert cache.final
    assert serves(cache, utc(later)) is valid


def test_same_day_of_another_month_is_not_served():
    cache = filled(utc("2026-06-15T08:00"))
    assert not serves(cache, utc("2026-07-15T08:00"))


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(("sensor.a",), id="meter-removed"),
        pytest.param((*IDS, "sensor.c"), id="meter-added"),
        pytest.param(("sensor.a", "sensor.c"), id="meter-replaced"),
    ],
)
def test_changed_meter_set_is_not_served(ids):
    cache = filled(utc("2026-06-15T08:00"))
    assert serves(cache, utc("2026-06-15T09:00"), ids=tuple(reversed(IDS)))  # order is no change
    assert not serves(cache, utc("2026-06-15T09:00"), ids=ids)


def test_cold_cache_serves_nothing():
    assert cached_days(None, month_key(tally_periods(utc("2026-06-15T08:00"), BERLIN), IDS)) is None


def test_sums_complete_days_only_and_remembers_meters_without_rows():
    periods = tally_periods(utc("2026-06-04T08:00"), BERLIN)
    model = RecorderModel(BERLIN)
    # 1-3 June complete (2 June nets -7: a reset), plus 8 hours of today.
    changes = [1.0] * 24 + [-30.0] + [1.0] * 23 + [2.0] * 24 + [5.0] * 8
    model.add_hours("sensor.a", periods.month_start, changes)
    daily = parse_statistics(model.answer(build_requests(IDS, periods).month))

    cache = fill_month_cache(METERS, daily, periods)

    a, b = cache.days["sensor.a"], cache.days["sensor.b"]
    assert a.kwh == pytest.approx(24.0 + 2.0 * 24)  # the day with the reset is left out
    assert [r.start for r in a.resets] == [utc("2026-06-01T22:00")]
    assert a.has_rows
    assert b == CompletedDays(0.0, (), has_rows=False)


@pytest.mark.parametrize(
    ("zone", "now", "settled"),
    [
        pytest.param("Europe/Berlin", "2026-06-15T08:00", "2026-06-14T22:15", id="Berlin"),
        pytest.param("Europe/Berlin", "2026-03-29T12:00", "2026-03-28T23:15", id="23h-day"),
        pytest.param("Europe/Berlin", "2026-10-25T12:00", "2026-10-24T22:15", id="25h-day"),
        pytest.param("Europe/Berlin", "2026-03-30T12:00", "2026-03-29T22:15", id="after-23h-day"),
        # Midnight 18:30 UTC: the hour 18:00-19:00 UTC (23:30 local) is yesterday's.
        pytest.param("Asia/Kolkata", "2026-06-15T08:00", "2026-06-14T19:15", id="UTC+5:30"),
        pytest.param("Asia/Kathmandu", "2026-06-15T08:00", "2026-06-14T19:15", id="UTC+5:45"),
        pytest.param("UTC", "2026-06-15T08:00", "2026-06-15T00:15", id="UTC"),
    ],
)
def test_settled_after_the_last_hour_of_yesterday_is_compiled(zone, now, settled):
    periods = tally_periods(utc(now), ZoneInfo(zone))
    assert settled_at(periods) == utc(settled)


@pytest.mark.parametrize(
    ("now", "final"),
    [
        pytest.param("2026-06-14T22:00", False, id="at-midnight"),
        pytest.param("2026-06-14T22:14:59", False, id="just-before-settled"),
        pytest.param("2026-06-14T22:15", True, id="settled"),
        # On the 1st there are no complete days to miss.
        pytest.param("2026-05-31T22:00", True, id="first-of-month-at-midnight"),
    ],
)
def test_cache_taken_right_after_midnight_is_provisional(now, final):
    cache = filled(utc(now))
    assert cache.final is final
    assert serves(cache, utc(now)) is final


def test_refetch_drops_the_cache_and_holds_fills_after_ha_start():
    holder = MonthCacheHolder()
    at = utc("2026-06-15T08:00")
    periods = tally_periods(at, BERLIN)
    assert holder.lookup(periods, IDS) is None  # first cycle: cold
    holder.store(METERS, {}, periods)
    assert holder.lookup(periods, IDS) is not None  # warm

    holder.refetch()  # the refresh event
    assert holder.lookup(periods, IDS) is None
    assert holder.cache is None  # dropped before the request: a failure leaves it cold
    assert holder.lookup(periods, IDS) is None

    holder.refetch(settle_from=at)  # HA started: it may still compile missed hours
    assert holder.lookup(periods, IDS) is None
    holder.store(METERS, {}, periods)
    assert holder.cache is not None
    assert not holder.cache.final
    later = tally_periods(at + SETTLE_GRACE, BERLIN)
    assert holder.lookup(later, IDS) is None
    holder.store(METERS, {}, later)
    assert holder.lookup(later, IDS) is not None


def test_a_lookup_for_another_day_drops_the_cache():
    holder = MonthCacheHolder()
    today = tally_periods(utc("2026-06-15T08:00"), BERLIN)
    holder.store(METERS, {}, today)
    assert holder.lookup(tally_periods(utc("2026-06-15T22:30"), BERLIN), IDS) is None
    assert holder.cache is None


# --- cached cycles == uncached cycles ----------------------------------------

ZONES = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
)
# 25 Feb .. 15 April 2026: month rollovers and the March DST changes.
BASE = utc("2026-02-25T00:00")
SPAN_H = 50 * 24


def cycle(
    model: RecorderModel,
    meters: list[Meter],
    now: datetime,
    holder: MonthCacheHolder | None,
    units: bool,
) -> tuple[Tally, int]:
    """One cycle, with the kept days (``holder``) or both requests (``None``)."""
    periods = tally_periods(now, model.zone)
    ids = [m.statistic_id for m in meters]
    requests = build_requests(ids, periods, request_units=units)
    hourly = parse_statistics(model.answer(requests.today), ids)
    if holder is None:
        daily = parse_statistics(model.answer(requests.month), ids)
        return compute_tally(meters, hourly, daily, {}, periods, units_requested=units), 2
    before = holder.lookup(periods, ids)
    sent = 1
    if before is None:
        sent = 2
        daily = parse_statistics(model.answer(requests.month), ids)
        before = holder.store(meters, daily, periods, units_requested=units)
    return compute_tally_from(meters, hourly, before, {}, periods, units_requested=units), sent


RARELY = st.integers(0, 7).map(lambda n: n == 0)
meter_plans = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 100, 500, 900]),  # first hour with data
        st.sampled_from([SPAN_H, SPAN_H, SPAN_H, 0, 30, 400]),  # hours with data
        st.floats(0, 5, allow_nan=False),  # energy per hour
        st.lists(st.tuples(st.integers(0, SPAN_H), st.floats(-80, 0)), max_size=3),  # drops
        st.sampled_from(["kWh", "Wh"]),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=120, deadline=None)
@given(
    zone=ZONES,
    plans=meter_plans,
    units=st.booleans(),
    start_day=st.integers(0, SPAN_H // 24 - 1),
    # Often just around local midnight, where yesterday's last hour is late.
    start_min=st.one_of(st.integers(-20, 20), st.integers(0, 24 * 60)),
    steps=st.lists(
        st.tuples(
            st.one_of(st.integers(1, 20), st.integers(1, 16 * 60)),  # minutes to the next cycle
            RARELY,  # refresh event
            RARELY,  # HA started
        ),
        min_size=1,
        max_size=15,
    ),
    compile_delay_s=st.integers(1, int(SETTLE_GRACE.total_seconds()) - 1),
)
def test_cycles_with_kept_days_equal_cycles_with_both_requests(
    zone, plans, units, start_day, start_min, steps, compile_delay_s
):
    model = RecorderModel(ZoneInfo(zone))
    meters = []
    for i, (first_hour, hours, per_hour, drops, unit) in enumerate(plans):
        sid = f"sensor.m{i}"
        # A unit per meter: converted by the recorder or from the configured one.
        meters.append(Meter(sid, sid, f"m{i}", unit=EnergyUnit(unit)))
        changes = [per_hour * (1 + h % 5) for h in range(hours)]
        for hour, drop in drops:
            if changes:
                changes[hour % len(changes)] = drop
        if changes:
            model.add_hours(sid, BASE + HOUR * first_hour, changes, unit=unit)
    holder = MonthCacheHolder()
    midnight = day_start(BASE.date() + timedelta(days=start_day), model.zone)
    now = midnight + timedelta(minutes=start_min)
    sent = []
    for advance_min, refresh, ha_start in [(0, False, False), *steps]:
        now += timedelta(minutes=advance_min)
        # The recorder compiles each hour a little after it ends.
        model.compiled_until = now - timedelta(seconds=compile_delay_s)
        if refresh or ha_start:
            holder.refetch(settle_from=now if ha_start else None)

        kept, requests = cycle(model, meters, now, holder, units)
        both, _ = cycle(model, meters, now, None, units)

        assert kept == both
        sent.append(requests)
    assert sent[0] == 2
    assert set(sent) <= {1, 2}
