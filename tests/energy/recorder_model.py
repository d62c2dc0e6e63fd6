"""A small model of HA's recorder statistics, for tests.

It answers ``recorder/statistics_during_period`` for periods ``hour`` and
``day`` the way HA 2024.1 does (recorder/statistics.py): rows whose start
lies in [start_time, end_time); ``day`` aligns both ends to local days and
carries the sum and state of the day's LAST hourly row (``None`` when that
row has none); ``sum`` and ``state`` may be empty (``None``) per row, as in a
real database with gaps; ``change`` is the row's sum minus the previous
row's, against the sum of the last row before the (aligned) start, or 0 when
there is none or it is empty (HA's ``prev_sums.get(id) or 0``); times in
epoch milliseconds; a statistic without rows in the window is absent. Units: values are stored in
each statistic's unit and converted to kWh when the command asks for it.

``compiled_until`` hides the hours that end after it, as the recorder has not
compiled them yet (HA compiles an hour just after it ends), and the rows that
arrive later than that (``arrives``: a utility's import, history imported
after the tally started).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)
_TO_KWH = {"Wh": 0.001, "kWh": 1.0, "MWh": 1000.0}


@dataclass
class Statistic:
    unit: str = "kWh"
    # hour start (UTC) -> (sum, state) in ``unit``; None: the row has none
    hours: dict[datetime, tuple[float | None, float | None]] = field(default_factory=dict)
    # hour start (UTC) -> when the row reaches the database (default: as the
    # hour ends)
    arrives: dict[datetime, datetime] = field(default_factory=dict)


class RecorderModel:
    """Hourly sum statistics per statistic id, answering statistics commands."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.stats: dict[str, Statistic] = {}
        self.compiled_until: datetime | None = None

    def add_hours(
        self,
        statistic_id: str,
        first_hour: datetime,
        changes: Iterable[float],
        *,
        unit: str = "kWh",
        start_sum: float | None = None,
        start_state: float | None = None,
    ) -> None:
        """Append consecutive hourly rows whose changes are ``changes``.

        Sum and state continue from the statistic's last row (or 0) unless
        given. A new statistic first gets a row with sum 0 the hour before,
        as HA's first compiled hour of a new meter has (its sum starts at 0).
        A negative change lowers the sum (as a meter reset that HA's
        sum did not absorb does) and the state alike.
        """
        new = statistic_id not in self.stats
        stat = self.stats.setdefault(statistic_id, Statistic(unit=unit))
        if new:
            stat.hours[first_hour.astimezone(UTC) - HOUR] = (
                0.0 if start_sum is None else start_sum,
                0.0 if start_state is None else start_state,
            )
        total, state = 0.0, 0.0
        for hour in sorted(stat.hours, reverse=True):  # the last row with a sum
            s, st = stat.hours[hour]
            if s is not None:
                total, state = s, st if st is not None else s
                break
        total = total if start_sum is None else start_sum
        state = state if start_state is None else start_state
        start = first_hour.astimezone(UTC)
        for change in changes:
            total += change
            state += change
            stat.hours[start] = (total, state)
            start += HOUR

    def blank(self, statistic_id: str, hour: datetime) -> None:
        """Empty one row's sum and state (a NaN or a gap in the database)."""
        self.stats[statistic_id].hours[hour.astimezone(UTC)] = (None, None)

    def drop(self, statistic_id: str, hour: datetime) -> None:
        """Remove one row (the recorder never compiled that hour)."""
        del self.stats[statistic_id].hours[hour.astimezone(UTC)]

    def answer(self, command: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Answer one ``recorder/statistics_during_period`` command."""
        assert command["type"] == "recorder/statistics_during_period"
        start = datetime.fromisoformat(command["start_time"]).astimezone(UTC)
        end = datetime.fromisoformat(command["end_time"]).astimezone(UTC)
        period = command["period"]
        if period == "day":
            local = start.astimezone(self.zone)
            start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
            local_end = end.astimezone(self.zone).replace(hour=0, minute=0, second=0, microsecond=0)
            end = (local_end + timedelta(days=1)).astimezone(UTC)
        elif period != "hour":
            raise NotImplementedError(period)
        wants_kwh = command.get("units", {}).get("energy") == "kWh"
        types = set(command.get("types", ["change"]))
        result: dict[str, list[dict[str, Any]]] = {}
        for statistic_id in command["statistic_ids"]:
            stat = self.stats.get(statistic_id)
            if stat is None:
                continue
            scale = _TO_KWH[stat.unit] if wants_kwh else 1.0
            starts = sorted(stat.hours)
            if self.compiled_until is not None:
                until = self.compiled_until
                starts = [
                    s for s in starts if s + HOUR <= until and stat.arrives.get(s, s) <= until
                ]
            lo, hi = bisect_left(starts, start), bisect_left(starts, end)
            before = stat.hours[starts[lo - 1]][0] if lo else None
            # HA: prev_sums.get(statistic_id) or 0 -- an empty sum is taken as 0.
            prev_sum = before * scale if before is not None else 0.0
            rows = [(s, stat.hours[s]) for s in starts[lo:hi]]
            if not rows:
                continue
            out: list[dict[str, Any]] = []
            if period == "hour":
                grouped = [(s, s + HOUR, v) for s, v in rows]
            else:
                grouped = []
                for s, v in rows:
                    day = s.astimezone(self.zone).date()
                    if grouped and grouped[-1][0].astimezone(self.zone).date() == day:
                        grouped[-1] = (grouped[-1][0], grouped[-1][1], v)
                    else:
                        d0 = datetime.combine(day, datetime.min.time(), self.zone)
                        grouped.append(
                            (d0.astimezone(UTC), (d0 + timedelta(days=1)).astimezone(UTC), v)
                        )
            for s, e, (total, state) in grouped:
                row: dict[str, Any] = {
                    "start": int(s.timestamp() * 1000),
                    "end": int(e.timestamp() * 1000),
                }
                value = None if total is None else total * scale
                if "change" in types:
                    row["change"] = None if value is None else value - prev_sum
                if "sum" in types:
                    row["sum"] = value
                if "state" in types:
                    row["state"] = None if state is None else state * scale
                if value is not None:
                    prev_sum = value
                out.append(row)
            result[statistic_id] = out
        return result
