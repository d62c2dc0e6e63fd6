"""The tally's rules for turning the recorder's running sums into energy.

This is the ONE place that decides what a row of recorder statistics means.
The rules, applied to a meter's rows in time order:

* A row whose ``sum`` is empty (``None``: a gap, a NaN, a statistic without
  sum) is a gap: it counts nothing and is never taken as a change against 0.
  The energy across a gap lands on the first row after it that has a sum,
  reckoned against the last sum before it (as HA does inside a window). A day
  whose last hourly row is empty is bridged the same way from the days around it.
* The first sum with no earlier sum to compare it with (none in the window or
  in the kept days) is only a baseline: it counts nothing. Such a meter's
  first row is "unanchored".
* A sum that steps back by no more than a tolerance (a rounding of the
  meter or of an import, e.g. 0.4 Wh) is neither a reset nor counted: the
  next rows count from the higher sum, so the step back and forth nets to 0.
* A sum that drops further is a meter reset or replacement the recorder did not
  absorb: it is reported as a :class:`Reset` and never subtracted, whether the
  day is still running or complete. The next rows count from the lower sum.

Pure functions; the callers pick the rows (today's hours, the month's days,
the last days' hours) and carry the last sum from one call to the next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gridwatch.energy.recorder_statistics import StatRow

__all__ = ["Reset", "SumPoint", "Walk", "later", "walk_sums"]


@dataclass(frozen=True)
class Reset:
    """A drop of the recorder's sum that was not subtracted.

    Attributes:
        statistic_id: the meter's statistic.
        start: start of the row the drop was seen in (UTC).
        change_kwh: the (negative) change.
    """

    statistic_id: str
    start: datetime
    change_kwh: float


@dataclass(frozen=True)
class SumPoint:
    """The recorder's running sum at an instant.

    Attributes:
        at: the end of the row that carried it (UTC).
        kwh: the sum in kWh.
    """

    at: datetime
    kwh: float


@dataclass(frozen=True)
class Walk:
    """What a run of rows added up to.

    Attributes:
        kwh: the counted (non-negative) changes.
        resets: the drops, not subtracted.
        last: the last sum seen, or the baseline when the rows had none.
        rows: rows walked.
        sums: rows that had a sum.
        unanchored: the first sum had no baseline and counted nothing.
    """

    kwh: float
    resets: tuple[Reset, ...]
    last: SumPoint | None
    rows: int
    sums: int
    unanchored: bool


def later(a: SumPoint | None, b: SumPoint | None) -> SumPoint | None:
    """The more recent of two sum points (``None`` loses)."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b.at > a.at else a


def walk_sums(
    rows: Iterable[StatRow],
    baseline: SumPoint | None,
    statistic_id: str,
    scale: float = 1.0,
    tolerance_kwh: float = 0.0,
) -> Walk:
    """Apply the rules to rows in time order.

    Args:
        rows: the meter's rows, sorted by start.
        baseline: the last sum before the first row, or ``None`` if unknown.
        statistic_id: the meter (named in resets).
        scale: factor from the rows' unit to kWh.
        tolerance_kwh: backward steps up to this are rounding, not a reset.

    Returns:
        The :class:`Walk`.
    """
    total = 0.0
    resets: list[Reset] = []
    last = baseline
    count = sums = 0
    unanchored = False
    for row in rows:
        count += 1
        if row.sum is None:
            continue  # a gap: never a change against 0
        sums += 1
        value = row.sum * scale
        if last is None:
            unanchored = True  # a baseline only
        else:
            change = value - last.kwh
            if -tolerance_kwh <= change < 0:
                # A rounding: counting goes on from the higher sum, as of now.
                last = SumPoint(row.end, last.kwh)
                continue
            if change < 0:
                resets.append(Reset(statistic_id, row.start, change))
            else:
                total += change
        last = SumPoint(row.end, value)
    return Walk(total, tuple(resets), last, count, sums, unanchored)
