"""The simulated inverter: what it makes of the controls it reads from HA.

Pure: the simulator reads the helper entities, passes their states and the
simulated time in, and gets back the discharge power the battery delivers.
A real hybrid inverter behaves the same way: it discharges at the set power
while enabled, idles at or below the cutoff SoC, and ends a timed discharge
by switching its enable off itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from demo.entities import CUTOFF_SOC, DISCHARGE_DURATION, DISCHARGE_ENABLE, DISCHARGE_POWER

# What the inverter falls back to when HA cannot be read: the safe side, a
# real inverter that loses its controller stops discharging.
SAFE_CUTOFF_SOC = 100.0


def _number(text: str | None) -> float | None:
    """A helper's state as a number; HA's missing markers and junk are None."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Controls:
    """The inverter settings as HA's helpers show them.

    Attributes:
        enabled: discharge switch.
        power_w: discharge power setting.
        cutoff_soc_pct: the battery is not discharged below this.
        duration_min: a timed discharge ends after this long; 0 means no timer.
    """

    enabled: bool = False
    power_w: float = 0.0
    cutoff_soc_pct: float = SAFE_CUTOFF_SOC
    duration_min: float = 0.0

    @classmethod
    def from_states(cls, states: Mapping[str, str | None]) -> Controls:
        """Parse the helpers' states (entity id -> state string or None).

        Anything missing or unreadable gives the safe value: a switch that is
        not clearly ``on`` is off, an unknown power is 0 W.
        """
        power = _number(states.get(DISCHARGE_POWER))
        cutoff = _number(states.get(CUTOFF_SOC))
        duration = _number(states.get(DISCHARGE_DURATION))
        return cls(
            enabled=states.get(DISCHARGE_ENABLE) == "on",
            power_w=max(power, 0.0) if power is not None else 0.0,
            cutoff_soc_pct=cutoff if cutoff is not None else SAFE_CUTOFF_SOC,
            duration_min=max(duration, 0.0) if duration is not None else 0.0,
        )


@dataclass(frozen=True)
class InverterState:
    """When the current discharge was switched on (simulated time), if it is."""

    started_at: datetime | None = None


@dataclass(frozen=True)
class Setpoint:
    """The inverter's decision for one step.

    Attributes:
        discharge_w: power the battery is asked for.
        mode: ``idle``, ``discharging``, ``cutoff`` (at or below cutoff SoC).
        timer_expired: a timed discharge just ended; the inverter switches
            its enable off (the simulator turns the HA helper off).
    """

    discharge_w: float
    mode: str
    timer_expired: bool = False


def decide(
    state: InverterState, controls: Controls, soc_pct: float, now: datetime
) -> tuple[InverterState, Setpoint]:
    """Decide the discharge power for one step.

    Args:
        state: the inverter's memory from the previous step.
        controls: the settings read from HA.
        soc_pct: the battery's state of charge.
        now: simulated time.

    Returns:
        The new state and the setpoint.
    """
    if not controls.enabled:
        return InverterState(), Setpoint(0.0, "idle")
    started = state.started_at or now
    kept = InverterState(started)
    if controls.duration_min > 0 and now - started >= timedelta(minutes=controls.duration_min):
        return InverterState(), Setpoint(0.0, "idle", timer_expired=True)
    if soc_pct <= controls.cutoff_soc_pct:
        return kept, Setpoint(0.0, "cutoff")
    return kept, Setpoint(controls.power_w, "discharging" if controls.power_w > 0 else "idle")
