"""The naive export limiter the guard is measured against: every 10 s it
reads the meter and sets discharge = limit - (PV - load), where PV - load is
the reading minus the discharge it set (the Energy Export Monitor
integration's loop). Drives the plant directly, no HA."""

from __future__ import annotations

from tests.support.plant import Controls, LaggedSensor, Site
from tests.support.plant_sim import Record


def run_naive(
    site: Site,
    meter: LaggedSensor,
    seconds: float,
    *,
    limit_w: float = 3000.0,
    max_w: float = 5000.0,
    every_s: float = 10.0,
    dt: float = 0.1,
) -> tuple[Record, int]:
    """Simulate ``seconds``; return the record and the number of writes."""
    record = Record(limit_w, dt)
    setpoint, last_reading, next_at, writes = 0.0, None, 0.0, 0
    steps = round(seconds / dt)
    for i in range(steps):
        t = i * dt
        export, battery = site.step(t, dt, Controls(setpoint > 0, setpoint))
        meter.record(t, dt, export)
        reading = meter.due(t + dt)
        if reading is not None:
            last_reading = reading
        if t + dt >= next_at and last_reading is not None:
            next_at += every_s
            uncontrolled = last_reading - setpoint
            new = min(max(limit_w - uncontrolled, 0.0), max_w)
            if new != setpoint:
                setpoint, writes = new, writes + 1
        record.add(t, export, battery, setpoint <= 0, True)
    return record, writes


def run_ideal(
    site: Site,
    meter: LaggedSensor,
    seconds: float,
    *,
    limit_w: float = 3000.0,
    deadband_w: float = 100.0,
    max_w: float = 5000.0,
    dt: float = 0.1,
) -> Record:
    """The best any controller driven by this meter can do without holding
    power back: at each report it knows exactly which battery power the
    report reflects (the same window, averaged alike), so the export it does
    not cause is exact, and it sets discharge = limit - deadband - that at
    once. What is left over the limit is the meter's delay and the ramp."""
    battery_meter = LaggedSensor(meter.period_s, meter.lag_s, meter.average)
    record = Record(limit_w, dt)
    setpoint = 0.0
    for i in range(round(seconds / dt)):
        t = i * dt
        export, battery = site.step(t, dt, Controls(setpoint > 0, setpoint))
        meter.record(t, dt, export)
        battery_meter.record(t, dt, battery)
        reading, reflected = meter.due(t + dt), battery_meter.due(t + dt)
        if reading is not None and reflected is not None:
            uncontrolled = reading - reflected
            setpoint = min(max(limit_w - deadband_w - uncontrolled, 0.0), max_w)
        record.add(t, export, battery, setpoint <= 0, True)
    return record
