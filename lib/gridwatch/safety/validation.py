"""Range validation of readings: a raw HA state or device value in, a number
or a reason out.

HA's missing-data strings (``unknown``, ``unavailable``, ``''``) and ``None``
are recognised here, at the boundary, so no callback ever ``float()``-s them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridwatch.hass.states import missing_reason, parse_float


@dataclass(frozen=True)
class Range:
    """Inclusive bounds a plausible reading lies within.

    Args:
        low: smallest plausible value.
        high: largest plausible value.
        unit: unit for messages (``%``, ``kWh``, ``W``).
    """

    low: float
    high: float
    unit: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"range needs finite low <= high, got {self.low}..{self.high}")


# Defaults from the design: a battery SoC is a percentage; no home exports or
# imports more than 1000 kWh a day; a home connection beyond +-50 kW is a
# sensor glitch (or the wrong unit), not a reading.
SOC_RANGE = Range(0.0, 100.0, "%")
ENERGY_RANGE = Range(0.0, 1000.0, "kWh")
POWER_RANGE = Range(-50_000.0, 50_000.0, "W")


@dataclass(frozen=True)
class Valid:
    """A reading that passed: ``value`` is finite and within range."""

    value: float


@dataclass(frozen=True)
class Invalid:
    """A reading that failed, with a reason a person can act on.

    Attributes:
        reason: what is wrong, with the value.
        missing: there is no value at all (``unavailable``, ``unknown``,
            ``None``): no current data, as opposed to a wrong value.
    """

    reason: str
    missing: bool = False


Validation = Valid | Invalid


def parse_number(raw: object) -> float | Invalid:
    """Turn a raw state into a finite float, or say why it is not one.

    Parsing is :mod:`gridwatch.hass.states`' (the one place HA's missing-data
    strings are known); this adds whether the value is missing or wrong.

    Args:
        raw: an HA state string, a number, or ``None``.

    Returns:
        The float, or :class:`Invalid` naming the problem (missing, not a
        number, not finite).
    """
    parsed = parse_float(raw)
    if parsed.value is not None:
        return parsed.value
    reason = parsed.reason or f"not a number: {raw!r}"
    return Invalid(reason, missing=missing_reason(raw) is not None)


def validate(raw: object, bounds: Range) -> Validation:
    """Parse ``raw`` and check it lies within ``bounds``.

    Args:
        raw: the reading as received.
        bounds: the plausible range.

    Returns:
        :class:`Valid` with the value, or :class:`Invalid` with the reason.
    """
    parsed = parse_number(raw)
    if isinstance(parsed, Invalid):
        return parsed
    if not bounds.low <= parsed <= bounds.high:
        return Invalid(
            f"out of range: {parsed:g} {bounds.unit} not in "
            f"[{bounds.low:g}, {bounds.high:g}] {bounds.unit}"
        )
    return Valid(parsed)
