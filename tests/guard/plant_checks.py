"""Invariants on the plant's physics (never on the guard's own formulas),
and the builder of a guarded site on the fake HA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridwatch_export_guard import ExportGuard
from tests.support.app_harness import make_app
from tests.support.fake_hass import FakeHass
from tests.support.plant import Inverter, LaggedSensor, Site, Steps
from tests.support.plant_sim import EVENT, POWER, GuardSim, Record, guard_args


@dataclass(frozen=True)
class Bounds:
    """What the physics may show.

    Attributes:
        transient_s: an over-limit stretch must start within this of a
            disturbance the guard cannot foresee, and last no longer: one
            meter period plus its lag plus the reaction (one report to see
            it, the write, the inverter's ramp).
        believed_off_s: the battery may still discharge this long after the
            guard believes it stopped (the ramp down, a flip seen late).
        over_wh_per_h: battery-caused energy over the limit per hour.
        failed_stop_s: while the plant ignores a stop, the guard may say
            "off" this long before its failed stop is critical: the settle
            time, one retry, and a meter report.
    """

    transient_s: float
    believed_off_s: float
    over_wh_per_h: float
    failed_stop_s: float = 8.0


def bounds_for(meter_period_s: float, lag_s: float, ramp_s: float) -> Bounds:
    reaction = meter_period_s + ramp_s + 0.5  # one more report, the write, the ramp
    return Bounds(
        transient_s=meter_period_s + lag_s + reaction,
        believed_off_s=ramp_s + meter_period_s + 1.0,
        # The standard cloudy profile's share: a 10 s loop causes ~130 Wh/h.
        over_wh_per_h=60.0,
    )


def violations(record: Record, site: Site, bounds: Bounds) -> list[str]:
    """Every breach of the physical invariants, in words."""
    found: list[str] = []
    disturbances = site.disturbances()
    for start, end, peak in record.over_stretches():
        before = [d for d in disturbances if d <= start + 1e-6]
        if not before or start - before[-1] > bounds.transient_s:
            found.append(f"over the limit at {start:.1f} s (peak {peak:.0f} W) with no disturbance")
        if end - start > bounds.transient_s:
            found.append(
                f"over the limit {start:.1f}-{end:.1f} s: longer than {bounds.transient_s:.1f} s"
            )
    run = 0.0
    rows = zip(record.believed_off, record.battery, record.excused, strict=True)
    for off, battery, excused in rows:
        run = run + record.dt if off and battery > 50.0 else 0.0
        if run > (bounds.failed_stop_s if excused else bounds.believed_off_s):
            found.append(f"discharging {battery:.0f} W while the guard says off (not critical)")
            break
    faulty = sum(record.excused) * record.dt / 3600.0
    per_h = record.over_wh(excused_too=False) / max(record.hours() - faulty, 1e-9)
    if record.hours() >= 0.05 and per_h > bounds.over_wh_per_h:
        found.append(f"{per_h:.1f} Wh/h over the limit (budget {bounds.over_wh_per_h})")
    return found


async def guarded_site(
    pv: Steps,
    load: Steps,
    *,
    period_s: float = 1.0,
    lag_s: float = 1.0,
    ramp_s: float = 1.0,
    battery_sensor: bool = False,
    battery_period_s: float = 1.0,
    battery_lag_s: float = 0.5,
    meter_sign: float = -1.0,
    inverter: Inverter | None = None,
    shows_step_w: float | None = None,
    **options: Any,
) -> GuardSim:
    """A site with a started guard on the fake HA (not yet requested).

    ``shows_step_w``: the power entity shows the step the inverter applied
    (1700 W for 1662 W with 100 W steps), as quantised inverters do.
    """
    hass = FakeHass()
    site = Site(pv, load, inverter or Inverter(ramp_w_per_s=5000.0 / max(ramp_s, 0.01)))
    meter = LaggedSensor(period_s, lag_s)
    sensor = (
        LaggedSensor(battery_period_s, battery_lag_s, average=False) if battery_sensor else None
    )
    sim = GuardSim(hass, site, meter, battery_sensor=sensor, meter_sign=meter_sign)
    args = guard_args(meter_period_s=period_s, settle_s=2 * period_s + lag_s + ramp_s, **options)
    if battery_sensor:
        args["readings"] = {**args["readings"], "battery_power": {"entity": "sensor.battery_power"}}
    if shows_step_w is not None:
        show_applied_step(hass, shows_step_w)
    sim.args = args
    await start_guard(sim)
    return sim


async def start_guard(sim: GuardSim) -> None:
    """(Re)start the guard app with the site's options."""
    app = make_app(ExportGuard, sim.args, sim.hass, name="export_guard")
    await app.initialize()
    assert app.controller is not None, "the guard refused its options"
    sim.guard = app


def show_applied_step(hass: FakeHass, step_w: float) -> None:
    """The power entity shows the value rounded to the inverter's step."""
    real_call = hass.call_service

    async def shows_the_step(service: str, data: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        if data and data.get("entity_id") == POWER:
            data = {**data, "value": round(float(data["value"]) / step_w) * step_w}
        return await real_call(service, data, **kw)

    hass.call_service = shows_the_step  # type: ignore[method-assign]


async def request(sim: GuardSim, **data: Any) -> None:
    await sim.hass.fire_event(EVENT, {"action": "start", **data})
