"""Building the batched statistics commands and parsing the recorder's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import (
    ANSWER_BUDGET_BYTES,
    BYTES_PER_ROW,
    COMMAND_TYPE,
    StatisticsFormatError,
    month_request,
    parse_statistics,
    probe_request,
    recheck_request,
    split_for_answer,
    today_request,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 15, 10, 42, tzinfo=UTC)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


PERIODS = tally_periods(NOW, BERLIN)


@pytest.mark.parametrize("meters", [1, 10, 500])
def test_each_command_names_every_meter_whatever_the_count(meters):
    ids = [f"sensor.meter_{i}" for i in range(meters)]
    window = datetime(2026, 6, 12, 22, tzinfo=UTC)

    commands = [
        today_request(ids, PERIODS),
        month_request(ids, PERIODS.month_start, PERIODS),
        recheck_request(ids, window, PERIODS),
        probe_request(ids, PERIODS),
    ]

    for command in commands:
        assert command["type"] == COMMAND_TYPE
        assert command["statistic_ids"] == sorted(ids)


def test_today_command_asks_hourly_sums_from_the_hour_before_local_midnight():
    today = today_request(["sensor.a"], PERIODS)

    assert today["period"] == "hour"
    # Sums, not HA's change: HA counts a first row against 0 when the row
    # before the window has no sum.
    assert set(today["types"]) == {"sum", "state"}
    # Local midnight is 22:00 UTC the day before (UTC+2); one hour earlier.
    assert datetime.fromisoformat(today["start_time"]) == datetime(2026, 6, 14, 21, tzinfo=UTC)
    assert datetime.fromisoformat(today["end_time"]) == NOW
    assert today["units"] == {"energy": "kWh"}


def test_month_command_asks_hourly_sums_from_48_hours_before_the_month_to_midnight():
    month = month_request(["sensor.a"], PERIODS.month_start, PERIODS)

    # Hourly: a day row cannot tell a reset inside the day from use.
    assert (month["period"], month["types"]) == ("hour", ["sum"])
    # 1 June 00:00 local is 31 May 22:00 UTC; the opening is looked for 48 h back.
    assert datetime.fromisoformat(month["start_time"]) == datetime(2026, 5, 29, 22, tzinfo=UTC)
    assert datetime.fromisoformat(month["end_time"]) == PERIODS.today_start


def test_probe_command_asks_day_rows_from_the_opening_lead_to_midnight():
    probe = probe_request(["sensor.a"], PERIODS)

    assert (probe["period"], probe["types"]) == ("day", ["sum"])
    # HA aligns the start to its local midnight: 30 May 00:00 local.
    start = datetime.fromisoformat(probe["start_time"]).astimezone(BERLIN)
    assert start.date() == datetime(2026, 5, 30).date()
    assert datetime.fromisoformat(probe["end_time"]) == PERIODS.today_start


@pytest.mark.parametrize("meters", [1, 499, 500, 2000, 5000])
@pytest.mark.parametrize("days", [1, 4, 31])
def test_pages_keep_every_answer_under_the_budget_and_name_each_meter_once(meters, days):
    ids = [f"sensor.meter_{i:05d}" for i in range(meters)]
    rows_each = days * 25 + 48

    groups = split_for_answer(ids, rows_each)

    assert sorted(s for g in groups for s in g) == ids
    # The worst answer: every meter with every row, at the measured size of a
    # row (bench/bench_energy.py), under AppDaemon's 4 MiB message cap.
    widest = max(len(g) for g in groups) * (rows_each + 1) * BYTES_PER_ROW[("sum",)]
    assert widest <= ANSWER_BUDGET_BYTES < 4 * 1024 * 1024
    # As few requests as the budget allows.
    assert len(groups) == -(-meters // (ANSWER_BUDGET_BYTES // ((rows_each + 1) * 80)))


def test_recheck_command_asks_hourly_sums_of_the_window_and_the_hour_before():
    window = datetime(2026, 6, 12, 22, tzinfo=UTC)
    recheck = recheck_request(["sensor.a"], window, PERIODS)

    assert (recheck["period"], recheck["types"]) == ("hour", ["sum"])
    assert datetime.fromisoformat(recheck["start_time"]) == datetime(2026, 6, 12, 21, tzinfo=UTC)
    assert datetime.fromisoformat(recheck["end_time"]) == PERIODS.today_start


def test_duplicate_ids_are_merged_and_units_can_be_left_out():
    today = today_request(["sensor.b", "sensor.a", "sensor.b"], PERIODS, request_units=False)

    assert today["statistic_ids"] == ["sensor.a", "sensor.b"]
    assert "units" not in today
    assert "units" not in month_request(
        ["sensor.a"], PERIODS.month_start, PERIODS, request_units=False
    )


def test_no_meters_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        today_request([], PERIODS)


def test_parse_recorder_answer():
    answer = {
        "sensor.a": [
            {
                "start": ms("2026-06-15T09:00"),
                "end": ms("2026-06-15T10:00"),
                "sum": 0.5,
                "state": 12.5,
            },
            {
                "start": ms("2026-06-15T08:00"),
                "end": ms("2026-06-15T09:00"),
                "sum": 1,
                "state": 12.0,
            },
        ],
        "sensor.b": [{"start": ms("2026-06-15T08:00"), "end": ms("2026-06-15T09:00"), "sum": None}],
    }

    parsed = parse_statistics(answer)

    first, second = parsed["sensor.a"]
    assert first.start == datetime(2026, 6, 15, 8, tzinfo=UTC)  # sorted by start
    assert (first.sum, first.state) == (1.0, 12.0)
    assert (second.sum, second.state) == (0.5, 12.5)
    assert second.end == datetime(2026, 6, 15, 10, tzinfo=UTC)
    assert parsed["sensor.b"][0].sum is None
    assert parsed["sensor.b"][0].state is None


def test_parse_keeps_only_wanted_ids_and_drops_nan():
    answer = {
        "sensor.a": [{"start": 0, "end": 3_600_000, "sum": float("nan")}],
        "sensor.other": [{"start": 0, "end": 3_600_000, "sum": 1.0}],
    }

    parsed = parse_statistics(answer, wanted=["sensor.a"])

    assert list(parsed) == ["sensor.a"]
    assert parsed["sensor.a"][0].sum is None


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ([], "not an object"),
        (None, "not an object"),
        ({"sensor.a": {"start": 0}}, "not a list"),
        ({"sensor.a": ["row"]}, "not an object"),
        ({"sensor.a": [{"start": "2026-01-01", "end": 0}]}, "start"),
        ({"sensor.a": [{"start": 0}]}, "end"),
        ({"sensor.a": [{"start": 0, "end": 1, "sum": "1.5"}]}, "sum"),
        ({"sensor.a": [{"start": 0, "end": 1, "sum": True}]}, "sum"),
    ],
)
def test_malformed_answers_raise(answer, match):
    with pytest.raises(StatisticsFormatError, match=match):
        parse_statistics(answer)
