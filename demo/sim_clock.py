"""The simulator's clock: simulated site time from real elapsed time.

The site runs on its own day (so a demo started at night still shows the sun)
and optionally faster than real time. Pure: callers pass the real elapsed
seconds in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class SimClock:
    """Maps real elapsed seconds to simulated time.

    Attributes:
        origin: simulated time at real second 0 (timezone-aware).
        speed: simulated seconds per real second (1: real time).
    """

    origin: datetime
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.origin.tzinfo is None:
            raise ValueError("the simulated origin needs a time zone")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def at(self, elapsed_s: float) -> datetime:
        """Simulated time ``elapsed_s`` real seconds after the origin."""
        return self.origin + timedelta(seconds=elapsed_s * self.speed)

    def sim_seconds(self, real_s: float) -> float:
        """How many simulated seconds ``real_s`` real seconds are."""
        return real_s * self.speed


def origin_at_hour(now: datetime, hour: float) -> datetime:
    """Today (in ``now``'s zone) at ``hour`` (0-24, fractional)."""
    if not 0 <= hour < 24:
        raise ValueError(f"hour must be in [0, 24), got {hour}")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(hours=hour)


def hour_of_day(moment: datetime) -> float:
    """``moment``'s local hour as a fraction (13:30 -> 13.5)."""
    return moment.hour + moment.minute / 60 + (moment.second + moment.microsecond / 1e6) / 3600


@dataclass(frozen=True)
class DailyCounter:
    """A counter that restarts at (simulated) midnight, from a lifetime total.

    Attributes:
        day: the day being counted.
        base_kwh: the lifetime total at the start of ``day``.
    """

    day: date
    base_kwh: float

    def advance(self, moment: datetime, total_kwh: float) -> DailyCounter:
        """The counter at ``moment``: restarted from ``total_kwh`` on a new day."""
        if moment.date() != self.day:
            return DailyCounter(moment.date(), total_kwh)
        return self

    def value(self, total_kwh: float) -> float:
        """Energy counted today."""
        return max(total_kwh - self.base_kwh, 0.0)
