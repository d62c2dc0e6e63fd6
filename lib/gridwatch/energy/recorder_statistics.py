"""Build and parse the recorder statistics queries of one tally cycle.

A cycle asks Home Assistant's recorder two questions, each ONE
``recorder/statistics_during_period`` websocket command naming every meter,
so the number of requests never grows with the number of meters:

* ``today``: hourly ``change`` and ``state`` from one hour before local
  midnight to now. The hour before midnight is there only to give the meter
  reading at midnight, the baseline for the live partial hour (see
  :mod:`gridwatch.energy.tally`); its change is not counted.
* ``month``: daily ``change`` from the local month start to now. Days before
  today are counted from it; today comes from the hourly answer, where a
  meter reset can be told apart from usage hour by hour. Those days do not
  change during the day, so the app sends this one only when its kept sums
  do not serve the cycle (:mod:`gridwatch.energy.month_cache`).

The recorder answers (HA 2024.1, ``recorder/websocket_api.py``) with
``{statistic_id: [{"start": ms, "end": ms, "change": float|None,
"state": float|None}, ...]}``; a statistic with no rows in the window is
absent. Asking ``units: {"energy": "kWh"}`` makes the recorder convert every
statistic recorded in an energy unit (Wh, MWh ...) to kWh itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from gridwatch.energy.periods import TallyPeriods

__all__ = [
    "COMMAND_TYPE",
    "REQUESTS_PER_CYCLE",
    "StatRow",
    "StatisticsFormatError",
    "StatisticsRequests",
    "build_requests",
    "parse_statistics",
]

COMMAND_TYPE: Final = "recorder/statistics_during_period"
# At most, whatever the number of meters (see the module docstring).
REQUESTS_PER_CYCLE: Final = 2

# The hour before local midnight carries the meter reading at midnight.
_BASELINE_LEAD = timedelta(hours=1)


class StatisticsFormatError(ValueError):
    """The recorder's answer does not have the documented shape."""


@dataclass(frozen=True)
class StatisticsRequests:
    """The (at most two) websocket commands of one cycle, without ``id``.

    Attributes:
        today: hourly statistics for today (plus the hour before midnight).
        month: daily statistics for the month to date.
    """

    today: dict[str, Any]
    month: dict[str, Any]

    def all(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return both commands in the order they are sent."""
        return (self.today, self.month)


@dataclass(frozen=True)
class StatRow:
    """One statistics row of one meter.

    Attributes:
        start: period start (UTC).
        end: period end (UTC).
        change: energy in the period (the recorder's sum difference), or
            ``None`` when the recorder has no sum for it.
        state: the meter reading at the end of the period, when asked for.
    """

    start: datetime
    end: datetime
    change: float | None
    state: float | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _command(
    ids: list[str],
    start: datetime,
    end: datetime,
    period: str,
    types: list[str],
    request_units: bool,
) -> dict[str, Any]:
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


def build_requests(
    statistic_ids: Iterable[str], periods: TallyPeriods, *, request_units: bool = True
) -> StatisticsRequests:
    """Build the cycle's two batched statistics commands for all meters.

    Args:
        statistic_ids: every meter's statistic id (duplicates are merged).
        periods: the cycle's boundaries.
        request_units: ask the recorder to convert to kWh (HA >= 2022.10).
            When false the values come back in each statistic's own unit.

    Returns:
        The two commands, ready for the websocket port (it adds ``id``).

    Raises:
        ValueError: no statistic ids (the recorder rejects an empty list).
    """
    ids = sorted(set(statistic_ids))
    if not ids:
        raise ValueError("at least one statistic id is needed")
    return StatisticsRequests(
        today=_command(
            ids,
            periods.today_start - _BASELINE_LEAD,
            periods.now,
            "hour",
            ["change", "state"],
            request_units,
        ),
        month=_command(ids, periods.month_start, periods.now, "day", ["change"], request_units),
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
                    change=_number(row, "change", statistic_id),
                    state=_number(row, "state", statistic_id),
                )
            )
        out.sort(key=lambda r: r.start)
        parsed[str(statistic_id)] = tuple(out)
    return parsed
