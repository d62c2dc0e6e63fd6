"""A simulated home energy site: PV, house load, a battery and a grid meter.

Pure arithmetic: the simulator process feeds it the time and the discharge
setting it reads from Home Assistant, and publishes what comes out. Sign
convention of the grid meter: positive imports, negative exports (the most
common meter convention; the export guard's ``grid_sign`` option covers the
other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SiteParams:
    pv_peak_w: float = 6000.0
    sunrise_h: float = 6.0
    sunset_h: float = 20.0
    base_load_w: float = 450.0
    evening_load_w: float = 1200.0
    battery_capacity_kwh: float = 10.0
    max_discharge_w: float = 5000.0
    # Below this the battery management system refuses to discharge, whatever
    # the inverter is told: a real battery protects its cells.
    bms_floor_pct: float = 5.0


@dataclass(frozen=True)
class SiteState:
    soc_pct: float = 80.0
    imported_kwh: float = 0.0
    exported_kwh: float = 0.0
    pv_kwh: float = 0.0
    battery_out_kwh: float = 0.0
    consumption_kwh: float = 0.0


@dataclass(frozen=True)
class SiteReadings:
    pv_w: float
    load_w: float
    battery_w: float  # positive: discharging into the house / grid
    grid_w: float  # positive: import, negative: export
    soc_pct: float


def pv_power(hour: float, params: SiteParams, cloud: float = 0.0) -> float:
    """PV output at local ``hour`` (0-24): a half-sine between sunrise and
    sunset, scaled down by ``cloud`` (0 clear .. 1 overcast)."""
    if not params.sunrise_h < hour < params.sunset_h:
        return 0.0
    phase = (hour - params.sunrise_h) / (params.sunset_h - params.sunrise_h)
    clear = params.pv_peak_w * math.sin(math.pi * phase)
    return max(0.0, clear * (1.0 - 0.8 * min(max(cloud, 0.0), 1.0)))


def house_load(hour: float, params: SiteParams) -> float:
    """House consumption at local ``hour``: a base load plus an evening bump."""
    evening = math.exp(-(((hour - 19.0) / 1.5) ** 2))
    morning = 0.5 * math.exp(-(((hour - 7.5) / 1.0) ** 2))
    return params.base_load_w + params.evening_load_w * (evening + morning)


def step(
    state: SiteState,
    *,
    hour: float,
    dt_s: float,
    discharge_w: float,
    params: SiteParams = SiteParams(),
    cloud: float = 0.0,
    extra_load_w: float = 0.0,
) -> tuple[SiteState, SiteReadings]:
    """Advance the site by ``dt_s`` seconds with the battery told to discharge
    ``discharge_w`` (0 when the discharge switch is off); ``extra_load_w`` is
    a load switched on over the house's usual one (the demo's load spike)."""
    pv = pv_power(hour, params, cloud)
    load = house_load(hour, params) + max(extra_load_w, 0.0)
    battery = min(max(discharge_w, 0.0), params.max_discharge_w)
    energy_left_kwh = (state.soc_pct - params.bms_floor_pct) / 100 * params.battery_capacity_kwh
    # Never draw more than is left above the BMS floor within this step.
    battery = 0.0 if energy_left_kwh <= 0 else min(battery, energy_left_kwh * 3.6e6 / dt_s)
    grid = load - pv - battery
    hours = dt_s / 3600.0
    out_kwh = battery * hours / 1000
    new_soc = state.soc_pct - out_kwh / params.battery_capacity_kwh * 100
    new_state = replace(
        state,
        soc_pct=max(new_soc, 0.0),
        imported_kwh=state.imported_kwh + max(grid, 0.0) * hours / 1000,
        exported_kwh=state.exported_kwh + max(-grid, 0.0) * hours / 1000,
        pv_kwh=state.pv_kwh + pv * hours / 1000,
        battery_out_kwh=state.battery_out_kwh + out_kwh,
        consumption_kwh=state.consumption_kwh + load * hours / 1000,
    )
    return new_state, SiteReadings(pv, load, battery, grid, new_state.soc_pct)
