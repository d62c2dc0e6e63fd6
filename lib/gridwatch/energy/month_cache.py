"""The month's complete days, kept between cycles of the same local day.

The ``month`` request (day period from the local month start) is nearly all
of a cycle's cost: HA reads and reduces every hourly row of the month in
Python. Yet the days before today do not change once the recorder has
compiled them. So the per-meter sums of those days
(:func:`gridwatch.energy.tally.completed_days`) are kept, and a cycle sends the
``month`` request only when they are missing or no longer fit:

* nothing is kept yet (the first cycle, or the last ``month`` request failed);
* the local day or month changed (today's midnight or the month start moved;
  DST only shifts the instants, the rule stays "same local date");
* the set of statistic ids changed;
* a refresh was asked for (the refresh event, HA starting): the caller drops
  the cache before the cycle;
* the kept sums are provisional: they were taken before the recorder can
  have compiled the last hour before midnight (see :func:`settled_at`).

Otherwise a cycle sends only the ``today`` request and this month = the
kept days + today, exactly as if both requests had been sent.

Pure: the runner holds the current :class:`MonthCache` (or ``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gridwatch.energy.periods import TallyPeriods
from gridwatch.energy.recorder_statistics import StatRow
from gridwatch.energy.tally import CompletedDays, Meter, completed_days

__all__ = [
    "SETTLE_GRACE",
    "MonthCache",
    "MonthCacheHolder",
    "MonthKey",
    "cached_days",
    "fill_month_cache",
    "month_key",
    "settled_at",
]

# HA compiles an hour's statistics at 10 s past the next 5-minute mark
# (recorder/core.py, second=10) on the recorder thread; the grace covers a
# busy recorder. Until then the sums of yesterday may lack its last hour.
SETTLE_GRACE: Final = timedelta(minutes=15)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class MonthKey:
    """What the kept sums are valid for.

    Attributes:
        month_start: first instant of the local month (UTC).
        today_start: first instant of the local day (UTC); the sums cover
            ``month_start`` up to it.
        statistic_ids: the meters they were summed for.
    """

    month_start: datetime
    today_start: datetime
    statistic_ids: frozenset[str]


@dataclass(frozen=True)
class MonthCache:
    """Per-meter sums of the month's complete days.

    Attributes:
        key: the day, month and meters they belong to.
        days: :class:`CompletedDays` per statistic id.
        final: taken once the recorder had compiled every hour before
            midnight; a provisional cache is used by its own cycle only.
    """

    key: MonthKey
    days: Mapping[str, CompletedDays]
    final: bool


def month_key(periods: TallyPeriods, statistic_ids: Iterable[str]) -> MonthKey:
    """Return the key a cycle needs the complete days for.

    Args:
        periods: the cycle's boundaries.
        statistic_ids: every meter's statistic id.

    Returns:
        The :class:`MonthKey`.
    """
    return MonthKey(periods.month_start, periods.today_start, frozenset(statistic_ids))


def settled_at(periods: TallyPeriods) -> datetime:
    """When yesterday's day rows are complete in the recorder.

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


def cached_days(cache: MonthCache | None, key: MonthKey) -> Mapping[str, CompletedDays] | None:
    """Return the kept sums when they serve ``key``, else ``None``.

    Args:
        cache: the kept cache, or ``None`` when cold.
        key: the current cycle's :func:`month_key`.

    Returns:
        The sums, or ``None``: the cycle must send the ``month`` request.
    """
    if cache is None or not cache.final or cache.key != key:
        return None
    return cache.days


def fill_month_cache(
    meters: Sequence[Meter],
    daily: Mapping[str, Sequence[StatRow]],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
    not_before: datetime | None = None,
) -> MonthCache:
    """Sum a ``month`` answer's complete days into a cache.

    Args:
        meters: the configured meters.
        daily: the parsed ``month`` answer of this cycle.
        periods: the cycle's boundaries.
        units_requested: as for :func:`gridwatch.energy.tally.compute_tally`.
        not_before: also provisional before this instant (e.g. a while after
            HA started, when it may still compile hours it missed).

    Returns:
        The cache; final when taken at or after :func:`settled_at` (and
        ``not_before``), or on the month's first day (no complete days).
    """
    settled = settled_at(periods)
    if not_before is not None:
        settled = max(settled, not_before)
    return MonthCache(
        key=month_key(periods, (m.statistic_id for m in meters)),
        days=completed_days(meters, daily, periods, units_requested=units_requested),
        final=periods.now >= settled or periods.month_start == periods.today_start,
    )


class MonthCacheHolder:
    """The cache between one runner's cycles, and the requests to refetch.

    A cycle calls :meth:`lookup`; on ``None`` it sends the ``month`` request
    and hands the parsed answer to :meth:`store`. The cache is dropped before
    that request, so a failed one leaves it cold.
    """

    def __init__(self) -> None:
        self.cache: MonthCache | None = None
        self._refetch = False
        self._not_before: datetime | None = None

    def refetch(self, *, settle_from: datetime | None = None) -> None:
        """Make the next cycle send the ``month`` request.

        Args:
            settle_from: HA (re)started at this time: a cache taken within
                :data:`SETTLE_GRACE` of it is provisional, as the recorder may
                still be compiling hours it missed.
        """
        self._refetch = True
        if settle_from is not None:
            self._not_before = settle_from + SETTLE_GRACE

    def lookup(
        self, periods: TallyPeriods, statistic_ids: Iterable[str]
    ) -> Mapping[str, CompletedDays] | None:
        """Return the complete days for this cycle, or ``None`` to request them.

        Args:
            periods: the cycle's boundaries.
            statistic_ids: every meter's statistic id.

        Returns:
            The kept sums, or ``None`` (the cache is then dropped).
        """
        if self._refetch:
            self._refetch, self.cache = False, None
        days = cached_days(self.cache, month_key(periods, statistic_ids))
        if days is None:
            self.cache = None
        return days

    def store(
        self,
        meters: Sequence[Meter],
        daily: Mapping[str, Sequence[StatRow]],
        periods: TallyPeriods,
        *,
        units_requested: bool = True,
    ) -> Mapping[str, CompletedDays]:
        """Keep a ``month`` answer's complete days (see :func:`fill_month_cache`).

        Returns:
            The sums for this cycle.
        """
        self.cache = fill_month_cache(
            meters, daily, periods, units_requested=units_requested, not_before=self._not_before
        )
        return self.cache.days
