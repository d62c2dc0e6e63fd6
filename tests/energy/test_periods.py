"""Local day / month boundaries across DST changes and month starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.energy.periods import tally_periods

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "now_utc", "today_start", "month_start", "hours"),
    [
        # Ordinary summer day in Berlin (UTC+2).
        ("Europe/Berlin", "2026-06-15T10:00", "2026-06-14T22:00", "2026-05-31T22:00", 24),
        # Spring forward: 29 March 2026 has 23 hours.
        ("Europe/Berlin", "2026-03-29T12:00", "2026-03-28T23:00", "2026-02-28T23:00", 23),
        # Fall back: 25 October 2026 has 25 hours.
        ("Europe/Berlin", "2026-10-25T12:00", "2026-10-24T22:00", "2026-09-30T22:00", 25),
        # Just after local midnight on the 1st: a new day AND a new month.
        ("Europe/Berlin", "2026-10-31T23:00", "2026-10-31T23:00", "2026-10-31T23:00", 24),
        # One second before: still 31 October.
        ("Europe/Berlin", "2026-10-31T22:59:59", "2026-10-30T23:00", "2026-09-30T22:00", 24),
        # Santiago springs forward AT midnight: 6 Sep 2026 starts at 01:00 local.
        ("America/Santiago", "2026-09-06T12:00", "2026-09-06T04:00", "2026-09-01T04:00", 23),
        # New Year in a zone east of UTC: local month starts the previous UTC year.
        ("Pacific/Auckland", "2026-12-31T12:00", "2026-12-31T11:00", "2026-12-31T11:00", 24),
        # UTC itself.
        ("UTC", "2026-02-01T00:00", "2026-02-01T00:00", "2026-02-01T00:00", 24),
    ],
)
def test_boundaries(zone, now_utc, today_start, month_start, hours):
    periods = tally_periods(utc(now_utc), ZoneInfo(zone))

    assert periods.today_start == utc(today_start)
    assert periods.month_start == utc(month_start)
    assert periods.day_length == timedelta(hours=hours)


def test_hour_start_is_the_utc_hour():
    periods = tally_periods(utc("2026-06-15T10:42:17"), BERLIN)

    assert periods.hour_start == utc("2026-06-15T10:00")
    assert periods.now == utc("2026-06-15T10:42:17")


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="tz-aware"):
        tally_periods(datetime(2026, 6, 1, 12), BERLIN)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_now_lies_in_today_and_today_in_the_month(now):
    periods = tally_periods(now, BERLIN)

    assert periods.month_start <= periods.today_start <= now < periods.tomorrow_start
    assert periods.today_start.astimezone(BERLIN).hour == 0
    assert periods.month_start.astimezone(BERLIN).day == 1
    assert timedelta(hours=23) <= periods.day_length <= timedelta(hours=25)
