"""The month's kept days and when they are asked for again (lib/gridwatch/energy/month_cache.py).

What a cycle sends besides ``today`` (cold month, hourly recheck, history of
meters without sums) across hours, local days, months (DST days included),
a changed meter set, forced refetches and the settle time after midnight;
and what the kept days hold after day rows and after a recheck.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.month_cache import (
    SETTLE_GRACE,
    MonthLedger,
    month_from_days,
    recheck_month,
    settled_at,
)
from gridwatch.energy.periods import day_start, day_starts_between, tally_periods
from gridwatch.energy.recorder_statistics import (
    month_request,
    parse_statistics,
    recheck_request,
)
from tests.energy.recorder_model import RecorderModel

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
IDS = ("sensor.a", "sensor.b")
SCALES = dict.fromkeys(IDS, 1.0)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cold(now: datetime, zone: ZoneInfo = BERLIN) -> MonthLedger:
    """A ledger after a cold cycle at ``now`` (no rows at all)."""
    ledger = MonthLedger(zone)
    assert step(ledger, now).month
    return ledger


def step(ledger: MonthLedger, now: datetime, ids=IDS):
    """Plan a cycle at ``now`` and store empty answers for what it asks."""
    periods = tally_periods(now, ledger.zone)
    plan = ledger.plan(periods, ids)
    if plan.month:
        ledger.store_month({}, periods, dict.fromkeys(ids, 1.0))
    if plan.recheck_from is not None:
        ledger.store_recheck({}, plan.recheck_from, periods, dict.fromkeys(ids, 1.0))
    if plan.history:
        ledger.store_month({}, periods, dict.fromkeys(ids, 1.0), only=plan.history)
    return plan


def test_cold_rechecks_at_once_then_nothing_until_the_next_hour():
    ledger = MonthLedger(BERLIN)

    first = step(ledger, utc("2026-06-15T08:05"))
    second = step(ledger, utc("2026-06-15T08:55"))
    next_hour = step(ledger, utc("2026-06-15T09:00"))

    # The month's day rows, and the last two complete local days (13 and 14
    # June) hour by hour in the same cycle.
    assert first.month
    assert first.recheck_from == utc("2026-06-12T22:00")
    assert first.history == ()
    assert second.extra_requests == 0
    assert next_hour.recheck_from == utc("2026-06-12T22:00")
    assert not next_hour.month
    # No meter has a sum before the month: its history is asked for again,
    # once an hour.
    assert next_hour.history == IDS


@pytest.mark.parametrize(
    ("now", "window"),
    [
        pytest.param("2026-06-15T22:05", "2026-06-13T22:00", id="new-day"),
        # 25 October has 25 hours; the window still starts at local midnight.
        pytest.param("2026-10-25T23:05", "2026-10-23T22:00", id="after-25h-day"),
        pytest.param("2026-03-29T22:05", "2026-03-27T23:00", id="after-23h-day"),
    ],
)
def test_a_new_local_day_rechecks_the_days_before_it(now, window):
    moment = utc(now)
    ledger = cold(moment - timedelta(hours=2))
    step(ledger, moment - timedelta(hours=1, minutes=30))

    plan = step(ledger, moment)

    assert not plan.month
    assert plan.recheck_from == utc(window)


def test_on_the_first_of_the_month_there_is_nothing_to_recheck():
    ledger = cold(utc("2026-05-31T22:20"))
    plan = step(ledger, utc("2026-05-31T23:20"))
    assert plan.recheck_from is None


@pytest.mark.parametrize(
    ("later", "ids"),
    [
        pytest.param("2026-07-01T08:00", IDS, id="new-month"),
        pytest.param("2026-06-15T08:10", ("sensor.a",), id="meter-removed"),
        pytest.param("2026-06-15T08:10", (*IDS, "sensor.c"), id="meter-added"),
        # Three days later: the days between would be missing.
        pytest.param("2026-06-18T08:00", IDS, id="suspended-for-days"),
    ],
)
def test_cold_again(later, ids):
    ledger = cold(utc("2026-06-15T08:05"))
    assert step(ledger, utc(later), ids).month


def test_refresh_is_cold_and_ha_start_rechecks_again_once_settled():
    ledger = cold(utc("2026-06-15T08:05"))
    step(ledger, utc("2026-06-15T08:10"))
    started = utc("2026-06-15T08:20")
    ledger.refetch(settle_from=started)

    refreshed = step(ledger, utc("2026-06-15T08:21"))
    assert refreshed.month
    assert refreshed.recheck_from is not None
    assert step(ledger, utc("2026-06-15T08:30")).recheck_from is None
    # The recorder may still compile hours it missed while HA was down.
    assert step(ledger, started + SETTLE_GRACE).recheck_from is not None
    assert step(ledger, started + SETTLE_GRACE + timedelta(minutes=5)).recheck_from is None


def test_a_recheck_before_yesterday_settled_is_repeated_once_it_has():
    ledger = cold(utc("2026-06-15T21:00"))
    step(ledger, utc("2026-06-15T21:30"))
    assert step(ledger, utc("2026-06-15T22:02")).recheck_from is not None  # midnight
    assert step(ledger, utc("2026-06-15T22:10")).recheck_from is None
    assert step(ledger, utc("2026-06-15T22:16")).recheck_from is not None  # settled


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


# --- what the kept days hold --------------------------------------------------


def month_of(model: RecorderModel, now: datetime, sid: str = "sensor.a"):
    periods = tally_periods(now, model.zone)
    answer = parse_statistics(model.answer(month_request([sid], periods)))
    return month_from_days(sid, answer.get(sid, ()), periods)


def test_an_empty_last_row_of_a_day_is_bridged_not_dropped():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-09T22:00"), [1.0] * 24 * 3)
    model.blank("sensor.a", utc("2026-06-11T21:00"))  # 11 June's last hour

    kept = month_of(model, utc("2026-06-13T08:00"))

    # 10 and 11 June, 48 kWh: the 11th has no day-end sum; the 12th bridges it.
    assert kept.kwh == pytest.approx(72.0 - 1.0 + 1.0)
    assert kept.days[day_start(datetime(2026, 6, 11).date(), BERLIN)].kwh == 0.0


def test_an_empty_sum_before_the_month_is_never_a_change_against_zero():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-05-27T22:00"), [10.0] * 24 * 6)  # a big lifetime
    for hour in range(24 * 2):  # the two days before the month have no sums
        model.blank("sensor.a", utc("2026-05-29T22:00") + hour * HOUR)

    kept = month_of(model, utc("2026-06-03T08:00"))

    # HA's change would publish the lifetime (1200+ kWh) for 1 June. With no
    # sum in the days asked for before the month, 1 June's sum is only the
    # baseline: its energy is unknown, never the lifetime.
    assert kept.opening is None
    assert kept.kwh == pytest.approx(240.0)


def test_a_recheck_reckons_a_day_hour_by_hour_and_keeps_its_reset():
    model = RecorderModel(BERLIN)
    model.add_hours("sensor.a", utc("2026-06-12T22:00"), [2.0] * 10 + [-15.0] + [2.0] * 13)
    now = utc("2026-06-14T08:00")
    periods = tally_periods(now, BERLIN)
    kept = month_of(model, now)
    assert kept.kwh == pytest.approx(48.0 - 2.0 - 15.0)  # the day row nets the drop

    window = utc("2026-06-12T22:00")
    answer = parse_statistics(model.answer(recheck_request(["sensor.a"], window, periods)))
    rechecked = recheck_month(
        kept,
        "sensor.a",
        answer["sensor.a"],
        day_starts_between(window, periods.today_start, BERLIN),
        periods.today_start,
    )

    assert rechecked.kwh == pytest.approx(46.0)  # the drop is not subtracted
    (reset,) = rechecked.resets
    assert reset.change_kwh == pytest.approx(-15.0)
