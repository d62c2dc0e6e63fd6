"""Building the batched statistics commands and parsing the recorder's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import (
    COMMAND_TYPE,
    StatisticsFormatError,
    build_requests,
    parse_statistics,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 15, 10, 42, tzinfo=UTC)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("meters", [1, 10, 500])
def test_two_commands_whatever_the_meter_count(meters):
    ids = [f"sensor.meter_{i}" for i in range(meters)]

    requests = build_requests(ids, tally_periods(NOW, BERLIN))

    assert len(requests.all()) == 2
    for command in requests.all():
        assert command["type"] == COMMAND_TYPE
        assert command["statistic_ids"] == sorted(ids)


def test_today_command_asks_hours_from_the_hour_before_local_midnight():
    today = build_requests(["sensor.a"], tally_periods(NOW, BERLIN)).today

    assert today["period"] == "hour"
    assert set(today["types"]) == {"change", "state"}
    # Local midnight is 22:00 UTC the day before (UTC+2); one hour earlier.
    assert datetime.fromisoformat(today["start_time"]) == datetime(2026, 6, 14, 21, tzinfo=UTC)
    assert datetime.fromisoformat(today["end_time"]) == NOW
    assert today["units"] == {"energy": "kWh"}


def test_month_command_asks_days_from_the_local_month_start():
    month = build_requests(["sensor.a"], tally_periods(NOW, BERLIN)).month

    assert month["period"] == "day"
    assert month["types"] == ["change"]
    assert datetime.fromisoformat(month["start_time"]) == datetime(2026, 5, 31, 22, tzinfo=UTC)
    assert datetime.fromisoformat(month["end_time"]) == NOW


def test_duplicate_ids_are_merged_and_units_can_be_left_out():
    requests = build_requests(
        ["sensor.b", "sensor.a", "sensor.b"], tally_periods(NOW, BERLIN), request_units=False
    )

    assert requests.today["statistic_ids"] == ["sensor.a", "sensor.b"]
    assert "units" not in requests.today
    assert "units" not in requests.month


def test_no_meters_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        build_requests([], tally_periods(NOW, BERLIN))


def test_parse_recorder_answer():
    answer = {
        "sensor.a": [
            {
                "start": ms("2026-06-15T09:00"),
                "end": ms("2026-06-15T10:00"),
                "change": 0.5,
                "state": 12.5,
            },
            {
                "start": ms("2026-06-15T08:00"),
                "end": ms("2026-06-15T09:00"),
                "change": 1,
                "state": 12.0,
            },
        ],
        "sensor.b": [
            {"start": ms("2026-06-15T08:00"), "end": ms("2026-06-15T09:00"), "change": None}
        ],
    }

    parsed = parse_statistics(answer)

    first, second = parsed["sensor.a"]
    assert first.start == datetime(2026, 6, 15, 8, tzinfo=UTC)  # sorted by start
    assert (first.change, first.state) == (1.0, 12.0)
    assert (second.change, second.state) == (0.5, 12.5)
    assert second.end == datetime(2026, 6, 15, 10, tzinfo=UTC)
    assert parsed["sensor.b"][0].change is None
    assert parsed["sensor.b"][0].state is None


def test_parse_keeps_only_wanted_ids_and_drops_nan():
    answer = {
        "sensor.a": [{"start": 0, "end": 3_600_000, "change": float("nan")}],
        "sensor.other": [{"start": 0, "end": 3_600_000, "change": 1.0}],
    }

    parsed = parse_statistics(answer, wanted=["sensor.a"])

    assert list(parsed) == ["sensor.a"]
    assert parsed["sensor.a"][0].change is None


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ([], "not an object"),
        (None, "not an object"),
        ({"sensor.a": {"start": 0}}, "not a list"),
        ({"sensor.a": ["row"]}, "not an object"),
        ({"sensor.a": [{"start": "2026-01-01", "end": 0}]}, "start"),
        ({"sensor.a": [{"start": 0}]}, "end"),
        ({"sensor.a": [{"start": 0, "end": 1, "change": "1.5"}]}, "change"),
        ({"sensor.a": [{"start": 0, "end": 1, "change": True}]}, "change"),
    ],
)
def test_malformed_answers_raise(answer, match):
    with pytest.raises(StatisticsFormatError, match=match):
        parse_statistics(answer)
