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
  midnight (the hour before it, else the kept days), + the live partial hour.
  This month = the kept complete days (:mod:`gridwatch.energy.month_cache`)
  + today.
* The live partial hour is the live reading minus the recorder's reading at
  the end of the last complete hour (which may be the hour before midnight).
  It is skipped (0, flagged) when there is no such reading or unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from gridwatch.energy.ledger import Reset, later, walk_sums
from gridwatch.energy.month_cache import EMPTY_MONTH, MeterMonth, month_from_days
from gridwatch.energy.periods import TallyPeriods
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
    """

    meter: Meter
    today_kwh: float | None
    month_kwh: float | None
    partial_hour_kwh: float | None
    resets: tuple[Reset, ...]
    problem: str | None = None


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
) -> MeterTally:
    if not hourly and not kept.rows:
        return MeterTally(meter, None, None, None, ())
    sid = meter.statistic_id
    scale = scale_of(meter, units_requested)
    lead = walk_sums([r for r in hourly if r.start < periods.today_start], None, sid, scale)
    today_rows = [r for r in hourly if periods.today_start <= r.start < periods.now]
    # The later of the two: the lead hour when it has a sum, else the kept days'.
    baseline = later(kept.closing_before(periods.today_start), lead.last)
    today = walk_sums(today_rows, baseline, sid, scale)
    if not today.sums and not lead.sums and not kept.has_sum:
        return MeterTally(meter, None, None, None, (), problem=NO_SUM)
    partial, partial_reset = _partial_hour(hourly, live, periods, scale, sid)
    today_kwh = today.kwh + (partial or 0.0)
    resets = [*kept.resets, *today.resets]
    if partial_reset is not None:
        resets.append(partial_reset)
    return MeterTally(meter, today_kwh, kept.kwh + today_kwh, partial, tuple(resets))


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
    daily: Mapping[str, Sequence[StatRow]],
    live: Mapping[str, LiveReading],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
) -> Tally:
    """Compute one cycle's tally from a ``today`` and a ``month`` answer (a cold cycle).

    Args:
        meters: the configured meters.
        hourly: parsed ``today`` answer (hour rows, with ``state``).
        daily: parsed ``month`` answer (day rows).
        live: live readings by statistic id (absent: no partial hour).
        periods: the cycle's boundaries.
        units_requested: the request asked the recorder for kWh; when false
            each meter's values are converted from its configured unit.

    Returns:
        The :class:`Tally`.
    """
    months = {
        m.statistic_id: month_from_days(
            m.statistic_id,
            daily.get(m.statistic_id, ()),
            periods,
            scale_of(m, units_requested),
        )
        for m in meters
    }
    return compute_tally_from(
        meters, hourly, months, live, periods, units_requested=units_requested
    )


def compute_tally_from(
    meters: Sequence[Meter],
    hourly: Mapping[str, Sequence[StatRow]],
    months: Mapping[str, MeterMonth],
    live: Mapping[str, LiveReading],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
) -> Tally:
    """Compute one cycle's tally from the ``today`` answer and the kept days.

    Args:
        meters: the configured meters.
        hourly: parsed ``today`` answer (hour rows, with ``state``).
        months: kept complete days per statistic id (absent: none).
        live: live readings by statistic id (absent: no partial hour).
        periods: the cycle's boundaries.
        units_requested: as for :func:`compute_tally`.

    Returns:
        The :class:`Tally`.
    """
    results = tuple(
        _meter_tally(
            m,
            hourly.get(m.statistic_id, ()),
            months.get(m.statistic_id, EMPTY_MONTH),
            live.get(m.statistic_id),
            periods,
            units_requested,
        )
        for m in meters
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
