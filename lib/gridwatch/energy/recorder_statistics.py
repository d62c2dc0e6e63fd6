"""Build and parse the recorder statistics queries of the energy tally.

Every query is ONE ``recorder/statistics_during_period`` websocket command
naming every meter (or, for :func:`history_request`, every meter whose month
is still incomplete), so the number of requests never grows with the number
of meters. The tally asks for the recorder's running ``sum`` and works the
changes out itself (:mod:`gridwatch.energy.ledger`): HA's own ``change``
counts the first row of a window against a sum of 0 when the row before the
window has no sum, which publishes a meter's lifetime reading.

* ``today`` (every cycle): hourly ``sum`` and ``state`` from one hour before
  local midnight to now. The hour before midnight gives the meter reading at
  midnight, the baseline of today's first hour and of the live partial hour;
  its change is not counted today.
* ``month`` (first cycle, refresh, HA start, new month): daily ``sum`` from
  two local days before the month start to local midnight today. The days
  before the month only give the baseline sum (see :data:`MONTH_LEAD_DAYS`).
* ``recheck`` (once an hour and after midnight): hourly ``sum`` of the last
  ``recheck_days`` complete days, so statistics that arrive late (imports,
  an hour the recorder compiled late) reach the month, and so recent days are
  reckoned hour by hour, as today was.
* ``history`` (once an hour, only while some meter has no sum before the
  month start): the ``month`` query for just those meters, for history
  imported after the first cycle.

The recorder answers (HA 2024.1, ``recorder/websocket_api.py``) with
``{statistic_id: [{"start": ms, "end": ms, "sum": float|None,
"state": float|None}, ...]}``; a statistic with no rows in the window is
absent. ``day`` rows carry the sum of the day's LAST hourly row (``None`` when
that row has none). HA aligns ``day`` windows to local days in ITS time zone,
which is why the tally counts days in HA's zone. Asking ``units: {"energy":
"kWh"}`` makes the recorder convert every energy statistic to kWh itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gridwatch.energy.periods import TallyPeriods

__all__ = [
    "BASELINE_LEAD",
    "COMMAND_TYPE",
    "MAX_REQUESTS_PER_CYCLE",
    "MONTH_LEAD_DAYS",
    "REQUESTS_PER_CYCLE",
    "StatRow",
    "StatisticsFormatError",
    "history_request",
    "month_request",
    "parse_statistics",
    "recheck_request",
    "today_request",
]

COMMAND_TYPE: Final = "recorder/statistics_during_period"
# A steady cycle sends ``today`` only, whatever the number of meters.
REQUESTS_PER_CYCLE: Final = 1
# today + month (or recheck) + history, the worst cycle.
MAX_REQUESTS_PER_CYCLE: Final = 3

# The hour before a window carries the sum (and reading) at its start.
BASELINE_LEAD: Final = timedelta(hours=1)
# Days before the month start asked for in the ``month`` query: one gives the
# sum at the month start; the second bridges a last hour of the month before
# that has no sum (then the day's row has none either).
MONTH_LEAD_DAYS: Final = 2


class StatisticsFormatError(ValueError):
    """The recorder's answer does not have the documented shape."""


@dataclass(frozen=True)
class StatRow:
    """One statistics row of one meter.

    Attributes:
        start: period start (UTC).
        end: period end (UTC).
        sum: the recorder's running sum at the end of the period, or ``None``
            when the row has none (a gap, a NaN, a statistic without sum).
        state: the meter reading at the end of the period, when asked for.
    """

    start: datetime
    end: datetime
    sum: float | None
    state: float | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _command(
    statistic_ids: Iterable[str],
    start: datetime,
    end: datetime,
    period: str,
    types: list[str],
    request_units: bool,
) -> dict[str, Any]:
    ids = sorted(set(statistic_ids))
    if not ids:
        raise ValueError("at least one statistic id is needed")
    command: dict[str, Any] = {
        "type": COMMAND_TYPE,
        "start_time": _iso(start),
        "end_time": _iso(end),
        "statistic_ids": ids,
        "period": period,
        "types": types,
    }
    if request_units:
        command["units"] = {"energy": "kWh"}
    return command


def today_request(
    statistic_ids: Iterable[str], periods: TallyPeriods, *, request_units: bool = True
) -> dict[str, Any]:
    """The ``today`` command: hourly sum and state, the hour before midnight to now.

    Args:
        statistic_ids: every meter's statistic id (duplicates are merged).
        periods: the cycle's boundaries.
        request_units: ask the recorder to convert to kWh (HA >= 2022.10).

    Returns:
        The command, ready for the websocket port (it adds ``id``).

    Raises:
        ValueError: no statistic ids (the recorder rejects an empty list).
    """
    return _command(
        statistic_ids,
        periods.today_start - BASELINE_LEAD,
        periods.now,
        "hour",
        ["sum", "state"],
        request_units,
    )


def month_request(
    statistic_ids: Iterable[str], periods: TallyPeriods, *, request_units: bool = True
) -> dict[str, Any]:
    """The ``month`` command: daily sums from before the month start to midnight today.

    HA extends a ``day`` window to whole local days, so the answer also holds
    today's row; the tally ignores it (today comes from hourly rows).

    Args:
        statistic_ids: the meters to ask for.
        periods: the cycle's boundaries.
        request_units: as for :func:`today_request`.

    Returns:
        The command.
    """
    # HA aligns the start to its local midnight; 2 x 24 h back lands inside the
    # right day even across a DST change (a day is 23 to 25 hours long).
    start = periods.month_start - timedelta(days=MONTH_LEAD_DAYS) + timedelta(hours=2)
    return _command(statistic_ids, start, periods.today_start, "day", ["sum"], request_units)


def history_request(
    statistic_ids: Iterable[str], periods: TallyPeriods, *, request_units: bool = True
) -> dict[str, Any]:
    """The ``history`` command: :func:`month_request` for meters still lacking history."""
    return month_request(statistic_ids, periods, request_units=request_units)


def recheck_request(
    statistic_ids: Iterable[str],
    window_start: datetime,
    periods: TallyPeriods,
    *,
    request_units: bool = True,
    window_end: datetime | None = None,
) -> dict[str, Any]:
    """The ``recheck`` command: hourly sums of the last complete days.

    Args:
        statistic_ids: every meter's statistic id.
        window_start: first instant of the first day to recheck (UTC).
        periods: the cycle's boundaries.
        request_units: as for :func:`today_request`.
        window_end: end of the window; default local midnight today (a
            meter's first day alone ends earlier).

    Returns:
        The command.
    """
    return _command(
        statistic_ids,
        window_start - BASELINE_LEAD,
        periods.today_start if window_end is None else window_end,
        "hour",
        ["sum"],
        request_units,
    )


def _number(row: Mapping[str, Any], key: str, statistic_id: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatisticsFormatError(f"{statistic_id}: {key} is {value!r}, not a number")
    if not math.isfinite(value):
        # A NaN in the database is not energy; treat it as no data.
        return None
    return float(value)


def _timestamp(
    row: Mapping[str, Any], key: str, statistic_id: str, seen: dict[float, datetime]
) -> datetime:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatisticsFormatError(f"{statistic_id}: {key} is {value!r}, not epoch ms")
    # Every meter's rows share the same few hour starts: converting each
    # distinct timestamp once made parsing 500 meters about twice as fast.
    moment = seen.get(value)
    if moment is None:
        moment = seen[value] = datetime.fromtimestamp(value / 1000.0, tz=UTC)
    return moment


def parse_statistics(
    result: Any, wanted: Iterable[str] | None = None
) -> dict[str, tuple[StatRow, ...]]:
    """Parse a ``recorder/statistics_during_period`` result.

    Args:
        result: the command's ``result`` member as decoded from JSON.
        wanted: keep only these statistic ids (``None`` keeps all).

    Returns:
        Rows per statistic id, sorted by start. Ids without rows are absent,
        as in the recorder's answer.

    Raises:
        StatisticsFormatError: the result is not a mapping of id to rows, or a
            row lacks a numeric start/end.
    """
    if not isinstance(result, Mapping):
        raise StatisticsFormatError(f"result is {type(result).__name__}, not an object")
    keep = None if wanted is None else set(wanted)
    parsed: dict[str, tuple[StatRow, ...]] = {}
    seen: dict[float, datetime] = {}
    for statistic_id, rows in result.items():
        if keep is not None and statistic_id not in keep:
            continue
        if not isinstance(rows, list):
            raise StatisticsFormatError(f"{statistic_id}: rows are not a list")
        out: list[StatRow] = []
        for row in rows:
            if not isinstance(row, Mapping):
                raise StatisticsFormatError(f"{statistic_id}: a row is not an object")
            out.append(
                StatRow(
                    start=_timestamp(row, "start", statistic_id, seen),
                    end=_timestamp(row, "end", statistic_id, seen),
                    sum=_number(row, "sum", statistic_id),
                    state=_number(row, "state", statistic_id),
                )
            )
        out.sort(key=lambda r: r.start)
        parsed[str(statistic_id)] = tuple(out)
    return parsed
