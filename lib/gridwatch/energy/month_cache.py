"""The month's complete days, read hour by hour, kept between cycles.

ONE rule, wherever a figure comes from: every complete day of the month is
reckoned from the recorder's HOURLY rows with the rules of
:mod:`gridwatch.energy.ledger`, carried from the last sum before the month
(looked for :data:`~gridwatch.energy.recorder_statistics.OPENING_LEAD`
back). A tally that starts cold (app start, HA restart, the refresh event)
therefore publishes exactly what one that ran all month publishes: a reset
inside an old day is never netted against its use, and an empty last hour of
the previous month moves nothing but that hour.

Why hourly rows read cold rather than what a running tally learned, kept
somewhere: a day row carries only its last hour's sum, so no cheap read
tells which days hold a reset (a 40 kWh drop on a day with 50 kWh of use
looks like 10 kWh of use); and whatever a running tally would keep (an
attribute of its entity, a file) is lost when HA forgets ``set_state``
entities at a restart, or was never learned by a tally that was not running.
The price is a bigger cold read, split into pages whose answers stay under
AppDaemon's message cap (:func:`~gridwatch.energy.recorder_statistics.split_for_answer`),
at most :data:`MAX_PAGES_PER_CYCLE` a cycle.

What each meter's kept month is read by (:class:`MonthLedger`):

* ``month`` (full): the meter's first read of the month, the refresh event,
  HA starting, history that arrived later (the ``probe``). Until it is read
  the meter's figures are marked stale, with the reason.
* rolling on: a new local day reads the days since the kept ones end.
* ``recheck``: once per UTC hour, and once the recorder has compiled the hours
  before midnight (see :func:`settled_at`), the last ``recheck_days``
  complete days are read again: late statistics reach the month within an
  hour. Older history that changes needs the refresh event.
* ``probe``: each cycle, meters with no sum before the month start (new this
  month, or history still missing) are asked for their day rows: a row on a
  day before the first row read is history that arrived (history confined
  to the hours of that first day before its first row is not seen: the
  refresh event reads it),
  and the meter's month is read in the same cycle (or, past
  :data:`MAX_PAGES_PER_CYCLE`, the next, marked stale until then).

Pure apart from holding the kept days: the runner asks :meth:`MonthLedger.plan`
what to send and hands the parsed answers back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from gridwatch.energy.ledger import Reset, SumPoint, later, walk_sums
from gridwatch.energy.periods import TallyPeriods, day_starts_between, local_days_before
from gridwatch.energy.recorder_statistics import (
    StatRow,
    month_rows_per_meter,
    probe_rows_per_meter,
    split_for_answer,
)

__all__ = [
    "DEFAULT_RECHECK_DAYS",
    "HISTORY_CHANGED",
    "MAX_PAGES_PER_CYCLE",
    "SETTLE_GRACE",
    "DayEntry",
    "MeterMonth",
    "MonthLedger",
    "MonthPlan",
    "Page",
    "PageKind",
    "read_days",
    "settled_at",
]

# HA compiles an hour's statistics at 10 s past the next 5-minute mark
# (recorder/core.py, second=10) on the recorder thread; the grace covers a
# busy recorder. Until then the sums of yesterday may lack its last hour.
SETTLE_GRACE: Final = timedelta(minutes=15)
# Yesterday and the day before: a utility's import typically lands hours,
# not days, late.
DEFAULT_RECHECK_DAYS: Final = 2
# Pages (requests besides ``today``) one cycle sends at most, so a cycle's
# requests stay flat whatever the number of meters: 12 pages of 3 MiB read
# the whole month of ~500 meters, or rechecks 4 days of ~4,000, in one
# cycle; more meters take more cycles (marked stale meanwhile).
MAX_PAGES_PER_CYCLE: Final = 12
_HOUR = timedelta(hours=1)

READ_PENDING = "the month is not read yet (more meters than one cycle reads); next cycle"
HISTORY_CHANGED = (
    "the recorder has history for this meter that was not there at its last read "
    "(imported later?); it is read again on the next cycle"
)
DAYS_PENDING = "yesterday's hours are not read yet; next cycle"
REREAD_PENDING = (
    "the month is being read again (refresh event or HA start) and more meters wait than "
    "one cycle reads; the value shown is from the last read; next cycle"
)


@dataclass(frozen=True)
class DayEntry:
    """One complete day of one meter, reckoned from its hourly rows.

    Attributes:
        kwh: the counted energy.
        resets: the drops seen that day, not subtracted.
        closing: the last sum at or before the day's end (carried over days
            without one), the baseline of the next day.
        has_sum: a row of the day had a sum.
    """

    kwh: float
    resets: tuple[Reset, ...]
    closing: SumPoint | None
    has_sum: bool = True


@dataclass(frozen=True)
class MeterMonth:
    """A meter's complete days of the month before today.

    Attributes:
        opening: the last sum before the month start, if the recorder had one.
        days: day start (UTC) -> entry, days without rows absent.
        lead_rows: rows before the month start (they only give ``opening``).
        through: the local midnight (UTC) the days were read up to.
        first_row: start of the earliest row read (lead included), if any.
    """

    opening: SumPoint | None = None
    days: Mapping[datetime, DayEntry] = field(default_factory=dict)
    lead_rows: int = 0
    through: datetime | None = None
    first_row: datetime | None = None

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


def read_days(
    kept: MeterMonth,
    statistic_id: str,
    hourly: Sequence[StatRow],
    day_starts: Sequence[datetime],
    window_end: datetime,
    scale: float = 1.0,
    tolerance_kwh: float = 0.0,
) -> MeterMonth:
    """Replace the days of a window with their hour-by-hour reckoning.

    Args:
        kept: the meter's kept month (:data:`EMPTY_MONTH` for a full read).
        statistic_id: the meter.
        hourly: its hourly rows from the window's lead to its end.
        day_starts: the window's local day starts (UTC), in order (may be
            empty: the first day of a month reads the opening only).
        window_end: the end of the window's last day (local midnight today).
        scale: factor from the rows' unit to kWh.
        tolerance_kwh: backward steps up to this are no reset (rounding).

    Returns:
        The meter's month with those days replaced, read through ``window_end``.
    """
    first = day_starts[0] if day_starts else window_end
    lead_rows = [r for r in hourly if r.start < first]
    lead = walk_sums(lead_rows, None, statistic_id, scale, tolerance_kwh).last
    carry = later(kept.closing_before(first), lead)
    days = {d: e for d, e in kept.days.items() if not first <= d < window_end}
    bounds = [*day_starts[1:], window_end] if day_starts else []
    for start, end in zip(day_starts, bounds, strict=True):
        day_rows = [r for r in hourly if start <= r.start < end]
        walk = walk_sums(day_rows, carry, statistic_id, scale, tolerance_kwh)
        carry = walk.last
        if day_rows:
            days[start] = DayEntry(walk.kwh, walk.resets, carry, has_sum=walk.sums > 0)
    first_row = min((r.start for r in hourly), default=None)
    if kept is EMPTY_MONTH:
        return MeterMonth(lead, days, len(lead_rows), window_end, first_row)
    if kept.first_row is not None:
        first_row = kept.first_row if first_row is None else min(first_row, kept.first_row)
    return MeterMonth(kept.opening, days, kept.lead_rows, window_end, first_row)


class PageKind(StrEnum):
    """What a page of the plan reads."""

    MONTH = "month"  # hourly rows of the whole month, with the opening's lead
    DAYS = "days"  # hourly rows from a day inside the month (new day, recheck)
    PROBE = "probe"  # day rows: one before the first row read's day is new history


@dataclass(frozen=True)
class Page:
    """One request besides ``today``.

    Attributes:
        kind: what it reads.
        ids: the meters it names (its answer stays under the budget).
        window_start: the first day it reads (``MONTH``, ``PROBE``: the month start).
    """

    kind: PageKind
    ids: tuple[str, ...]
    window_start: datetime


@dataclass(frozen=True)
class MonthPlan:
    """What a cycle must ask besides ``today``.

    Attributes:
        pages: the requests, in order.
        waiting: meters whose days this cycle does not read though they are
            due, and why (their figures are published stale).
    """

    pages: tuple[Page, ...]
    waiting: Mapping[str, str] = field(default_factory=dict)

    @property
    def extra_requests(self) -> int:
        """Requests besides ``today``."""
        return len(self.pages)

    @property
    def month(self) -> bool:
        """A full month read is among them."""
        return any(p.kind is PageKind.MONTH for p in self.pages)


class MonthLedger:
    """The kept complete days of one runner, and when to read them again.

    Args:
        zone: the zone HA counts days in.
        recheck_days: complete days the hourly recheck covers.
        tolerance_kwh: backward steps up to this are rounding, not a reset.
        max_pages: requests besides ``today`` per cycle.
    """

    def __init__(
        self,
        zone: ZoneInfo,
        recheck_days: int = DEFAULT_RECHECK_DAYS,
        *,
        tolerance_kwh: float = 0.0,
        max_pages: int = MAX_PAGES_PER_CYCLE,
    ) -> None:
        self.zone = zone
        self.recheck_days = recheck_days
        self.tolerance_kwh = tolerance_kwh
        self.max_pages = max_pages
        self.meters: dict[str, MeterMonth] = {}
        self._month: datetime | None = None
        self._full: dict[str, str] = {}  # meter -> why it is read again
        self._checked_hour: dict[str, datetime] = {}
        self._checked_at: dict[str, datetime] = {}
        self._not_before: datetime | None = None

    def refetch(self, *, settle_from: datetime | None = None) -> None:
        """Read every meter's month again (refresh event, HA start).

        The kept days stay published until each meter's new read lands.

        Args:
            settle_from: HA (re)started at this time: recheck again once
                :data:`SETTLE_GRACE` has passed, as the recorder may still be
                compiling hours it missed.
        """
        for sid in self.meters:
            self._full.setdefault(sid, REREAD_PENDING)
        if settle_from is not None:
            self._not_before = settle_from + SETTLE_GRACE

    def plan(self, periods: TallyPeriods, statistic_ids: Iterable[str]) -> MonthPlan:
        """Decide this cycle's extra requests.

        Args:
            periods: the cycle's boundaries.
            statistic_ids: every meter's statistic id.

        Returns:
            The :class:`MonthPlan`.
        """
        if periods.month_start != self._month:
            # A new month (or the first cycle): nothing kept counts in it.
            self.meters, self._full = {}, {}
            self._checked_hour, self._checked_at = {}, {}
            self._month = periods.month_start
        ids = sorted(set(statistic_ids))
        recheck = self._recheck_start(periods)
        # (priority, window start, kind) -> meters; a meter lacking days first.
        groups: dict[tuple[int, datetime, PageKind], list[str]] = {}
        why: dict[str, str] = {}
        for sid in ids:
            kept = self.meters.get(sid)
            if kept is None or sid in self._full or kept.through is None:
                key = (1, periods.month_start, PageKind.MONTH)
                why[sid] = self._full.get(sid) or READ_PENDING
            elif kept.through < periods.today_start:
                start = min(kept.through, recheck)
                key = (0, start, self._kind(start, periods))
                why[sid] = DAYS_PENDING
            elif self._due(sid, periods):
                # While the window reaches the month start, the recheck reads
                # the opening's lead again too (a late row before the month).
                key = (2, recheck, self._kind(recheck, periods))
            else:
                continue
            groups.setdefault(key, []).append(sid)
        pages: list[Page] = []
        for prio, start, kind in sorted(groups):
            rows = month_rows_per_meter(start, periods)
            for chunk in split_for_answer(groups[prio, start, kind], rows):
                pages.append(Page(kind, chunk, start))
        # A recheck reads recent days only: it cannot show history before them.
        read = {s for p in pages[: self.max_pages] if p.kind is PageKind.MONTH for s in p.ids}
        probe = [sid for sid in ids if sid not in read and self._lacks_history(sid)]
        for chunk in split_for_answer(probe, probe_rows_per_meter(periods)):
            pages.append(Page(PageKind.PROBE, chunk, periods.month_start))
        # Reads before probes; what does not fit waits for the next cycle.
        sent = tuple(pages[: self.max_pages])
        sent_ids = {sid for page in sent for sid in page.ids}
        waiting = {sid: why[sid] for sid in why if sid not in sent_ids}
        waiting |= {sid: r for sid, r in self._full.items() if r and sid not in sent_ids}
        return MonthPlan(sent, waiting)

    def reread_pages(
        self, periods: TallyPeriods, statistic_ids: Iterable[str], budget: int
    ) -> tuple[Page, ...]:
        """Pages that read the month of meters a probe found changed, this cycle.

        Args:
            periods: the cycle's boundaries.
            statistic_ids: the meters.
            budget: pages this cycle may still send.

        Returns:
            At most ``budget`` pages; meters left out stay due (and stale).
        """
        start = periods.month_start
        rows = month_rows_per_meter(start, periods)
        pages = [Page(PageKind.MONTH, c, start) for c in split_for_answer(statistic_ids, rows)]
        return tuple(pages[: max(0, budget)])

    @staticmethod
    def _kind(window_start: datetime, periods: TallyPeriods) -> PageKind:
        return PageKind.MONTH if window_start <= periods.month_start else PageKind.DAYS

    def _lacks_history(self, statistic_id: str) -> bool:
        """Read, with no sum before the month start: history may still arrive."""
        kept = self.meters.get(statistic_id)
        return kept is not None and kept.opening is None and statistic_id not in self._full

    def _recheck_start(self, periods: TallyPeriods) -> datetime:
        return max(
            periods.month_start,
            local_days_before(periods.today_start, self.recheck_days, self.zone),
        )

    def _due(self, statistic_id: str, periods: TallyPeriods) -> bool:
        """The meter's recent days were last read in an earlier UTC hour, or
        before yesterday's last hour (or HA's restart) settled."""
        checked = self._checked_at.get(statistic_id)
        if checked is None or self._checked_hour.get(statistic_id) != periods.hour_start:
            return True
        marks = [settled_at(periods)]
        if self._not_before is not None:
            marks.append(self._not_before)
        return any(checked < mark <= periods.now for mark in marks)

    def store(
        self,
        page: Page,
        hourly: Mapping[str, Sequence[StatRow]],
        periods: TallyPeriods,
        scales: Mapping[str, float],
    ) -> None:
        """Keep a ``MONTH`` or ``DAYS`` page's answer.

        Args:
            page: the page sent.
            hourly: its parsed answer.
            periods: the cycle's boundaries.
            scales: factor to kWh per statistic id (every meter).
        """
        day_starts = day_starts_between(page.window_start, periods.today_start, self.zone)
        for sid in page.ids:
            kept = EMPTY_MONTH if page.kind is PageKind.MONTH else self.month_of(sid)
            self.meters[sid] = read_days(
                kept,
                sid,
                hourly.get(sid, ()),
                day_starts,
                periods.today_start,
                scales[sid],
                self.tolerance_kwh,
            )
            self._full.pop(sid, None)
            self._checked_hour[sid] = periods.hour_start
            self._checked_at[sid] = periods.now

    def store_probe(
        self, page: Page, daily: Mapping[str, Sequence[StatRow]], periods: TallyPeriods
    ) -> tuple[str, ...]:
        """Find the meters of a ``PROBE`` page whose history arrived.

        A meter with a day row before the day of its first row read (any row,
        when none was read) is read in full: this cycle if pages are left,
        else the next.

        Args:
            page: the page sent.
            daily: its parsed answer (day rows).
            periods: the cycle's boundaries.

        Returns:
            The meters found changed.
        """
        changed = []
        for sid in page.ids:
            first = self.month_of(sid).first_row
            # HA's day window reaches the end of today, which no read covers.
            rows = [r for r in daily.get(sid, ()) if r.start < periods.today_start]
            if not rows:
                continue
            if first is None or rows[0].start < local_days_before(first, 0, self.zone):
                self._full[sid] = HISTORY_CHANGED
                changed.append(sid)
        return tuple(changed)

    def is_due_again(self, statistic_id: str) -> bool:
        """The meter's month is still to be read again (found changed, not read)."""
        return statistic_id in self._full

    def month_of(self, statistic_id: str) -> MeterMonth:
        """The kept days of a meter (empty when it has none)."""
        return self.meters.get(statistic_id, EMPTY_MONTH)
