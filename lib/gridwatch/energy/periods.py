"""Local calendar periods for the energy tally: today, this month, the hour.

Pure and DST-aware: every boundary is the first instant of a local date (or
hour) in the given zone, returned as a tz-aware UTC datetime. A day is 23 or
25 hours long on a DST change; a local midnight that does not exist (zones
that shift at 00:00) maps to the first instant that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "TallyPeriods",
    "day_start",
    "day_starts_between",
    "local_days_before",
    "month_start",
    "tally_periods",
    "zone_of",
]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 on a nonexistent midnight uses the offset before the gap, which
    # converts to the UTC instant of the gap itself: the day's first instant.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the first instant of a local date.

    Args:
        day: the local calendar date.
        zone: the local time zone (HA's configured zone).

    Returns:
        The instant as a UTC datetime.
    """
    return _local_midnight(day, zone)


def day_starts_between(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Return the first instants of the local days that start in ``[start, end)``.

    Args:
        start: a local midnight (UTC datetime), included.
        end: an instant after it, excluded.
        zone: the local time zone.

    Returns:
        The day starts, as UTC datetimes, in order.
    """
    out: list[datetime] = []
    day = start.astimezone(zone).date()
    moment = day_start(day, zone)
    while moment < end:
        if moment >= start:
            out.append(moment)
        day += timedelta(days=1)
        moment = day_start(day, zone)
    return out


def local_days_before(moment: datetime, days: int, zone: ZoneInfo) -> datetime:
    """Return the first instant of the local date ``days`` days before ``moment``'s.

    Args:
        moment: any instant.
        days: how many local days back (0: the day of ``moment``).
        zone: the local time zone.

    Returns:
        The instant as a UTC datetime.
    """
    return day_start(moment.astimezone(zone).date() - timedelta(days=days), zone)


def month_start(day: date, zone: ZoneInfo) -> datetime:
    """Return the first instant of the local month that holds ``day``.

    Args:
        day: any local date in the month.
        zone: the local time zone.

    Returns:
        The instant as a UTC datetime.
    """
    return _local_midnight(day.replace(day=1), zone)


@dataclass(frozen=True)
class TallyPeriods:
    """The boundaries one tally cycle works with, all UTC.

    Attributes:
        now: the cycle's time.
        today_start: first instant of the local day holding ``now``.
        tomorrow_start: first instant of the next local day (the day may be
            23 or 25 hours long).
        month_start: first instant of the local month holding ``now``.
        hour_start: start of the UTC hour holding ``now``; the recorder's
            hourly statistics are aligned to UTC hours.
    """

    now: datetime
    today_start: datetime
    tomorrow_start: datetime
    month_start: datetime
    hour_start: datetime

    @property
    def day_length(self) -> timedelta:
        """Length of today: 24 h, or 23 h / 25 h on a DST change."""
        return self.tomorrow_start - self.today_start


def tally_periods(now: datetime, zone: ZoneInfo) -> TallyPeriods:
    """Compute today's, this month's and this hour's boundaries for ``now``.

    Args:
        now: the current time; must be tz-aware.
        zone: the local time zone the days and months are counted in.

    Returns:
        The cycle's :class:`TallyPeriods`.

    Raises:
        ValueError: ``now`` is naive (a naive time has no defined instant).
    """
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    now_utc = now.astimezone(UTC)
    local_day = now_utc.astimezone(zone).date()
    return TallyPeriods(
        now=now_utc,
        today_start=day_start(local_day, zone),
        tomorrow_start=day_start(local_day + timedelta(days=1), zone),
        month_start=month_start(local_day, zone),
        hour_start=now_utc.replace(minute=0, second=0, microsecond=0),
    )


def zone_of(tz: tzinfo | None) -> ZoneInfo | None:
    """Find the IANA zone behind a datetime's tzinfo.

    AppDaemon 4.5 hands out pytz zones (``.zone``); the standard library and
    HA use :class:`ZoneInfo` (``.key``); ``datetime.UTC`` has neither.

    Args:
        tz: a tzinfo, e.g. ``port.now().tzinfo``.

    Returns:
        The zone, or ``None`` when it cannot be named (a fixed offset other than UTC).
    """
    if isinstance(tz, ZoneInfo):
        return tz
    name = getattr(tz, "zone", None) or getattr(tz, "key", None)
    if isinstance(name, str):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    if tz is not None and tz.utcoffset(None) == timedelta(0):
        return ZoneInfo("UTC")
    return None
