"""Renogy charge controllers through renogy-ble (BT-1 / BT-2 modules).

The keys are renogy-ble's parsed controller registers.
"""

from __future__ import annotations

from types import MappingProxyType

from gridwatch.links.profiles.base import ProfileValue
from gridwatch.links.values import ValueKind

_TEXT = ValueKind.TEXT
RENOGY_VALUES = MappingProxyType(
    {
        "battery_percentage": ProfileValue("%", "battery", minimum=0, maximum=100),
        "battery_voltage": ProfileValue("V", "voltage", minimum=0, maximum=100, precision=1),
        "battery_current": ProfileValue("A", "current", minimum=-500, maximum=500, precision=2),
        "battery_temperature": ProfileValue("°C", "temperature", minimum=-60, maximum=150),
        "controller_temperature": ProfileValue("°C", "temperature", minimum=-60, maximum=150),
        "load_voltage": ProfileValue("V", "voltage", precision=1, default=False),
        "load_current": ProfileValue("A", "current", precision=2, default=False),
        "load_power": ProfileValue("W", "power", default=False),
        "pv_voltage": ProfileValue("V", "voltage", precision=1),
        "pv_current": ProfileValue("A", "current", precision=2),
        "pv_power": ProfileValue("W", "power", minimum=0),
        "power_generation_today": ProfileValue("Wh", "energy", "total_increasing"),
        "power_generation_total": ProfileValue("kWh", "energy", "total_increasing", default=False),
        "charging_status": ProfileValue(kind=_TEXT, state_class=None),
        "load_status": ProfileValue(kind=_TEXT, state_class=None, default=False),
    }
)
