"""Victron Instant Readout advertisements through victron-ble.

The keys are victron-ble's ``get_<key>()`` readings of the devices people put
beside a home battery: battery monitors (SmartShunt, BMV), solar chargers
(SmartSolar MPPT), DC-DC converters (Orion), inverters. A device reports the
subset its model has; the rest stay unknown.
"""

from __future__ import annotations

from types import MappingProxyType

from gridwatch.links.profiles.base import ProfileValue
from gridwatch.links.values import ValueKind

_TEXT = ValueKind.TEXT
VICTRON_VALUES = MappingProxyType(
    {
        # battery monitor (SmartShunt / BMV)
        "voltage": ProfileValue("V", "voltage", minimum=-100, maximum=1000, precision=2),
        "current": ProfileValue("A", "current", minimum=-10000, maximum=10000, precision=3),
        "soc": ProfileValue("%", "battery", minimum=0, maximum=100, precision=1),
        "consumed_ah": ProfileValue("Ah", None, minimum=-100000, maximum=100000, precision=1),
        # Not sent while charging (no time to empty): listed on request only.
        "remaining_mins": ProfileValue("min", "duration", minimum=0, maximum=65535, default=False),
        "temperature": ProfileValue("°C", "temperature", minimum=-60, maximum=400, default=False),
        "starter_voltage": ProfileValue("V", "voltage", default=False),
        "midpoint_voltage": ProfileValue("V", "voltage", default=False),
        "alarm": ProfileValue(kind=_TEXT, state_class=None, default=False),
        # solar charger (SmartSolar MPPT)
        "battery_voltage": ProfileValue("V", "voltage", precision=2, default=False),
        "battery_charging_current": ProfileValue("A", "current", precision=1, default=False),
        "solar_power": ProfileValue("W", "power", minimum=0, default=False),
        "yield_today": ProfileValue("Wh", "energy", "total_increasing", default=False),
        "external_device_load": ProfileValue("A", "current", default=False),
        "charge_state": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "charger_error": ProfileValue(kind=_TEXT, state_class=None, default=False),
        # DC-DC converter (Orion) and inverters
        "input_voltage": ProfileValue("V", "voltage", precision=2, default=False),
        "output_voltage": ProfileValue("V", "voltage", precision=2, default=False),
        "off_reason": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "ac_apparent_power": ProfileValue("VA", "apparent_power", default=False),
        "ac_voltage": ProfileValue("V", "voltage", default=False),
        "ac_current": ProfileValue("A", "current", default=False),
        "device_state": ProfileValue(kind=_TEXT, state_class=None, default=False),
    }
)
