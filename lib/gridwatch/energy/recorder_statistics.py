"""Build and parse the recorder statistics queries of the energy tally.

Every query is a ``recorder/statistics_during_period`` websocket command
naming many meters at once; the tally asks for the recorder's running ``sum``
and works the changes out itself (:mod:`gridwatch.energy.ledger`): HA's own
``change`` counts the first row of a window against a sum of 0 when the row
before the window has no sum, which publishes a meter's lifetime reading.

* ``today`` (every cycle): hourly ``sum`` and ``state`` from one hour before
  local midnight to now. The hour before midnight gives the meter reading at
  midnight, the baseline of today's first hour and of the live partial hour.
* ``month`` (a meter's first read, refresh, HA start, new month, history
  that arrived late): hourly ``sum`` from :data:`OPENING_LEAD` before the
  month start to local midnight today. Hourly, not daily: a day row only
  carries its last hour's sum, so a reset inside a day or an empty last hour
  cannot be told from use (the one rule, :mod:`gridwatch.energy.month_cache`).
* ``recheck`` (once an hour, and on a new day): hourly ``sum`` of the last
  ``recheck_days`` complete days, for statistics that arrive late.
* ``probe`` (each cycle, only for meters with no sum before the month
  start): day rows, at most ~33 per meter; a day row before the day of the
  first row read is history imported later.

Answer size: AppDaemon 4.5.13 refuses a websocket message over 4 MiB
(``ws_max_msg_size``), so each command is split by meters
(:func:`split_for_answer`) so that its answer stays under
:data:`ANSWER_BUDGET_BYTES`, counted with the bytes a row takes in HA's JSON
(measured on HA 2024.1.6 and 2026.2.3: :data:`BYTES_PER_ROW`).

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
    "ANSWER_BUDGET_BYTES",
    "BASELINE_LEAD",
    "BYTES_PER_ROW",
    "COMMAND_TYPE",
    "OPENING_LEAD",
    "REQUESTS_PER_CYCLE",
    "StatRow",
    "StatisticsFormatError",
    "month_request",
    "month_rows_per_meter",
    "parse_statistics",
    "probe_request",
    "probe_rows_per_meter",
    "recheck_request",
    "rows_per_meter",
    "split_for_answer",
    "today_request",
    "today_rows_per_meter",
]

COMMAND_TYPE: Final = "recorder/statistics_during_period"
# A steady cycle sends ``today`` only (one request up to ~1,100 meters, whose
# 25 hours of sum and state fill the answer budget; then one more per ~1,100).
REQUESTS_PER_CYCLE: Final = 1

# The hour before a window carries the sum (and reading) at its start.
BASELINE_LEAD: Final = timedelta(hours=1)
# How far before the month start a meter's last sum is looked for (its
# opening): two days of hourly rows bridge an empty last hour, or a day of
# missing rows, at the month boundary. A meter whose last sum before the
# month is older starts the month from its first sum in it (a baseline).
OPENING_LEAD: Final = timedelta(hours=48)

# AppDaemon 4.5.13 refuses websocket messages over 4 MiB (ws_max_msg_size).
# The budget leaves a quarter for the envelope, longer statistic ids and
# floats HA prints with more digits than the measured rows had.
ANSWER_BUDGET_BYTES: Final = 3 * 1024 * 1024
# Bytes one row takes in HA's answer, by the types asked, measured on HA
# 2024.1.6 and 2026.2.3 (bench/bench_energy.py prints them; the larger of the
# two, rounded up): {"start":ms,"end":ms,"sum":x} and with "state":x.
BYTES_PER_ROW: Final = {("sum",): 80, ("state", "sum"): 110}


def rows_per_meter(start: datetime, end: datetime, period: timedelta = BASELINE_LEAD) -> int:
    """Rows (at most) one meter has in ``[start, end)``, counting a partial period.

    Args:
        start: the window's start.
        end: its end.
        period: the row length (an hour; a day for day rows).

    Returns:
        The count, at least 1.
    """
    return max(1, math.ceil((end - start) / period) + 1)


def split_for_answer(
    statistic_ids: Iterable[str],
    rows_each: int,
    types: Iterable[str] = ("sum",),
    budget: int = ANSWER_BUDGET_BYTES,
) -> list[tuple[str, ...]]:
    """Split meters into groups whose answer stays within ``budget`` bytes.

    Args:
        statistic_ids: the meters (duplicates merged, sorted).
        rows_each: rows one meter can have in the window (:func:`rows_per_meter`).
        types: the types asked (they set the bytes per row).
        budget: the largest answer wanted.

    Returns:
        The groups, in id order; empty when there are no meters.
    """
    ids = sorted(set(statistic_ids))
    row_bytes = BYTES_PER_ROW.get(tuple(sorted(types)), max(BYTES_PER_ROW.values()))
    # One more row's worth per meter for its key and list brackets.
    per_meter = (rows_each + 1) * row_bytes
    size = max(1, budget // per_meter)
    return [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]


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
    statistic_ids: Iterable[str],
    window_start: datetime,
    periods: TallyPeriods,
    *,
    request_units: bool = True,
) -> dict[str, Any]:
    """The ``month`` or ``recheck`` command: hourly sums of complete days.

    Args:
        statistic_ids: the meters to ask for.
        window_start: first instant of the first day to read (UTC); the month
            start reads the month with :data:`OPENING_LEAD` before it, any
            later day with :data:`BASELINE_LEAD` (the kept days carry the sum
            up to it).
        periods: the cycle's boundaries; the window ends at local midnight today.
        request_units: ask the recorder to convert to kWh (HA >= 2022.10).

    Returns:
        The command.
    """
    lead = OPENING_LEAD if window_start <= periods.month_start else BASELINE_LEAD
    return _command(
        statistic_ids,
        window_start - lead,
        periods.today_start,
        "hour",
        ["sum"],
        request_units,
    )


def recheck_request(
    statistic_ids: Iterable[str],
    window_start: datetime,
    periods: TallyPeriods,
    *,
    request_units: bool = True,
) -> dict[str, Any]:
    """The ``recheck`` command: :func:`month_request` from a day inside the month."""
    return month_request(statistic_ids, window_start, periods, request_units=request_units)


def month_rows_per_meter(window_start: datetime, periods: TallyPeriods) -> int:
    """Rows one meter can have in :func:`month_request`'s answer."""
    lead = OPENING_LEAD if window_start <= periods.month_start else BASELINE_LEAD
    return rows_per_meter(window_start - lead, periods.today_start)


def probe_request(
    statistic_ids: Iterable[str], periods: TallyPeriods, *, request_units: bool = True
) -> dict[str, Any]:
    """The ``probe`` command: day rows from before the month start to midnight today.

    HA extends a ``day`` window to whole local days (its start back to local
    midnight, its end to the end of the day holding it), so the answer also
    holds today's row. Only whether a day has a row is used.

    Args:
        statistic_ids: the meters to ask for.
        periods: the cycle's boundaries.
        request_units: as for :func:`month_request`.

    Returns:
        The command.
    """
    # 2 x 24 h back (plus 2 h, inside the day across a DST change) is the
    # local day the opening's lead starts in.
    start = periods.month_start - OPENING_LEAD + timedelta(hours=2)
    return _command(statistic_ids, start, periods.today_start, "day", ["sum"], request_units)


def probe_rows_per_meter(periods: TallyPeriods) -> int:
    """Rows one meter can have in :func:`probe_request`'s answer (a day is >= 23 h)."""
    lead_days = OPENING_LEAD // timedelta(days=1)
    return (periods.today_start - periods.month_start) // timedelta(hours=23) + lead_days + 2


def today_rows_per_meter(periods: TallyPeriods) -> int:
    """Rows one meter can have in :func:`today_request`'s answer."""
    return rows_per_meter(periods.today_start - BASELINE_LEAD, periods.now)


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
