"""Energy today and this month per meter, and site totals per role.

Pure arithmetic over the parsed recorder answers (:mod:`gridwatch.energy.recorder_statistics`)
and the meters' live readings. Rules:

* A meter the recorder has no rows for in either answer is *unknown*
  (``None``), never 0: a new meter must not read as "used nothing".
* A negative change (a meter reset or replacement the recorder's sum did not
  absorb) is not subtracted; it is reported as a :class:`Reset`.
* Today = today's complete hours + the live partial hour; this month =
  the complete days before today + today. The complete days are summed per
  day row (:func:`completed_days`), apart from the rest, so a cycle can reuse
  them from an earlier cycle of the same day (:mod:`gridwatch.energy.month_cache`).
* The live partial hour is the live reading minus the recorder's reading at
  the end of the last complete hour (which may be the hour before midnight).
  It is skipped (0, flagged) when there is no such reading or unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridwatch.energy.periods import TallyPeriods
from gridwatch.energy.recorder_statistics import StatRow
from gridwatch.energy.units import EnergyUnit, parse_energy_unit, to_kwh
from gridwatch.hass.ports import EntityState

__all__ = [
    "CompletedDays",
    "LiveReading",
    "Meter",
    "MeterTally",
    "Reset",
    "Role",
    "RoleTotal",
    "Tally",
    "completed_days",
    "compute_tally",
    "compute_tally_from",
    "live_reading",
]


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
class Reset:
    """A negative change that was not subtracted.

    Attributes:
        statistic_id: the meter's statistic.
        start: start of the period the drop was seen in (UTC).
        change_kwh: the (negative) change.
    """

    statistic_id: str
    start: datetime
    change_kwh: float


@dataclass(frozen=True)
class CompletedDays:
    """A meter's month to date before today, from the ``month`` answer.

    Attributes:
        kwh: the non-negative day changes from the month start to local
            midnight today.
        resets: the negative days, not subtracted.
        has_rows: the answer held any row for the meter (today's included);
            with no hourly rows either, the meter is unknown.
    """

    kwh: float
    resets: tuple[Reset, ...]
    has_rows: bool


# What a meter absent from the ``month`` answer has before today.
NO_DAYS = CompletedDays(0.0, (), has_rows=False)


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
    """

    meter: Meter
    today_kwh: float | None
    month_kwh: float | None
    partial_hour_kwh: float | None
    resets: tuple[Reset, ...]


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


def _sum_changes(
    rows: Iterable[StatRow], statistic_id: str, scale: float
) -> tuple[float, list[Reset]]:
    total = 0.0
    resets: list[Reset] = []
    for row in rows:
        if row.change is None:
            continue
        change = row.change * scale
        if change < 0:
            resets.append(Reset(statistic_id, row.start, change))
        else:
            total += change
    return total, resets


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


def _scale(meter: Meter, units_requested: bool) -> float:
    return 1.0 if units_requested else to_kwh(1.0, meter.unit)


def _completed(
    meter: Meter, daily: Sequence[StatRow], periods: TallyPeriods, units_requested: bool
) -> CompletedDays:
    if not daily:
        return NO_DAYS
    earlier = [r for r in daily if periods.month_start <= r.start < periods.today_start]
    kwh, resets = _sum_changes(earlier, meter.statistic_id, _scale(meter, units_requested))
    return CompletedDays(kwh, tuple(resets), has_rows=True)


def completed_days(
    meters: Sequence[Meter],
    daily: Mapping[str, Sequence[StatRow]],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
) -> dict[str, CompletedDays]:
    """Sum each meter's complete days of the month before today.

    Args:
        meters: the configured meters.
        daily: parsed ``month`` answer (day rows); today's row is ignored.
        periods: the cycle's boundaries.
        units_requested: as for :func:`compute_tally`.

    Returns:
        Per statistic id; a meter without rows gets :data:`NO_DAYS`.
    """
    return {
        m.statistic_id: _completed(m, daily.get(m.statistic_id, ()), periods, units_requested)
        for m in meters
    }


def _meter_tally(
    meter: Meter,
    hourly: Sequence[StatRow],
    before: CompletedDays,
    live: LiveReading | None,
    periods: TallyPeriods,
    units_requested: bool,
) -> MeterTally:
    if not hourly and not before.has_rows:
        return MeterTally(meter, None, None, None, ())
    scale = _scale(meter, units_requested)
    today_rows = [r for r in hourly if periods.today_start <= r.start < periods.now]
    today, today_resets = _sum_changes(today_rows, meter.statistic_id, scale)
    partial, partial_reset = _partial_hour(hourly, live, periods, scale, meter.statistic_id)
    today += partial or 0.0
    resets = [*before.resets, *today_resets]
    if partial_reset is not None:
        resets.append(partial_reset)
    return MeterTally(meter, today, before.kwh + today, partial, tuple(resets))


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
    """Compute one cycle's tally from both answers.

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
    before = completed_days(meters, daily, periods, units_requested=units_requested)
    return compute_tally_from(
        meters, hourly, before, live, periods, units_requested=units_requested
    )


def compute_tally_from(
    meters: Sequence[Meter],
    hourly: Mapping[str, Sequence[StatRow]],
    before: Mapping[str, CompletedDays],
    live: Mapping[str, LiveReading],
    periods: TallyPeriods,
    *,
    units_requested: bool = True,
) -> Tally:
    """Compute one cycle's tally from the ``today`` answer and the complete days.

    The same as :func:`compute_tally` with ``before = completed_days(daily)``,
    to the last bit, when ``before`` was summed from a ``month`` answer of
    the same local day.

    Args:
        meters: the configured meters.
        hourly: parsed ``today`` answer (hour rows, with ``state``).
        before: :func:`completed_days` per statistic id (absent: no rows).
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
            before.get(m.statistic_id, NO_DAYS),
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
