"""Battery management systems through aiobmsble (JBD, JK, Daly, ... or auto).

The keys are aiobmsble's ``BMSSample`` keys (its units: V, A, Ah, Wh, %, degC,
s); the library computes power, delta voltage, runtime and the like where a
BMS does not report them.
"""

from __future__ import annotations

from types import MappingProxyType

from gridwatch.links.profiles.base import ProfileValue
from gridwatch.links.values import ValueKind

_TEXT = ValueKind.TEXT
# A pack of cells in series: LiFePO4/NMC packs up to 48 V nominal run below
# 100 V; a few hundred amps covers any BMS aiobmsble knows.
BMS_VALUES = MappingProxyType(
    {
        "voltage": ProfileValue("V", "voltage", minimum=0, maximum=1000, precision=2),
        "current": ProfileValue("A", "current", minimum=-2000, maximum=2000, precision=2),
        "power": ProfileValue("W", "power", minimum=-200000, maximum=200000, precision=1),
        "battery_level": ProfileValue("%", "battery", minimum=0, maximum=100, precision=0),
        "battery_health": ProfileValue("%", None, minimum=0, maximum=100, default=False),
        "temperature": ProfileValue("°C", "temperature", minimum=-60, maximum=150, precision=1),
        "cycle_charge": ProfileValue("Ah", None, minimum=0, precision=2),
        "cycle_capacity": ProfileValue("Wh", "energy_storage", minimum=0, precision=0),
        "design_capacity": ProfileValue("Ah", None, minimum=0, default=False),
        "cycles": ProfileValue(None, None, "total_increasing", minimum=0),
        "delta_voltage": ProfileValue("V", "voltage", minimum=0, maximum=10, precision=3),
        "runtime": ProfileValue("s", "duration", minimum=0, default=False),
        "cell_count": ProfileValue(None, None, minimum=0, default=False),
        "cell_voltages": ProfileValue(
            "V", "voltage", minimum=0, maximum=10, precision=3, default=False
        ),
        "temp_sensors": ProfileValue(None, None, minimum=0, default=False),
        "temp_values": ProfileValue(
            "°C", "temperature", minimum=-60, maximum=150, precision=1, default=False
        ),
        "balance_current": ProfileValue("A", "current", default=False),
        "heater_current": ProfileValue("A", "current", default=False),
        "total_charge": ProfileValue("Ah", None, "total_increasing", default=False),
        "pack_count": ProfileValue(None, None, default=False),
        "problem_code": ProfileValue(None, None, None, default=False),
        "battery_charging": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "battery_mode": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "problem": ProfileValue(kind=_TEXT, state_class=None),
        "balancer": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "chrg_mosfet": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "dischrg_mosfet": ProfileValue(kind=_TEXT, state_class=None, default=False),
        "heater": ProfileValue(kind=_TEXT, state_class=None, default=False),
    }
)
