"""Energy units the tally accepts from the recorder or a live meter state."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EnergyUnit", "parse_energy_unit", "to_kwh", "unit_change_problem"]


class EnergyUnit(StrEnum):
    """Units an energy meter reports in (HA's spelling)."""

    WH = "Wh"
    KWH = "kWh"
    MWH = "MWh"


# Factor from each unit to kWh; the tally publishes kWh only.
_TO_KWH = {EnergyUnit.WH: 0.001, EnergyUnit.KWH: 1.0, EnergyUnit.MWH: 1000.0}


def to_kwh(value: float, unit: EnergyUnit) -> float:
    """Convert an energy value to kWh.

    Args:
        value: the energy in ``unit``.
        unit: the unit ``value`` is in.

    Returns:
        The energy in kWh.
    """
    return value * _TO_KWH[unit]


def parse_energy_unit(raw: object) -> EnergyUnit | None:
    """Read a ``unit_of_measurement`` attribute.

    Args:
        raw: the attribute value (any type; HA gives a string or nothing).

    Returns:
        The unit, or ``None`` when it is not an energy unit the tally knows.
    """
    if not isinstance(raw, str):
        return None
    try:
        return EnergyUnit(raw.strip())
    except ValueError:
        return None


def unit_change_problem(before: str | None, now: str | None) -> str:
    """The ``problem`` of a meter whose statistic changed unit within the month.

    HA converts every row of a statistic by its CURRENT unit: rows recorded in
    kWh and re-read as Wh shrink a thousandfold, so the month jumps.

    Args:
        before: the unit seen earlier this month.
        now: the unit the recorder has now.

    Returns:
        The text, with what to do.
    """
    return (
        f"the statistic's unit changed from {before} to {now} this month: Home Assistant "
        "now reads all its rows in the new unit, so this month's figure is wrong. Fix the "
        "statistic in Developer tools > Statistics (or re-import it in one unit), then fire "
        "the refresh event"
    )
