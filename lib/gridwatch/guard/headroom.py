"""Export headroom: how much more may go to the grid before a limit is crossed.

Pure arithmetic on named units (W, kWh). Positive headroom is room left;
zero or negative means the limit is reached or already crossed.
"""

from __future__ import annotations

import math


def power_headroom_w(export_w: float, limit_w: float, deadband_w: float = 0.0) -> float:
    """Instantaneous export power headroom.

    Args:
        export_w: power flowing to the grid now (W, export positive;
            importing is negative export).
        limit_w: the export power limit (W).
        deadband_w: a band below the limit kept free, so regulation acts
            before the limit rather than at it (W).

    Returns:
        ``limit_w - deadband_w - export_w`` (W); negative when export is
        already inside the deadband or over the limit.
    """
    result = limit_w - deadband_w - export_w
    _check_finite(result, "export_w, limit_w and deadband_w")
    return result


def energy_headroom_kwh(
    exported_today_kwh: float, cap_kwh: float, margin_kwh: float = 0.0
) -> float:
    """Daily export energy headroom.

    Args:
        exported_today_kwh: energy exported since midnight (kWh).
        cap_kwh: the daily export cap (kWh).
        margin_kwh: safety margin kept below the cap, covering meter lag and
            the energy that flows while a stop takes effect (kWh).

    Returns:
        ``cap_kwh - margin_kwh - exported_today_kwh`` (kWh).
    """
    result = cap_kwh - margin_kwh - exported_today_kwh
    _check_finite(result, "exported_today_kwh, cap_kwh and margin_kwh")
    return result


def discharge_target_w(
    current_discharge_w: float,
    power_headroom: float,
    max_discharge_w: float,
) -> float:
    """The discharge power that uses the headroom exactly.

    The battery's own output is part of today's export, so the target is
    what it delivers now plus what the limit still allows.

    Args:
        current_discharge_w: battery discharge power now (W, >= 0).
        power_headroom: from :func:`power_headroom_w` (W).
        max_discharge_w: the most the guard may command (W).

    Returns:
        The target, clamped to ``[0, max_discharge_w]`` (W).
    """
    _check_finite(current_discharge_w + power_headroom + max_discharge_w, "every input")
    return min(max(current_discharge_w + power_headroom, 0.0), max(max_discharge_w, 0.0))


def _check_finite(result: float, names: str) -> None:
    # A NaN would compare False against every limit and silently pass as
    # "within headroom"; refuse it loudly instead. Any NaN or infinite input
    # makes the sum non-finite (inf - inf is NaN), so one check covers all.
    if not math.isfinite(result):
        raise ValueError(f"{names} must be finite")
