"""Energy today and this month per meter, and site totals per role.

Pure arithmetic over the parsed recorder answers and the meters' live
readings. Which rows count and how is decided in ONE place,
:mod:`gridwatch.energy.ledger` (gaps, empty sums, resets); this module
assembles the periods:

* A meter the recorder has no rows for is *unknown* (``None``), never 0: a
  new meter must not read as "used nothing". A meter whose rows have no sum
  at all (a power or measurement statistic) is unknown too, with the problem
  named (:data:`NO_SUM`): its 0 must not count in a site total.
* Today = today's complete hours, reckoned from the last sum before local
  midnight (the kept days', or the hour before midnight), + the live partial
  hour. This month = the kept complete days
  (:mod:`gridwatch.energy.month_cache`) + hours before midnight the kept days
  lack (a row for yesterday's last hour compiled or imported after they were
  read: it counts at once, not at the next recheck) + today.
* The live partial hour is the live reading minus the recorder's reading at
  the end of the last complete hour (which may be the hour before midnight).
  It is skipped (0, flagged) when there is no such reading or unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from gridwatch.energy.ledger import Reset, walk_sums
from gridwatch.energy.month_cache import EMPTY_MONTH, MeterMonth, read_days
from gridwatch.energy.periods import TallyPeriods, day_starts_between
from gridwatch.energy.recorder_statistics import StatRow
from gridwatch.energy.units import EnergyUnit, parse_energy_unit, to_kwh
from gridwatch.hass.ports import EntityState

__all__ = [
    "NO_SUM",
    "LiveReading",
    "Meter",
    "MeterTally",
    "Reset",
    "Role",
    "RoleTotal",
    "Tally",
    "compute_tally",
    "compute_tally_from",
    "live_reading",
    "scale_of",
]

# The per-meter problem of a statistic without sum (shown on its entities).
NO_SUM: Final = (
    "the statistic has no sum (a power or measurement sensor?): point the meter at an "
    "energy sensor with state_class total or total_increasing"
)


class Role(StrEnum):
    """What a meter measures, for the site totals."""

    IMPORT = "import"
    EXPORT = "export"
    PV = "pv"
    BATTERY_IN = "battery_in"
    BATTERY_OUT = "battery_out"
    CONSUMPTION = "consumption"


@dataclass(frozen=True)
class Meter:
    """One configured energy meter.

    Attributes:
        statistic_id: the recorder statistic (usually the HA energy sensor).
        name: display name.
        slug: entity-id-safe name used in the published entity ids.
        role: what it measures, or ``None`` (then in no site total).
        unit: the unit of its recorded values, used only when the request
            could not ask the recorder to convert to kWh.
    """

    statistic_id: str
    name: str
    slug: str
    role: Role | None = None
    unit: EnergyUnit = EnergyUnit.KWH


@dataclass(frozen=True)
class LiveReading:
    """A meter's current state as read from HA.

    Attributes:
        value: the reading, or ``None`` when missing.
        unit: its ``unit_of_measurement``, or ``None`` when unknown.
    """

    value: float | None
    unit: EnergyUnit | None


@dataclass(frozen=True)
class MeterTally:
    """One meter's result.

    Attributes:
        meter: the meter.
        today_kwh: energy today, ``None`` when unknown.
        month_kwh: energy this month, ``None`` when unknown.
        partial_hour_kwh: the live partial hour included in both, ``None``
            when it could not be computed (then nothing was added).
        resets: negative changes seen this month.
        problem: why the meter is unknown though the recorder has rows, or ``None``.
        stale_reason: why the month is not up to date (days not read yet,
            history that arrived after the last read), or ``None``.
    """

    meter: Meter
    today_kwh: float | None
    month_kwh: float | None
    partial_hour_kwh: float | None
    resets: tuple[Reset, ...]
    problem: str | None = None
    stale_reason: str | None = None


@dataclass(frozen=True)
class RoleTotal:
    """Site total of one role.

    Attributes:
        role: the role.
        today_kwh: sum over its meters, ``None`` if any is unknown: an
            incomplete total would under-report, and the export guard may
            read the export total as its exported-energy figure.
        month_kwh: likewise for the month.
        missing: names of the meters that are unknown.
    """

    role: Role
    today_kwh: float | None
    month_kwh: float | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Tally:
    """The result of one cycle.

    Attributes:
        periods: the boundaries it was computed for.
        meters: per meter, in configuration order.
        totals: per role that has at least one meter.
    """

    periods: TallyPeriods
    meters: tuple[MeterTally, ...]
    totals: Mapping[Role, RoleTotal]

    @property
    def resets(self) -> tuple[Reset, ...]:
        """All resets of all meters."""
        return tuple(r for m in self.meters for r in m.resets)


def _partial_hour(
    hourly: Sequence[StatRow],
    live: LiveReading | None,
    periods: TallyPeriods,
    scale: float,
    statistic_id: str,
) -> tuple[float | None, Reset | None]:
    if live is None or live.value is None or live.unit is None:
        return None, None
    baseline = next(
        (
            r
            for r in reversed(hourly)
            if r.state is not None and periods.today_start <= r.end <= periods.now
        ),
        None,
    )
    if baseline is None or baseline.state is None:
        return None, None
    delta = to_kwh(live.value, live.unit) - baseline.state * scale
    if delta < 0:
        # The meter dropped since the last hour: a reset. Count nothing until
        # the recorder compiles the hour (its sum handles the reset).
        return 0.0, Reset(statistic_id, baseline.end, delta)
    return delta, None


def scale_of(meter: Meter, units_requested: bool) -> float:
    """Factor from a meter's recorded values to kWh.

    Args:
        meter: the meter.
        units_requested: the request asked the recorder for kWh.

    Returns:
        1 when the recorder converted, else the meter's unit factor.
    """
    return 1.0 if units_requested else to_kwh(1.0, meter.unit)


def _meter_tally(
    meter: Meter,
    hourly: Sequence[StatRow],
    kept: MeterMonth,
    live: LiveReading | None,
    periods: TallyPeriods,
    units_requested: bool,
    tolerance_kwh: float,
) -> MeterTally:
    if not hourly and not kept.rows:
        return MeterTally(meter, None, None, None, ())
    sid = meter.statistic_id
    scale = scale_of(meter, units_requested)
    kept_close = kept.closing_before(periods.today_start)
    # Rows before midnight newer than the kept days (the lead hour of
    # ``today``; a late row for yesterday's last hour): reckoned from the
    # kept days' last sum, they belong to yesterday.
    lead_rows = [
        r
        for r in hourly
        if r.start < periods.today_start and (kept_close is None or r.end > kept_close.at)
    ]
    lead = walk_sums(lead_rows, kept_close, sid, scale, tolerance_kwh)
    today_rows = [r for r in hourly if periods.today_start <= r.start < periods.now]
    today = walk_sums(today_rows, lead.last, sid, scale, tolerance_kwh)
    if not today.sums and not lead.sums and not kept.has_sum:
        return MeterTally(meter, None, None, None, (), problem=NO_SUM)
    # On the first of the month the hours before midnight are last month's.
    late = lead if periods.month_start < periods.today_start else None
    partial, partial_reset = _partial_hour(hourly, live, periods, scale, sid)
    today_kwh = today.kwh + (partial or 0.0)
    resets = [*kept.resets, *(late.resets if late else ()), *today.resets]
    if partial_reset is not None:
        resets.append(partial_reset)
    month_kwh = kept.kwh + (late.kwh if late else 0.0) + today_kwh
    return MeterTally(meter, today_kwh, month_kwh, partial, tuple(resets))


def _role_total(role: Role, members: Sequence[MeterTally]) -> RoleTotal:
    missing = tuple(m.meter.name for m in members if m.today_kwh is None or m.month_kwh is None)
    if missing:
        return RoleTotal(role, None, None, missing)
    return RoleTotal(
        role,
        sum(m.today_kwh or 0.0 for m in members),
        sum(m.month_kwh or 0.0 for m in members),
        (),
    )


def compute_tally(
    meters: Sequence[Meter],
    hourly: Mapping[str, Sequence[StatRow]],
    month_hourly: Mapping[str, Sequence[StatRow]],
    live: Mapping[str, LiveReading],
    periods: TallyPeriods,
    *,
    zone: ZoneInfo,
    units_requested: bool = True,
    tolerance_kwh: float = 0.0,
) -> Tally:
    """Compute one cycle's tally from a ``today`` and a ``month`` answer (a cold cycle).

    Args:
        meters: the configured meters.
        hourly: parsed ``today`` answer (hour rows, with ``state``).
        month_hourly: parsed ``month`` answer (hour rows from before the month
            start to local midnight today).
        live: live readings by statistic id (absent: no partial hour).
        periods: the cycle's boundaries.
        zone: the zone days are counted in.
        units_requested: the request asked the recorder for kWh; when false
            each meter's values are converted from its configured unit.
        tolerance_kwh: backward steps up to this are rounding, not a reset.

    Returns:
        The :class:`Tally`.
    """
    day_starts = day_starts_between(periods.month_start, periods.today_start, zone)
    months = {
        m.statistic_id: read_days(
            EMPTY_MONTH,
            m.statistic_id,
            month_hourly.get(m.statistic_id, ()),
            day_starts,
            periods.today_start,
            scale_of(m, units_requested),
            tolerance_kwh,
        )
        for m in meters
    }
    return compute_tally_from(
        meters,
        hourly,
        months,
        live,
        periods,
        units_requested=units_requested,
        tolerance_kwh=tolerance_kwh,
    )


def compute_tally_from(
    meters: Sequence[Meter],
    hourly: Mapping[str, Sequence[StatRow]],
    months: Mapping[str, MeterMonth],
    live: Mapping[str, LiveReading],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
    tolerance_kwh: float = 0.0,
    waiting: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
) -> Tally:
    """Compute one cycle's tally from the ``today`` answer and the kept days.

    Args:
        meters: the configured meters.
        hourly: parsed ``today`` answer (hour rows, with ``state``).
        months: kept complete days per statistic id (absent: none).
        live: live readings by statistic id (absent: no partial hour).
        periods: the cycle's boundaries.
        units_requested: as for :func:`compute_tally`.
        tolerance_kwh: as for :func:`compute_tally`.
        waiting: meters whose kept days are not up to date, and why.
        problems: meters with a problem found elsewhere (a unit change), shown
            in ``problem`` (the figure is still published).

    Returns:
        The :class:`Tally`.
    """
    reasons = waiting or {}
    found = problems or {}
    results = tuple(
        replace(
            _meter_tally(
                m,
                hourly.get(m.statistic_id, ()),
                months.get(m.statistic_id, EMPTY_MONTH),
                live.get(m.statistic_id),
                periods,
                units_requested,
                tolerance_kwh,
            ),
            stale_reason=reasons.get(m.statistic_id),
        )
        for m in meters
    )
    results = tuple(
        replace(r, problem=found[r.meter.statistic_id])
        if r.problem is None and r.meter.statistic_id in found
        else r
        for r in results
    )
    # A month not read at all yet is unknown, not today's energy alone (a
    # total would under-report); one read before stays, marked stale.
    results = tuple(
        replace(r, month_kwh=None)
        if r.stale_reason is not None and r.meter.statistic_id not in months
        else r
        for r in results
    )
    totals = {
        role: _role_total(role, [r for r in results if r.meter.role is role])
        for role in Role
        if any(m.role is role for m in meters)
    }
    return Tally(periods, results, totals)


def live_reading(entity: EntityState | None) -> LiveReading | None:
    """Read a meter's live state for the partial hour.

    Args:
        entity: the meter entity as HA holds it, or ``None`` if it has none.

    Returns:
        The reading (value ``None`` when unavailable), or ``None`` without entity.
    """
    if entity is None:
        return None
    return LiveReading(
        entity.number().value, parse_energy_unit(entity.attributes.get("unit_of_measurement"))
    )
