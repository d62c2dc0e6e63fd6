"""Export the daily energy counter does not show yet, integrated from the
grid readings.

Pure. Energy counters often update every few minutes, and many report late
(the value they publish covers export up to some minutes before). The
guard adds what the grid readings say was exported and the counter has not
counted: each counter update subtracts the counter's own increase from the
integral instead of zeroing it, so export the counter has not caught up
with stays counted and the cap's margin cannot be overshot by its lag.
"""

from __future__ import annotations

from dataclasses import dataclass

_S_PER_H = 3600.0


@dataclass(frozen=True)
class UnmeteredExport:
    """The integral since the counter's last update.

    Attributes:
        kwh: energy exported since then (kWh).
        export_w: the latest export reading (W; held until the next).
        at: when it arrived (monotonic).
    """

    kwh: float = 0.0
    export_w: float | None = None
    at: float | None = None

    def on_export(self, export_w: float | None, now: float) -> UnmeteredExport:
        """A new grid reading (export positive), or ``None`` if invalid."""
        return UnmeteredExport(self._until(now), export_w, now)

    def on_counter(self, increase_kwh: float | None, now: float) -> UnmeteredExport:
        """The counter updated by ``increase_kwh``: that much of the integral
        is now counted. ``None`` (no earlier value to compare, a reset at
        midnight, an invalid value) starts over: the counter shows all."""
        if increase_kwh is None or increase_kwh < 0:
            return UnmeteredExport(0.0, self.export_w, now)
        return UnmeteredExport(max(self._until(now) - increase_kwh, 0.0), self.export_w, now)

    def value(self, now: float) -> float:
        """Exported since the counter's last update, up to ``now`` (kWh)."""
        return self._until(now)

    def _until(self, now: float) -> float:
        if self.export_w is None or self.at is None or now <= self.at:
            return self.kwh
        return self.kwh + max(self.export_w, 0.0) * (now - self.at) / _S_PER_H / 1000.0
