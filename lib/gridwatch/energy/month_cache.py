"""The month's complete days, kept between cycles and re-checked at a bounded cost.

The ``month`` query (day rows from the local month start) is nearly all of a
cold cycle's cost, so its result is kept per meter and day
(:class:`MeterMonth`). What keeps it right (:class:`MonthLedger`):

* ``month`` (cold): the first cycle, a new month, a changed set of meters,
  the refresh event, HA starting. Every complete day is then reckoned from
  its day row (the sum at the day's end), and in the same cycle the recent
  days are rechecked (below).
* ``recheck``: once per UTC hour, on the first cycle of a new local day and
  once the recorder has compiled the hours before midnight (see
  :func:`settled_at`), the last ``recheck_days`` complete days are asked for
  again as HOURLY sums and replace the kept days. Statistics that arrive
  late (a utility's import an hour later, an hour HA compiled late) so reach
  the month within an hour, and recent days are reckoned hour by hour with
  the same rules as today: a reset inside a day counted while the day ran is
  not subtracted once it is complete.
* ``history``: once per UTC hour, meters with no sum before the month start
  (a new meter, or one whose history is imported later) have their month
  asked for again (day rows, only those meters; days already re-read hour
  by hour are kept).

A steady cycle sends only the ``today`` query. Pure apart from holding the
kept days: the runner asks :meth:`MonthLedger.plan` what to send and hands
the parsed answers back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from gridwatch.energy.ledger import Reset, SumPoint, later, walk_sums
from gridwatch.energy.periods import TallyPeriods, day_starts_between, local_days_before
from gridwatch.energy.recorder_statistics import StatRow

__all__ = [
    "DEFAULT_RECHECK_DAYS",
    "SETTLE_GRACE",
    "DayEntry",
    "MeterMonth",
    "MonthLedger",
    "MonthPlan",
    "month_from_days",
    "recheck_month",
    "settled_at",
]

# HA compiles an hour's statistics at 10 s past the next 5-minute mark
# (recorder/core.py, second=10) on the recorder thread; the grace covers a
# busy recorder. Until then the sums of yesterday may lack its last hour.
SETTLE_GRACE: Final = timedelta(minutes=15)
# Yesterday and the day before: a utility's import typically lands hours,
# not days, late. 2 x 24 hourly rows per meter keep the recheck of 500
# meters under AppDaemon's 4 MiB websocket message cap.
DEFAULT_RECHECK_DAYS: Final = 2
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class DayEntry:
    """One complete day of one meter.

    Attributes:
        kwh: the counted energy.
        resets: the drops seen that day, not subtracted.
        closing: the last sum at or before the day's end (carried over days
            without one), the baseline of the next day.
        has_sum: a row of the day had a sum.
        hourly: reckoned from hourly rows (a recheck), not from the day row.
    """

    kwh: float
    resets: tuple[Reset, ...]
    closing: SumPoint | None
    has_sum: bool = True
    hourly: bool = False


@dataclass(frozen=True)
class MeterMonth:
    """A meter's complete days of the month before today.

    Attributes:
        opening: the last sum before the month start, if the recorder had one.
        days: day start (UTC) -> entry, days without rows absent.
        lead_rows: rows before the month start (they only give ``opening``).
    """

    opening: SumPoint | None = None
    days: Mapping[datetime, DayEntry] = field(default_factory=dict)
    lead_rows: int = 0

    @property
    def rows(self) -> int:
        """Rows the recorder had for the meter (days with rows, and the lead)."""
        return self.lead_rows + len(self.days)

    @property
    def has_sum(self) -> bool:
        """The recorder had a sum for the meter before today."""
        return self.opening is not None or any(d.has_sum for d in self.days.values())

    @property
    def kwh(self) -> float:
        """Energy of the complete days."""
        return sum(d.kwh for d in self.days.values())

    @property
    def resets(self) -> tuple[Reset, ...]:
        """Drops of the complete days, in day order."""
        return tuple(r for day in sorted(self.days) for r in self.days[day].resets)

    def closing_before(self, moment: datetime) -> SumPoint | None:
        """The last sum known before ``moment`` (a day start)."""
        point = self.opening
        for day in sorted(self.days):
            if day < moment:
                point = later(point, self.days[day].closing)
        return point


EMPTY_MONTH: Final = MeterMonth()


def settled_at(periods: TallyPeriods) -> datetime:
    """When yesterday's rows are complete in the recorder.

    The last recorder hour of yesterday is the UTC hour that starts before
    local midnight and ends at the first UTC hour boundary at or after it
    (midnight itself, or 30 / 45 minutes later in zones like UTC+5:30); HA
    compiles it just after that boundary.

    Args:
        periods: the cycle's boundaries.

    Returns:
        That boundary plus :data:`SETTLE_GRACE`.
    """
    start = periods.today_start.astimezone(UTC)
    boundary = start.replace(minute=0, second=0, microsecond=0)
    if boundary < start:
        boundary += _HOUR
    return boundary + SETTLE_GRACE


def month_from_days(
    statistic_id: str, daily: Sequence[StatRow], periods: TallyPeriods, scale: float = 1.0
) -> MeterMonth:
    """Reckon a meter's complete days from its ``month`` answer (day rows).

    Args:
        statistic_id: the meter.
        daily: its day rows, sorted; rows from today on are ignored.
        periods: the cycle's boundaries.
        scale: factor from the rows' unit to kWh.

    Returns:
        The :class:`MeterMonth`.
    """
    lead = [r for r in daily if r.start < periods.month_start]
    opening = walk_sums(lead, None, statistic_id, scale).last
    carry = opening
    days: dict[datetime, DayEntry] = {}
    for row in daily:
        if not periods.month_start <= row.start < periods.today_start:
            continue
        walk = walk_sums((row,), carry, statistic_id, scale)
        carry = walk.last
        days[row.start] = DayEntry(walk.kwh, walk.resets, carry, has_sum=walk.sums > 0)
    return MeterMonth(opening, days, len(lead))


def recheck_month(
    kept: MeterMonth,
    statistic_id: str,
    hourly: Sequence[StatRow],
    day_starts: Sequence[datetime],
    window_end: datetime,
    scale: float = 1.0,
) -> MeterMonth:
    """Replace the days of a recheck window with their hour-by-hour reckoning.

    Args:
        kept: the meter's kept month.
        statistic_id: the meter.
        hourly: its hourly rows from one hour before the window to its end.
        day_starts: the window's local day starts (UTC), in order.
        window_end: the end of the window's last day (local midnight today
            for the recheck).
        scale: factor from the rows' unit to kWh.

    Returns:
        The meter's month with those days replaced.
    """
    if not day_starts:
        return kept
    first = day_starts[0]
    lead = walk_sums([r for r in hourly if r.start < first], None, statistic_id, scale).last
    carry = later(kept.closing_before(first), lead)
    days = {d: e for d, e in kept.days.items() if not first <= d < window_end}
    bounds = [*day_starts[1:], window_end]
    for start, end in zip(day_starts, bounds, strict=True):
        day_rows = [r for r in hourly if start <= r.start < end]
        walk = walk_sums(day_rows, carry, statistic_id, scale)
        carry = walk.last
        if day_rows:
            days[start] = DayEntry(walk.kwh, walk.resets, carry, has_sum=walk.sums > 0, hourly=True)
    return MeterMonth(kept.opening, days, kept.lead_rows)


@dataclass(frozen=True)
class MonthPlan:
    """What a cycle must ask besides ``today``.

    Attributes:
        month: send the ``month`` query for every meter (cold).
        recheck_from: send the ``recheck`` query from this day start, or ``None``.
        history: meters to send the ``history`` query for (may be empty).
        first_day: instead of ``history``, re-read this day hour by hour for
            ``first_day_ids``: their first day in the month, reckoned from its
            day row with no sum before it, counted nothing (a meter whose
            history starts this month; its first hourly sum is its start).
        first_day_ids: the meters of ``first_day``.
    """

    month: bool
    recheck_from: datetime | None
    history: tuple[str, ...]
    first_day: datetime | None = None
    first_day_ids: tuple[str, ...] = ()

    @property
    def extra_requests(self) -> int:
        """Requests besides ``today``."""
        return (
            int(self.month)
            + int(self.recheck_from is not None)
            + int(bool(self.history) or self.first_day is not None)
        )


class MonthLedger:
    """The kept complete days of one runner, and when to ask again.

    Args:
        zone: the zone HA counts days in.
        recheck_days: complete days the hourly recheck covers.
    """

    def __init__(self, zone: ZoneInfo, recheck_days: int = DEFAULT_RECHECK_DAYS) -> None:
        self.zone = zone
        self.recheck_days = recheck_days
        self.meters: dict[str, MeterMonth] = {}
        self._key: tuple[datetime, frozenset[str]] | None = None
        self._today: datetime | None = None  # local midnight the days run up to
        self._checked_hour: datetime | None = None
        self._checked_at: datetime | None = None
        self._history_hour: datetime | None = None
        self._not_before: datetime | None = None

    def refetch(self, *, settle_from: datetime | None = None) -> None:
        """Make the next cycle cold (refresh event, HA start).

        Args:
            settle_from: HA (re)started at this time: recheck again once
                :data:`SETTLE_GRACE` has passed, as the recorder may still be
                compiling hours it missed.
        """
        self._key = None
        if settle_from is not None:
            self._not_before = settle_from + SETTLE_GRACE

    def plan(self, periods: TallyPeriods, statistic_ids: Iterable[str]) -> MonthPlan:
        """Decide this cycle's extra queries.

        Args:
            periods: the cycle's boundaries.
            statistic_ids: every meter's statistic id.

        Returns:
            The :class:`MonthPlan`.
        """
        key = (periods.month_start, frozenset(statistic_ids))
        window = self._window(periods)
        if key != self._key or self._today is None or window is None:
            # Cold: the day rows, and at once the recent days hour by hour, so
            # the first figures published are the ones the next cycles keep.
            start = self._recheck_start(periods)
            return MonthPlan(True, start if start < periods.today_start else None, ())
        new_hour = self._checked_hour != periods.hour_start
        due = new_hour or self._today != periods.today_start or self._unsettled(periods)
        recheck = window if due and window < periods.today_start else None
        if self._history_hour == periods.hour_start:
            return MonthPlan(False, recheck, ())
        lacking = sorted(s for s in key[1] if self._lacks_history(s, periods))
        firsts = {s: d for s in lacking if (d := self._unresolved_first_day(s, periods))}
        if firsts:
            day = min(firsts.values())
            ids = tuple(s for s, d in firsts.items() if d == day)
            return MonthPlan(False, recheck, (), day, ids)
        return MonthPlan(False, recheck, tuple(lacking))

    def _lacks_history(self, statistic_id: str, periods: TallyPeriods) -> bool:
        """No sum known before the month start, while the month has complete days.

        A new meter, or one whose history is imported after the first cycle
        (its days would otherwise count from its first sum on).
        """
        return (
            periods.month_start < periods.today_start
            and self.month_of(statistic_id).opening is None
        )

    def _window(self, periods: TallyPeriods) -> datetime | None:
        """The recheck window's first day; ``None`` when kept days cannot be rolled on."""
        start = self._recheck_start(periods)
        if self._today is not None and start > self._today:
            return None  # days between the kept ones and the window would be missing
        return start

    def _unresolved_first_day(self, statistic_id: str, periods: TallyPeriods) -> datetime | None:
        """The meter's first day, when its day row only gave a baseline.

        Days the recheck covers are left to it.
        """
        days = self.month_of(statistic_id).days
        if not days:
            return None
        first = min(days)
        if days[first].hourly or first >= self._recheck_start(periods):
            return None
        return first

    def _recheck_start(self, periods: TallyPeriods) -> datetime:
        return max(
            periods.month_start,
            local_days_before(periods.today_start, self.recheck_days, self.zone),
        )

    def _unsettled(self, periods: TallyPeriods) -> bool:
        checked = self._checked_at
        if checked is None:
            return True
        marks = [settled_at(periods)]
        if self._not_before is not None:
            marks.append(self._not_before)
        return any(checked < mark <= periods.now for mark in marks)

    def store_month(
        self,
        daily: Mapping[str, Sequence[StatRow]],
        periods: TallyPeriods,
        scales: Mapping[str, float],
        *,
        only: Iterable[str] | None = None,
    ) -> None:
        """Keep a ``month`` (or, with ``only``, ``history``) answer.

        Args:
            daily: the parsed answer.
            periods: the cycle's boundaries.
            scales: factor to kWh per statistic id (every meter).
            only: the meters the answer is for (``history``); ``None``: all,
                and the ledger starts afresh (cold).
        """
        if only is None:
            self.meters = {}
            self._key = (periods.month_start, frozenset(scales))
            self._today = periods.today_start
            self._checked_hour = self._checked_at = None
            # The history of meters without a sum before the month only next
            # hour (it was just asked for).
            self._history_hour = periods.hour_start
            ids: Iterable[str] = scales
        else:
            ids = only
            self._history_hour = periods.hour_start
        for sid in ids:
            fresh = month_from_days(sid, daily.get(sid, ()), periods, scales[sid])
            if only is not None:
                # Days already re-read hour by hour stay so (a history read
                # must not undo the reckoning of a reset inside a day).
                hourly = {d: e for d, e in self.month_of(sid).days.items() if e.hourly}
                fresh = MeterMonth(fresh.opening, {**fresh.days, **hourly}, fresh.lead_rows)
            self.meters[sid] = fresh

    def store_recheck(
        self,
        hourly: Mapping[str, Sequence[StatRow]],
        window_start: datetime,
        periods: TallyPeriods,
        scales: Mapping[str, float],
    ) -> None:
        """Replace the window's days by a ``recheck`` answer.

        Args:
            hourly: the parsed answer.
            window_start: the first day of the window (``MonthPlan.recheck_from``).
            periods: the cycle's boundaries.
            scales: factor to kWh per statistic id (every meter).
        """
        day_starts = day_starts_between(window_start, periods.today_start, self.zone)
        for sid, scale in scales.items():
            kept = self.meters.get(sid, EMPTY_MONTH)
            self.meters[sid] = recheck_month(
                kept, sid, hourly.get(sid, ()), day_starts, periods.today_start, scale
            )
        self._today = periods.today_start
        self._checked_hour = periods.hour_start
        self._checked_at = periods.now

    def store_first_day(
        self,
        hourly: Mapping[str, Sequence[StatRow]],
        plan: MonthPlan,
        periods: TallyPeriods,
        scales: Mapping[str, float],
    ) -> None:
        """Replace the meters' first day by its hour-by-hour reckoning (``plan.first_day``).

        Args:
            hourly: the parsed answer of :meth:`first_day_end`'s window.
            plan: the cycle's plan.
            periods: the cycle's boundaries.
            scales: factor to kWh per statistic id (every meter).
        """
        if plan.first_day is None:
            return
        end = self.first_day_end(plan.first_day)
        for sid in plan.first_day_ids:
            self.meters[sid] = recheck_month(
                self.month_of(sid), sid, hourly.get(sid, ()), [plan.first_day], end, scales[sid]
            )
        self._history_hour = periods.hour_start

    def first_day_end(self, day: datetime) -> datetime:
        """The end of the local day starting at ``day``."""
        return local_days_before(day + timedelta(hours=36), 0, self.zone)

    def month_of(self, statistic_id: str) -> MeterMonth:
        """The kept days of a meter (empty when it has none)."""
        return self.meters.get(statistic_id, EMPTY_MONTH)
