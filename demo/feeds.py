"""What the simulated site says on each channel, from one simulation step.

Pure formatting: HA sensor states (REST), the MQTT gateway's JSON messages,
the controller's WebSocket event and HTTP status. The link config in
apps.yaml points at these topics, events and paths (a test checks they
agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from demo.entities import (
    BATTERY_ENERGY,
    BATTERY_POWER,
    BATTERY_SOC,
    EXPORT_TODAY,
    GRID_EXPORT_ENERGY,
    GRID_IMPORT_ENERGY,
    GRID_POWER,
    PV_ENERGY,
    PV_POWER,
    Sensor,
)
from demo.site_model import SiteReadings, SiteState

# MQTT gateway (a meter gateway publishing JSON, like a Shelly or Tasmota).
GATEWAY_METER_TOPIC: Final = "demo-gateway/meter/state"
GATEWAY_PV_TOPIC: Final = "demo-gateway/pv/state"
# WebSocket controller: event name pushed after ``subscribe``.
CONTROLLER_EVENT: Final = "telemetry"
# HTTP endpoint the controller serves (polled by the http link).
CONTROLLER_STATUS_PATH: Final = "/api/status"


@dataclass(frozen=True)
class Snapshot:
    """Everything the site publishes after one step.

    Attributes:
        time: simulated time of the step.
        readings: powers and SoC.
        site: counters.
        export_today_kwh: grid export since simulated midnight.
        mode: the inverter's mode (idle / discharging / cutoff).
    """

    time: datetime
    readings: SiteReadings
    site: SiteState
    export_today_kwh: float
    mode: str


def _fmt(value: float, decimals: int) -> str:
    # HA states are strings; "-0" would read oddly on the dashboard.
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 and decimals == 0 else text


def ha_states(snap: Snapshot) -> list[tuple[Sensor, str]]:
    """The meter sensors' states, formatted to each sensor's precision."""
    r, s = snap.readings, snap.site
    values = (
        (GRID_POWER, r.grid_w),
        (PV_POWER, r.pv_w),
        (BATTERY_POWER, r.battery_w),
        (BATTERY_SOC, r.soc_pct),
        (GRID_IMPORT_ENERGY, s.imported_kwh),
        (GRID_EXPORT_ENERGY, s.exported_kwh),
        (PV_ENERGY, s.pv_kwh),
        (BATTERY_ENERGY, s.battery_out_kwh),
        (EXPORT_TODAY, snap.export_today_kwh),
    )
    return [(sensor, _fmt(value, sensor.precision)) for sensor, value in values]


def gateway_messages(snap: Snapshot) -> dict[str, dict[str, Any]]:
    """Topic -> JSON body of the MQTT gateway's messages."""
    r, s = snap.readings, snap.site
    stamp = snap.time.isoformat(timespec="seconds")
    return {
        GATEWAY_METER_TOPIC: {
            "power": round(r.grid_w, 1),
            "energy": {"import": round(s.imported_kwh, 3), "export": round(s.exported_kwh, 3)},
            "time": stamp,
        },
        GATEWAY_PV_TOPIC: {"power": round(r.pv_w, 1), "energy": round(s.pv_kwh, 3), "time": stamp},
    }


def controller_event(snap: Snapshot) -> dict[str, Any]:
    """The ``telemetry`` event the controller pushes over WebSocket."""
    r = snap.readings
    return {
        "battery": {"power_w": round(r.battery_w, 1), "soc": round(r.soc_pct, 2)},
        "inverter": {"mode": snap.mode, "load_w": round(r.load_w, 1)},
        "time": snap.time.isoformat(timespec="seconds"),
    }


def controller_status(snap: Snapshot) -> dict[str, Any]:
    """The JSON the controller serves at :data:`CONTROLLER_STATUS_PATH`."""
    return {
        "mode": snap.mode,
        "battery_out_kwh": round(snap.site.battery_out_kwh, 3),
        "export_today_kwh": round(snap.export_today_kwh, 3),
    }
