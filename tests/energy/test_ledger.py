"""The ledger's rules, row by row (lib/gridwatch/energy/ledger.py).

The whole tally against sums worked out by hand, cold and running, is in
tests/energy/test_one_rule.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridwatch.energy.ledger import Reset, SumPoint, walk_sums
from gridwatch.energy.recorder_statistics import StatRow
from tests.energy.recorder_model import HOUR

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


def test_a_step_back_within_the_tolerance_is_rounding_not_a_reset_nor_counted_twice():
    # 0.4 Wh back (seen on a real meter), then up again: 0.6 Wh of use in all.
    rows = [row(0, 10.0), row(1, 9.9996), row(2, 10.0006)]
    walk = walk_sums(rows, SumPoint(T0, 10.0), "s", tolerance_kwh=0.001)
    assert walk.resets == ()
    assert walk.kwh == pytest.approx(0.0006)
    # Beyond the tolerance it is a reset, and the rise after it counts.
    walk = walk_sums(rows, SumPoint(T0, 10.0), "s", tolerance_kwh=0.0001)
    assert walk.resets == (Reset("s", T0 + HOUR, pytest.approx(-0.0004)),)
    assert walk.kwh == pytest.approx(0.001)
