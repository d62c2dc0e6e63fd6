"""The export guard's view of its readings: validated, age-checked, and
turned into export power and headroom.

Pure: raw samples, settings and ``now`` in; an :class:`Evaluation` out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gridwatch.guard.headroom import energy_headroom_kwh, power_headroom_w
from gridwatch.safety.staleness import DEFAULT_MAX_AGE_S, freshness
from gridwatch.safety.validation import (
    ENERGY_RANGE,
    POWER_RANGE,
    SOC_RANGE,
    Invalid,
    Range,
    Validation,
    validate,
)


class GridSign(StrEnum):
    """How the grid power sensor signs export."""

    EXPORT_POSITIVE = "export_positive"
    IMPORT_POSITIVE = "import_positive"


class ReadingName(StrEnum):
    GRID_POWER = "grid_power"
    SOC = "soc"
    EXPORT_TODAY = "export_today"
    PV_POWER = "pv_power"
    BATTERY_POWER = "battery_power"


@dataclass(frozen=True)
class ReadingSpec:
    """Plausible range and maximum age of one reading.

    Attributes:
        bounds: values outside are rejected.
        max_age_s: older than this is stale. HA reports a state only when it
            changes, so a slow sensor (SoC, energy today) may need longer.
    """

    bounds: Range
    max_age_s: float = DEFAULT_MAX_AGE_S


@dataclass(frozen=True)
class ReadingSpecs:
    """The spec of each reading (defaults from the design)."""

    grid_power: ReadingSpec = ReadingSpec(POWER_RANGE)
    soc: ReadingSpec = ReadingSpec(SOC_RANGE)
    export_today: ReadingSpec = ReadingSpec(ENERGY_RANGE)
    pv_power: ReadingSpec = ReadingSpec(POWER_RANGE)
    # Most inverters publish their battery power every few seconds.
    battery_power: ReadingSpec = ReadingSpec(POWER_RANGE)


@dataclass(frozen=True)
class Sample:
    """A reading as received.

    Attributes:
        raw: the value (HA state string, number, ``None``).
        at: monotonic time it arrived; ``None`` if it never did.
    """

    raw: object = None
    at: float | None = None


@dataclass(frozen=True)
class Readings:
    """The latest sample of each reading.

    PV is optional and informational; battery power (W, discharge positive)
    is optional and, when fresh, tells which battery power a grid reading
    reflects.
    """

    grid_power: Sample = Sample()
    soc: Sample = Sample()
    export_today: Sample = Sample()
    pv_power: Sample | None = None
    battery_power: Sample | None = None


class ReadingStatus(StrEnum):
    OK = "ok"
    STALE = "stale"  # too old, never arrived, or HA says unknown/unavailable
    INVALID = "invalid"  # a value, but not a plausible one


@dataclass(frozen=True)
class ReadingCheck:
    """The verdict on one reading."""

    name: ReadingName
    status: ReadingStatus
    value: float | None
    age_s: float | None
    reason: str | None


@dataclass(frozen=True)
class Evaluation:
    """What the guard knows now.

    Attributes:
        checks: verdicts of the readings the guard steers by (grid power,
            SoC, energy exported today).
        stale: those of them stale or missing.
        invalid: those of them with an implausible value.
        pv: verdict of the optional PV reading (published, never steered by).
        export_w: power to the grid now (W, export positive), if valid.
        power_headroom_w: room below the export limit minus deadband (W).
        energy_headroom_kwh: room below the daily cap minus margin (kWh).
        data_age_s: age of the oldest steering reading; ``None`` if one never
            arrived.
        grid_at: monotonic arrival time of the grid reading, if valid.
        battery_w: measured battery power (W, discharge positive), if
            configured, fresh and valid.
        battery_at: its arrival time.
    """

    checks: tuple[ReadingCheck, ...]
    stale: tuple[ReadingCheck, ...]
    invalid: tuple[ReadingCheck, ...]
    pv: ReadingCheck | None
    export_w: float | None
    soc_pct: float | None
    exported_today_kwh: float | None
    power_headroom_w: float | None
    energy_headroom_kwh: float | None
    data_age_s: float | None
    grid_at: float | None = None
    battery_w: float | None = None
    battery_at: float | None = None

    @property
    def ok(self) -> bool:
        """Every steering reading is fresh and valid."""
        return not self.stale and not self.invalid


# typed: True == 1 and hash(True) == hash(1), so an untyped key would hand
# a boolean the verdict of the equal number (booleans are refused).
@functools.lru_cache(maxsize=64, typed=True)
def _validate_hashable(raw: object, bounds: Range) -> Validation:
    return validate(raw, bounds)


def _validate(raw: object, bounds: Range) -> Validation:
    # Every grid reading re-checks SoC and exported energy too, whose raw
    # states rarely change: a small cache of pure results keeps the decision
    # per reading cheap (bench/bench_guard.py).
    try:
        return _validate_hashable(raw, bounds)
    except TypeError:  # an unhashable raw value (a list from a device payload)
        return validate(raw, bounds)


def check_reading(name: ReadingName, sample: Sample, spec: ReadingSpec, now: float) -> ReadingCheck:
    """Validate and age-check one sample.

    Args:
        name: which reading.
        sample: the latest sample.
        spec: its range and maximum age.
        now: monotonic time.

    Returns:
        The verdict. Missing data (``unavailable``) is STALE, not INVALID: it
        is the absence of current data, and is reported as such.
    """
    fresh = freshness(sample.at, now, spec.max_age_s)
    result = _validate(sample.raw, spec.bounds)
    if isinstance(result, Invalid):
        if result.missing or sample.at is None:
            reason = "never received" if sample.at is None else result.reason
            return ReadingCheck(name, ReadingStatus.STALE, None, fresh.age_s, reason)
        return ReadingCheck(name, ReadingStatus.INVALID, None, fresh.age_s, result.reason)
    if fresh.stale:
        # Worded without the growing age, so a notice quoting it stays unchanged
        # (and is not re-posted) while the reading stays stale.
        reason = f"not updated within {spec.max_age_s:g} s"
        return ReadingCheck(name, ReadingStatus.STALE, result.value, fresh.age_s, reason)
    return ReadingCheck(name, ReadingStatus.OK, result.value, fresh.age_s, None)


def evaluate(
    readings: Readings,
    *,
    specs: ReadingSpecs,
    grid_sign: GridSign,
    export_limit_w: float,
    deadband_w: float,
    daily_cap_kwh: float,
    margin_kwh: float,
    now: float,
    unmetered_export_kwh: float = 0.0,
) -> Evaluation:
    """Check every reading and compute the headroom.

    Args:
        readings: latest samples.
        specs: range and age limits per reading.
        grid_sign: how the grid sensor signs export.
        export_limit_w: export power limit (W).
        deadband_w: band kept free below the limit (W).
        daily_cap_kwh: daily export cap (kWh).
        margin_kwh: safety margin below the cap (kWh).
        now: monotonic time.
        unmetered_export_kwh: export since the energy counter last updated,
            integrated from the grid readings; added to the counter so a
            counter that updates every few minutes cannot overshoot the margin.

    Returns:
        The evaluation (headroom is ``None`` where its reading is not OK).
    """
    grid = check_reading(ReadingName.GRID_POWER, readings.grid_power, specs.grid_power, now)
    soc = check_reading(ReadingName.SOC, readings.soc, specs.soc, now)
    energy = check_reading(ReadingName.EXPORT_TODAY, readings.export_today, specs.export_today, now)
    pv = (
        None
        if readings.pv_power is None
        else check_reading(ReadingName.PV_POWER, readings.pv_power, specs.pv_power, now)
    )
    battery = (
        None
        if readings.battery_power is None
        else check_reading(
            ReadingName.BATTERY_POWER, readings.battery_power, specs.battery_power, now
        )
    )
    export_w = None
    power_room = None
    if grid.status is ReadingStatus.OK and grid.value is not None:
        export_w = grid.value if grid_sign is GridSign.EXPORT_POSITIVE else -grid.value
        power_room = power_headroom_w(export_w, export_limit_w, deadband_w)
    exported = energy.value if energy.status is ReadingStatus.OK else None
    if exported is not None:
        exported += max(unmetered_export_kwh, 0.0)
    energy_room = (
        None if exported is None else energy_headroom_kwh(exported, daily_cap_kwh, margin_kwh)
    )
    checks = (grid, soc, energy)
    ages = [c.age_s for c in checks if c.age_s is not None]
    data_age = max(ages) if len(ages) == len(checks) else None
    return Evaluation(
        checks=checks,
        stale=tuple(c for c in checks if c.status is ReadingStatus.STALE),
        invalid=tuple(c for c in checks if c.status is ReadingStatus.INVALID),
        pv=pv,
        export_w=export_w,
        soc_pct=soc.value if soc.status is ReadingStatus.OK else None,
        exported_today_kwh=exported,
        power_headroom_w=power_room,
        energy_headroom_kwh=energy_room,
        data_age_s=data_age,
        grid_at=readings.grid_power.at if export_w is not None else None,
        battery_w=battery.value if battery and battery.status is ReadingStatus.OK else None,
        battery_at=(
            readings.battery_power.at
            if battery and readings.battery_power and battery.status is ReadingStatus.OK
            else None
        ),
    )


def sample_since(
    raw: object, changed_at: datetime | None, now_mono: float, now_wall: datetime
) -> Sample:
    """A sample read at start-up, dated by its wall-clock change time.

    Args:
        raw: the state as read.
        changed_at: when it last changed (tz-aware), if known.
        now_mono: monotonic now.
        now_wall: wall-clock now (tz-aware).

    Returns:
        A sample whose monotonic arrival time is as old as the state is (a
        state from the future counts as new); ``Sample()`` when ``raw`` is None.
    """
    if raw is None:
        return Sample()
    age = 0.0 if changed_at is None else (now_wall - changed_at).total_seconds()
    return Sample(raw, now_mono - max(age, 0.0))
