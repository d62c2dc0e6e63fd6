"""Failure counting, stale values, notices and reset reporting between cycles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.cycle import CycleState, Health, after_failure, after_success
from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import StatRow
from gridwatch.energy.tally import Meter, Tally, compute_tally

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
PERIODS_ZONE = ZoneInfo("Europe/Berlin")
PERIODS = tally_periods(NOW, PERIODS_ZONE)
METER = Meter("sensor.a", "A", "a")


def tally(*changes: float) -> Tally:
    """Hourly rows whose sums change by ``changes``, after a baseline row."""
    sums, total = [0.0], 0.0
    for change in changes:
        total += change
        sums.append(total)
    start = PERIODS.today_start - timedelta(hours=1)
    rows = tuple(
        StatRow(start + timedelta(hours=h), start + timedelta(hours=h + 1), s)
        for h, s in enumerate(sums)
    )
    return compute_tally([METER], {"sensor.a": rows}, {}, {}, PERIODS, zone=PERIODS_ZONE)


def fail(state: CycleState, times: int, threshold: int = 3):
    outcomes = []
    for _ in range(times):
        outcome = after_failure(state, "timed out", threshold)
        outcomes.append(outcome)
        state = outcome.state
    return state, outcomes


def test_first_success_is_ok():
    good = tally(1.0)

    outcome = after_success(CycleState(), good, NOW)

    assert outcome.state.health is Health.OK
    assert outcome.state.last_good is good
    assert outcome.state.last_success_at == NOW
    assert not outcome.resolve_notice
    assert outcome.logs == ()


def test_failures_warn_then_error_and_notice_once_at_threshold():
    good = tally(1.0)
    state = after_success(CycleState(), good, NOW).state

    state, outcomes = fail(state, 5)

    assert [o.raise_notice for o in outcomes] == [False, False, True, False, False]
    assert [o.logs[0][0] for o in outcomes] == [logging.WARNING] * 2 + [logging.ERROR] * 3
    assert [o.state.health for o in outcomes] == [Health.STALE] * 2 + [Health.ERROR] * 3
    assert "3 in a row" in outcomes[2].logs[0][1]
    assert "keeping the last good values" in outcomes[0].logs[0][1]
    # The last good values survive every failure.
    assert state.last_good is good
    assert state.failures == 5
    assert state.last_error == "timed out"


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_threshold_is_configurable(threshold):
    _, outcomes = fail(CycleState(), threshold, threshold)

    assert [o.raise_notice for o in outcomes] == [False] * (threshold - 1) + [True]


def test_success_after_error_resolves_the_notice_and_resets_the_counter():
    state, _ = fail(CycleState(), 3)

    outcome = after_success(state, tally(2.0), NOW)

    assert outcome.resolve_notice
    assert outcome.state.failures == 0
    assert outcome.state.health is Health.OK
    assert outcome.state.last_error is None
    assert any("recovered after 3" in msg for _, msg in outcome.logs)


def test_success_after_warnings_only_resolves_nothing():
    state, _ = fail(CycleState(), 2)

    outcome = after_success(state, tally(2.0), NOW)

    assert not outcome.resolve_notice


def test_failure_without_any_good_value_says_so():
    outcome = after_failure(CycleState(), "boom", 3)

    assert outcome.state.last_good is None
    assert "no values yet" in outcome.logs[0][1]


def test_each_reset_is_logged_once():
    with_reset = tally(1.0, -4.0, 1.0)

    first = after_success(CycleState(), with_reset, NOW)
    second = after_success(first.state, with_reset, NOW)

    assert len(first.new_resets) == 1
    assert "dropped by 4.000 kWh" in first.logs[0][1]
    assert first.logs[0][0] == logging.WARNING
    assert second.new_resets == ()
    assert second.logs == ()
