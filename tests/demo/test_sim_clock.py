from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from demo.sim_clock import DailyCounter, SimClock, hour_of_day, origin_at_hour

ZONE = ZoneInfo("Europe/Berlin")


def test_speed_scales_elapsed_time():
    origin = datetime(2026, 6, 1, 10, 0, tzinfo=ZONE)
    clock = SimClock(origin, speed=60)
    assert clock.at(0) == origin
    assert clock.at(30) == origin + timedelta(minutes=30)
    assert clock.sim_seconds(2) == 120


@pytest.mark.parametrize("speed", [0, -1, float("nan")])
def test_speed_must_be_positive(speed):
    with pytest.raises(ValueError, match="speed"):
        SimClock(datetime(2026, 1, 1, tzinfo=UTC), speed=speed)


def test_origin_needs_a_zone():
    with pytest.raises(ValueError, match="time zone"):
        SimClock(datetime(2026, 1, 1))


def test_origin_at_hour_is_today_in_the_same_zone():
    now = datetime(2026, 6, 1, 22, 17, 5, tzinfo=ZONE)
    assert origin_at_hour(now, 10.5) == datetime(2026, 6, 1, 10, 30, tzinfo=ZONE)
    with pytest.raises(ValueError, match="hour"):
        origin_at_hour(now, 24)


def test_hour_of_day():
    assert hour_of_day(datetime(2026, 6, 1, 13, 30, 36, tzinfo=UTC)) == pytest.approx(13.51)


def test_daily_counter_restarts_on_a_new_day():
    counter = DailyCounter(date(2026, 6, 1), base_kwh=100.0)
    same_day = counter.advance(datetime(2026, 6, 1, 23, 59, tzinfo=UTC), 104.0)
    assert same_day.value(104.0) == pytest.approx(4.0)
    next_day = same_day.advance(datetime(2026, 6, 2, 0, 0, 1, tzinfo=UTC), 104.5)
    assert next_day.value(104.5) == 0.0
    assert next_day.value(105.0) == pytest.approx(0.5)
