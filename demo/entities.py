"""The Home Assistant side of the demo site: helper entities and meter sensors.

The helpers stand for the inverter's controls (what a real install gets from
its inverter integration); the sensors stand for the meters. Both are named
here once: the HA config, the simulator, apps.yaml and the dashboard
all use these ids (tests check that they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Inverter controls (HA helpers, defined in the sandbox's configuration.yaml);
# the same ids as the end-to-end harness's (tests/e2e/ha_config.py), so the
# demo and the e2e scenarios speak of the same entities.
DISCHARGE_ENABLE: Final = "input_boolean.inverter_discharge_enable"
DISCHARGE_POWER: Final = "input_number.inverter_discharge_power"
CUTOFF_SOC: Final = "input_number.inverter_cutoff_soc"
DISCHARGE_DURATION: Final = "input_number.inverter_discharge_duration"
CONTROL_IDS: Final = (DISCHARGE_ENABLE, DISCHARGE_POWER, CUTOFF_SOC, DISCHARGE_DURATION)
# The person's switch: "discharge the battery now, within the export limits".
# The export guard watches it and drives the controls above.
DISCHARGE_REQUEST: Final = "input_boolean.battery_discharge_request"


@dataclass(frozen=True)
class Sensor:
    """A meter sensor the simulator writes through HA's REST API."""

    entity_id: str
    name: str
    unit: str
    device_class: str
    state_class: str
    precision: int
    # HA fires no state_changed for a write that changes nothing, so an idle
    # battery's SoC would look stale to the export guard; a meter that says
    # when it measured (an attribute) keeps its readings visibly fresh.
    heartbeat: bool = False

    def attributes(self) -> dict[str, Any]:
        """HA attributes that make the recorder and the Energy dashboard accept it."""
        return {
            "friendly_name": self.name,
            "unit_of_measurement": self.unit,
            "device_class": self.device_class,
            "state_class": self.state_class,
        }


GRID_POWER: Final = Sensor(
    "sensor.grid_power", "Grid power", "W", "power", "measurement", 0, heartbeat=True
)
PV_POWER: Final = Sensor(
    "sensor.pv_power", "PV power", "W", "power", "measurement", 0, heartbeat=True
)
BATTERY_POWER: Final = Sensor(
    "sensor.battery_power", "Battery power", "W", "power", "measurement", 0
)
BATTERY_SOC: Final = Sensor(
    "sensor.battery_soc", "Battery SoC", "%", "battery", "measurement", 1, heartbeat=True
)
# Lifetime counters, as meters report them: total_increasing, so the recorder
# builds the statistics the energy tally queries.
GRID_IMPORT_ENERGY: Final = Sensor(
    "sensor.grid_import_energy", "Grid import", "kWh", "energy", "total_increasing", 3
)
GRID_EXPORT_ENERGY: Final = Sensor(
    "sensor.grid_export_energy", "Grid export", "kWh", "energy", "total_increasing", 3
)
PV_ENERGY: Final = Sensor(
    "sensor.pv_energy", "PV production", "kWh", "energy", "total_increasing", 3
)
BATTERY_ENERGY: Final = Sensor(
    "sensor.battery_discharge_energy", "Battery discharge", "kWh", "energy", "total_increasing", 3
)
# The export guard's daily cap needs "exported today"; meters that report it
# reset it at midnight, which total_increasing reads as a meter reset.
EXPORT_TODAY: Final = Sensor(
    "sensor.grid_export_today",
    "Grid export today",
    "kWh",
    "energy",
    "total_increasing",
    3,
    heartbeat=True,
)
SENSORS: Final = (
    GRID_POWER,
    PV_POWER,
    BATTERY_POWER,
    BATTERY_SOC,
    GRID_IMPORT_ENERGY,
    GRID_EXPORT_ENERGY,
    PV_ENERGY,
    BATTERY_ENERGY,
    EXPORT_TODAY,
)


def _number(name: str, high: float, step: float, initial: float, unit: str) -> dict[str, Any]:
    # mode: box, as a real inverter integration's number entity accepts any
    # value in range through input_number.set_value.
    return {
        "name": name,
        "min": 0,
        "max": high,
        "step": step,
        "initial": initial,
        "unit_of_measurement": unit,
        "mode": "box",
    }


def helpers_config(max_discharge_w: float, cutoff_soc_pct: float = 20.0) -> dict[str, Any]:
    """The ``input_boolean`` / ``input_number`` blocks of HA's configuration.yaml.

    Args:
        max_discharge_w: the inverter's largest discharge setting.
        cutoff_soc_pct: the cutoff SoC the demo starts with.

    Returns:
        A mapping to merge into configuration.yaml.
    """
    return {
        "input_boolean": {
            DISCHARGE_ENABLE.split(".")[1]: {
                "name": "Inverter discharge enable",
                "icon": "mdi:battery-arrow-down",
            },
            DISCHARGE_REQUEST.split(".")[1]: {
                "name": "Battery discharge request",
                "icon": "mdi:export",
            },
        },
        "input_number": {
            DISCHARGE_POWER.split(".")[1]: _number("Discharge power", max_discharge_w, 1, 0, "W"),
            CUTOFF_SOC.split(".")[1]: _number("Cutoff SoC", 100, 1, cutoff_soc_pct, "%"),
            DISCHARGE_DURATION.split(".")[1]: _number("Discharge duration", 1440, 1, 0, "min"),
        },
    }
