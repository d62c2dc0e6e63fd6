"""A physical site for the export guard's tests and bench: PV with cloud
steps, a house load with spikes, an inverter with a ramp, power steps and
faults, a grid meter with a period, lag and averaging, and a battery-power
sensor with its own lag.

Pure and clocked by the caller: ``Plant.step(t, dt, controls)`` moves the
physics on; nothing here reads a clock or touches HA. The export is what the
tests judge the guard on -- never the guard's own formulas.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Steps:
    """A piecewise-constant signal: ``value`` from each time on.

    Attributes:
        points: ``(t, value)`` sorted by ``t``; before the first, ``default``.
        default: the value before any point.
    """

    points: tuple[tuple[float, float], ...] = ()
    default: float = 0.0

    def at(self, t: float) -> float:
        times = [p[0] for p in self.points]
        i = bisect.bisect_right(times, t)
        return self.default if i == 0 else self.points[i - 1][1]

    def up_steps(self, sign: float = 1.0) -> list[float]:
        """Times where the signal steps in ``sign``'s direction."""
        out, last = [], self.default
        for t, value in self.points:
            if (value - last) * sign > 0:
                out.append(t)
            last = value
        return out


@dataclass(frozen=True)
class Controls:
    """The inverter controls as HA shows them (what the inverter obeys)."""

    enabled: bool = False
    power_w: float = 0.0
    duration_min: float = 0.0


@dataclass
class Inverter:
    """A battery inverter.

    Attributes:
        ramp_w_per_s: how fast the output follows its setpoint.
        step_w: the setpoint is applied rounded to this (quantised inverters).
        max_w: the most it delivers.
        stuck_w: when set, the output stays here whatever is asked (a stuck
            inverter, or one ignoring its controls).
        power_w: the output now (W, discharge positive).
        started_at: when the enable was switched on (its duration timer
            counts from there, unless ``timer_from_write``; the timer
            switching off ends a discharge).
        timer_from_write: the duration timer restarts at each write of the
            duration control (most remote-control timeouts) instead.
        timer_written_at: when the duration control was last written.
        ignores_stop: the enable entity turns off but the output keeps
            running (an inverter that ignores its controls' off).
    """

    ramp_w_per_s: float = 5000.0
    step_w: float = 1.0
    max_w: float = 5000.0
    stuck_w: float | None = None
    power_w: float = 0.0
    started_at: float | None = None
    timer_expired: bool = False
    timer_from_write: bool = False
    timer_written_at: float | None = None
    ignores_stop: bool = False
    _last_goal: float = 0.0

    def target(self, controls: Controls, t: float) -> float:
        if not controls.enabled:
            self.started_at = None
            return self._last_goal if self.ignores_stop else 0.0
        if self.started_at is None:
            self.started_at = t
        origin = self.started_at
        if self.timer_from_write and self.timer_written_at is not None:
            origin = max(origin, self.timer_written_at)
        if controls.duration_min > 0 and t - origin >= controls.duration_min * 60.0:
            self.timer_expired = True
            return 0.0
        wanted = min(max(controls.power_w, 0.0), self.max_w)
        return round(wanted / self.step_w) * self.step_w

    def step(self, t: float, dt: float, controls: Controls) -> float:
        goal = self.target(controls, t) if self.stuck_w is None else self.stuck_w
        self._last_goal = goal
        move = self.ramp_w_per_s * dt
        self.power_w += max(-move, min(move, goal - self.power_w))
        return self.power_w


@dataclass
class LaggedSensor:
    """A sensor reporting every ``period_s`` the mean over the last period,
    ``lag_s`` late (averaging meters, slow integrations).

    Attributes:
        period_s: time between reports.
        lag_s: how late a report is.
        average: report the mean over the period, else the value then.
    """

    period_s: float = 1.0
    lag_s: float = 0.0
    average: bool = True
    _history: deque[tuple[float, float, float]] = field(default_factory=deque)
    _next_at: float = 0.0

    def record(self, t: float, dt: float, value: float) -> None:
        """``value`` held over ``[t, t + dt)``."""
        self._history.append((t, t + dt, value))
        horizon = t - self.period_s - self.lag_s - 1.0
        while self._history and self._history[0][1] < horizon:
            self._history.popleft()

    def due(self, t: float) -> float | None:
        """The report due at ``t``, if one is."""
        if t + 1e-9 < self._next_at:
            return None
        self._next_at = max(self._next_at + self.period_s, t + self.period_s * 0.5)
        end = t - self.lag_s
        start = end - (self.period_s if self.average else 1e-6)
        total = weight = 0.0
        last = None
        for a, b, v in self._history:
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += v * (hi - lo)
                weight += hi - lo
            if a <= end:
                last = v
        if weight > 0:
            return total / weight
        return last


@dataclass
class Site:
    """PV, load and a battery: the export the guard must hold.

    Attributes:
        pv: PV output (W) over time.
        load: house load (W) over time.
        inverter: the battery inverter.
    """

    pv: Steps
    load: Steps
    inverter: Inverter = field(default_factory=Inverter)

    def uncontrolled_w(self, t: float) -> float:
        return self.pv.at(t) - self.load.at(t)

    def step(self, t: float, dt: float, controls: Controls) -> tuple[float, float]:
        """Move on by ``dt``; return (export W, battery W) over the step."""
        battery = self.inverter.step(t, dt, controls)
        return self.uncontrolled_w(t) + battery, battery

    def disturbances(self) -> list[float]:
        """Times the uncontrolled export stepped up (PV up or load down):
        what the guard cannot foresee."""
        return sorted(set(self.pv.up_steps(1.0)) | set(self.load.up_steps(-1.0)))


def cloudy_day(
    seconds: float, *, seed: int = 1, pv_peak_w: float = 6000.0, base_load_w: float = 600.0
) -> tuple[Steps, Steps]:
    """A standard disturbance profile: PV with cloud steps every 20-90 s
    (drops of 30-80 %), a load with spikes of 1-3 kW lasting 5-60 s.

    Deterministic for a seed (a small LCG, no global random state).
    """
    state = seed * 2654435761 % 2**32 or 1

    def rnd() -> float:
        nonlocal state
        state = (1103515245 * state + 12345) % 2**31
        return state / 2**31

    pv: list[tuple[float, float]] = []
    t = 0.0
    while t < seconds:
        clear = pv_peak_w * (0.85 + 0.15 * math.sin(t / 900.0))
        pv.append((t, round(clear * (1.0 - (0.3 + 0.5 * rnd()) * (rnd() < 0.5)))))
        t += 20.0 + 70.0 * rnd()
    load: list[tuple[float, float]] = []
    t = 5.0
    while t < seconds:
        load.append((t, round(base_load_w + 1000.0 + 2000.0 * rnd())))
        t += 5.0 + 55.0 * rnd()
        load.append((t, base_load_w))
        t += 20.0 + 100.0 * rnd()
    return Steps(tuple(pv), pv_peak_w), Steps(tuple(load), base_load_w)
