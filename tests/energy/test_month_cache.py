"""The month's kept days and when they are read again (lib/gridwatch/energy/month_cache.py).

What a cycle sends besides ``today`` (a meter's whole month, the days since
the last read, the hourly recheck, the probe of meters without history)
across hours, local days, months (DST days included), a changed meter set,
forced refetches and the settle time after midnight; how the pages are cut
under the answer budget; and what a probe finds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.month_cache import (
    HISTORY_CHANGED,
    MAX_PAGES_PER_CYCLE,
    READ_PENDING,
    REREAD_PENDING,
    SETTLE_GRACE,
    MonthLedger,
    MonthPlan,
    PageKind,
    settled_at,
)
from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import (
    ANSWER_BUDGET_BYTES,
    BYTES_PER_ROW,
    month_request,
    parse_statistics,
    probe_request,
    rows_per_meter,
)
from tests.energy.recorder_model import RecorderModel

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
IDS = ("sensor.a", "sensor.b")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def step(ledger: MonthLedger, now: datetime, ids=IDS, model: RecorderModel | None = None):
    """Plan a cycle at ``now`` and store the model's answers (empty without one)."""
    periods = tally_periods(now, ledger.zone)
    plan = ledger.plan(periods, ids)
    scales = dict.fromkeys(ids, 1.0)
    for page in plan.pages:
        if page.kind is PageKind.PROBE:
            command = probe_request(page.ids, periods)
            answer = parse_statistics(model.answer(command)) if model else {}
            ledger.store_probe(page, answer, periods)
        else:
            command = month_request(page.ids, page.window_start, periods)
            answer = parse_statistics(model.answer(command)) if model else {}
            ledger.store(page, answer, periods, scales)
    return plan


def kinds(plan: MonthPlan) -> list[tuple[PageKind, datetime]]:
    return [(p.kind, p.window_start) for p in plan.pages]


def seeded(*ids: str) -> RecorderModel:
    model = RecorderModel(BERLIN)
    for sid in ids:
        model.add_hours(sid, utc("2026-02-01T00:00"), [1.0] * (24 * 300))
    return model


MAY_31 = utc("2026-05-31T22:00")  # 1 June 00:00 local


def test_the_first_cycle_reads_the_month_then_nothing_until_the_next_hour_then_the_recheck():
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)

    first = step(ledger, utc("2026-06-15T08:05"), model=model)
    second = step(ledger, utc("2026-06-15T08:55"), model=model)
    next_hour = step(ledger, utc("2026-06-15T09:00"), model=model)

    assert kinds(first) == [(PageKind.MONTH, MAY_31)]
    assert first.pages[0].ids == IDS
    assert second.pages == ()
    # The last two complete local days (13 and 14 June) hour by hour.
    assert kinds(next_hour) == [(PageKind.DAYS, utc("2026-06-12T22:00"))]


@pytest.mark.parametrize(
    ("now", "window"),
    [
        pytest.param("2026-06-15T22:05", "2026-06-13T22:00", id="new-day"),
        # 25 October has 25 hours; the window still starts at local midnight.
        pytest.param("2026-10-25T23:05", "2026-10-23T22:00", id="after-25h-day"),
        pytest.param("2026-03-29T22:05", "2026-03-27T23:00", id="after-23h-day"),
    ],
)
def test_a_new_local_day_reads_the_days_before_it(now, window):
    moment = utc(now)
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, moment - 2 * HOUR, model=model)
    step(ledger, moment - timedelta(hours=1, minutes=30), model=model)

    plan = step(ledger, moment, model=model)

    assert kinds(plan) == [(PageKind.DAYS, utc(window))]


def test_while_the_recheck_reaches_the_month_start_it_reads_the_opening_again():
    # On the 1st and 2nd a late row before the month would change the opening.
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-05-31T22:20"), model=model)
    assert kinds(step(ledger, utc("2026-05-31T23:20"), model=model)) == [(PageKind.MONTH, MAY_31)]
    step(ledger, utc("2026-06-02T23:20"), model=model)
    assert kinds(step(ledger, utc("2026-06-03T00:20"), model=model)) == [(PageKind.MONTH, MAY_31)]
    # From the 4th the window (2 and 3 June) no longer reaches it.
    step(ledger, utc("2026-06-03T22:20"), model=model)
    assert kinds(step(ledger, utc("2026-06-03T23:20"), model=model)) == [
        (PageKind.DAYS, utc("2026-06-01T22:00"))
    ]


@pytest.mark.parametrize(
    ("later", "ids", "expected"),
    [
        pytest.param("2026-07-01T08:00", IDS, IDS, id="new-month"),
        pytest.param("2026-06-15T08:10", ("sensor.a",), (), id="meter-removed"),
        # Only the new meter's month is read; the others' kept days serve.
        pytest.param("2026-06-15T08:10", (*IDS, "sensor.c"), ("sensor.c",), id="meter-added"),
    ],
)
def test_only_meters_without_kept_days_are_read_in_full(later, ids, expected):
    model = seeded("sensor.a", "sensor.b", "sensor.c")
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)

    plan = step(ledger, utc(later), ids, model=model)

    full = [s for p in plan.pages if p.kind is PageKind.MONTH for s in p.ids]
    assert tuple(full) == expected


def test_days_missed_while_suspended_are_read_from_where_the_kept_days_end():
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)
    plan = step(ledger, utc("2026-06-18T08:00"), model=model)
    assert kinds(plan) == [(PageKind.DAYS, utc("2026-06-14T22:00"))]


def test_refresh_reads_every_month_again_and_ha_start_rechecks_once_settled():
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)
    started = utc("2026-06-15T08:20")
    ledger.refetch(settle_from=started)

    refreshed = step(ledger, utc("2026-06-15T08:21"), model=model)
    assert kinds(refreshed) == [(PageKind.MONTH, MAY_31)]
    assert step(ledger, utc("2026-06-15T08:30"), model=model).pages == ()
    # The recorder may still compile hours it missed while HA was down.
    assert step(ledger, started + SETTLE_GRACE, model=model).pages != ()
    assert step(ledger, started + SETTLE_GRACE + timedelta(minutes=5), model=model).pages == ()


def test_a_recheck_before_yesterday_settled_is_repeated_once_it_has():
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T21:00"), model=model)
    step(ledger, utc("2026-06-15T21:30"), model=model)
    assert step(ledger, utc("2026-06-15T22:02"), model=model).pages != ()  # midnight
    assert step(ledger, utc("2026-06-15T22:10"), model=model).pages == ()
    assert step(ledger, utc("2026-06-15T22:16"), model=model).pages != ()  # settled


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


# --- pages --------------------------------------------------------------------


@pytest.mark.parametrize("meters", [10, 500, 2000, 8000])
def test_pages_stay_under_the_budget_and_a_cycle_sends_at_most_the_cap(meters):
    ids = tuple(f"sensor.m{i:05d}" for i in range(meters))
    ledger = MonthLedger(BERLIN, recheck_days=4)
    now = utc("2026-06-30T08:05")
    periods = tally_periods(now, BERLIN)

    plan = ledger.plan(periods, ids)

    assert 1 <= len(plan.pages) <= MAX_PAGES_PER_CYCLE
    rows_each = rows_per_meter(periods.month_start - 48 * HOUR, periods.today_start)
    for page in plan.pages:
        # Every meter with every hour of the month, at the measured row size.
        assert (rows_each + 1) * BYTES_PER_ROW[("sum",)] * len(page.ids) <= ANSWER_BUDGET_BYTES
    read = {s for p in plan.pages for s in p.ids}
    # What the cap leaves for the next cycle is marked, with the reason.
    assert set(plan.waiting) == set(ids) - read
    assert set(plan.waiting.values()) <= {READ_PENDING}


def test_a_probe_finds_history_imported_after_the_read_and_not_a_meter_new_this_month():
    model = RecorderModel(BERLIN)
    # sensor.a: rows from 10 June only; sensor.b: new on 10 June, no history.
    model.add_hours("sensor.a", utc("2026-06-10T06:00"), [1.0] * 100)
    model.add_hours("sensor.b", utc("2026-06-10T06:00"), [1.0] * 100)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)

    quiet = step(ledger, utc("2026-06-15T08:10"), model=model)
    assert kinds(quiet) == [(PageKind.PROBE, MAY_31)]
    assert quiet.waiting == {}
    # sensor.a's history since May arrives (an import).
    model.add_hours("sensor.a", utc("2026-05-25T00:00"), [1.0] * (24 * 16), start_sum=-500)
    periods = tally_periods(utc("2026-06-15T08:15"), BERLIN)
    plan = ledger.plan(periods, IDS)
    (page,) = plan.pages
    answer = parse_statistics(model.answer(probe_request(IDS, periods)))
    found = ledger.store_probe(page, answer, periods)

    assert found == ("sensor.a",)
    assert ledger.is_due_again("sensor.a")
    # Read in full next; a cycle with no page left for it marks it, with the reason.
    again = ledger.plan(periods, IDS)
    assert (again.pages[0].kind, again.pages[0].ids) == (PageKind.MONTH, ("sensor.a",))
    ledger.max_pages = 0
    assert ledger.plan(periods, IDS).waiting == {"sensor.a": HISTORY_CHANGED}


def test_a_meter_new_today_is_not_read_again_every_cycle():
    # The probe's day rows reach the end of today, which no read covers.
    model = seeded("sensor.a")
    model.add_hours("sensor.b", utc("2026-06-15T04:00"), [1.0] * 4)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)

    for minutes in (10, 15, 20):
        plan = step(ledger, utc("2026-06-15T08:00") + timedelta(minutes=minutes), model=model)
        assert kinds(plan) == [(PageKind.PROBE, MAY_31)]
        assert not ledger.is_due_again("sensor.b")


def test_a_refetch_that_waits_keeps_the_last_read_and_says_so():
    model = seeded(*IDS)
    ledger = MonthLedger(BERLIN)
    step(ledger, utc("2026-06-15T08:05"), model=model)
    kept = dict(ledger.meters)
    ledger.refetch()
    ledger.max_pages = 0

    plan = step(ledger, utc("2026-06-15T08:10"), model=model)

    assert plan.pages == ()
    assert plan.waiting == dict.fromkeys(IDS, REREAD_PENDING)
    assert ledger.meters == kept
