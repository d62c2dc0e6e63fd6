"""The Home Assistant configuration the end-to-end tests run against.

Small on purpose: every integration costs boot time, so there is no
``default_config`` and no frontend. What is here stands for a home energy
system: input helpers for the inverter's controls, simulator knobs for the
meters and template sensors that turn those knobs into proper meter entities
(with device_class / state_class, so the recorder keeps statistics for them).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

# One place for the site's location and zone: AppDaemon must be given the same
# values or its idea of "today" drifts from HA's. Amsterdam has DST, which the
# energy tally has to get right.
TIME_ZONE = "Europe/Amsterdam"
LATITUDE = 52.37
LONGITUDE = 4.89
ELEVATION = 0

# Entities the config creates, named once for the tests.
DISCHARGE_ENABLE = "input_boolean.inverter_discharge_enable"
DISCHARGE_POWER = "input_number.inverter_discharge_power"
CUTOFF_SOC = "input_number.inverter_cutoff_soc"
DISCHARGE_DURATION = "input_number.inverter_discharge_duration"
SIM_GRID_POWER = "input_number.sim_grid_power"
SIM_BATTERY_SOC = "input_number.sim_battery_soc"
SIM_EXPORT_ENERGY = "input_number.sim_export_energy"
GRID_POWER = "sensor.grid_power"
BATTERY_SOC = "sensor.battery_soc"
EXPORT_ENERGY = "sensor.export_energy"
# A real (legacy) ``notify.*`` service whose deliveries a test can read back
# from disk: the command_line notify platform appends each message to a file.
# (The ``file`` platform was YAML-configurable in 2024.1 but is config-entry
# only in 2026: HA 2026.2 refuses it with "Invalid notify platform".)
NOTIFY_SERVICE = "notify.gridwatch_file"
NOTIFY_FILENAME = "notify_gridwatch.log"
# A service that answers only after ``seconds`` (default 5): lets a test
# provoke a service-call timeout against the real HA.
SLOW_SCRIPT = "script.gridwatch_slow"

# Integrations the config loads; their pip requirements are installed up front
# so HA can boot with --skip-pip.
DOMAINS = (
    "homeassistant",
    "http",
    "api",
    "websocket_api",
    "onboarding",
    "recorder",
    "persistent_notification",
    "input_number",
    "input_boolean",
    "template",
    "logger",
    "notify",
    "command_line",
    "script",
    "energy",
)
# The demo's sandbox adds HA's web UI; installs cover both configs, so the
# demo and the tests share one set of requirements.
DOMAINS_WITH_DEMO = (*DOMAINS, "frontend")


def _number(name: str, lo: float, hi: float, step: float, unit: str) -> dict[str, Any]:
    # mode: box accepts any value in range through input_number.set_value,
    # unlike a slider, which is what a test writing odd values needs.
    return {
        "name": name,
        "min": lo,
        "max": hi,
        "step": step,
        "unit_of_measurement": unit,
        "mode": "box",
        "initial": lo if lo >= 0 else 0,
    }


def _meter(name: str, knob: str, unit: str, device_class: str, state_class: str) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"gridwatch_e2e_{knob.split('.')[1]}",
        "state": f"{{{{ states('{knob}') }}}}",
        "unit_of_measurement": unit,
        "device_class": device_class,
        "state_class": state_class,
    }


@dataclass(frozen=True)
class HaConfig:
    """What goes into configuration.yaml.

    Attributes:
        port: HTTP port on 127.0.0.1.
        time_zone: IANA zone of the site.
        commit_interval: Recorder commit interval in seconds; small so states
            and statistics are queryable soon after they happen.
        extra: Further top-level sections, merged over the defaults.
    """

    port: int
    time_zone: str = TIME_ZONE
    commit_interval: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, config_dir: Path) -> dict[str, Any]:
        """Build the configuration as a dict.

        Args:
            config_dir: HA's config directory (the database lives there).

        Returns:
            The configuration.yaml content.
        """
        config: dict[str, Any] = {
            "homeassistant": {
                "name": "Gridwatch e2e",
                "latitude": LATITUDE,
                "longitude": LONGITUDE,
                "elevation": ELEVATION,
                "unit_system": "metric",
                "time_zone": self.time_zone,
                "currency": "EUR",
                "country": "NL",
            },
            "http": {"server_host": "127.0.0.1", "server_port": self.port},
            "api": {},
            "websocket_api": {},
            "onboarding": {},
            "recorder": {
                "db_url": f"sqlite:///{config_dir / 'home-assistant_v2.db'}",
                "commit_interval": self.commit_interval,
            },
            "persistent_notification": {},
            # The Energy dashboard's backend: its validation judges whether
            # the energy tally's sensors are fit to be dashboard sources.
            "energy": {},
            # Warnings only, except the line that reports the boot time.
            "logger": {"default": "warning", "logs": {"homeassistant.bootstrap": "info"}},
            "input_boolean": {"inverter_discharge_enable": {"name": "Inverter discharge enable"}},
            "input_number": {
                "inverter_discharge_power": _number("Discharge power", 0, 10000, 1, "W"),
                "inverter_cutoff_soc": _number("Cutoff SoC", 0, 100, 1, "%"),
                "inverter_discharge_duration": _number("Discharge duration", 0, 1440, 1, "min"),
                "sim_grid_power": _number("Sim grid power", -50000, 50000, 1, "W"),
                "sim_battery_soc": _number("Sim battery SoC", 0, 100, 0.1, "%"),
                "sim_export_energy": _number("Sim export energy", 0, 100000, 0.001, "kWh"),
            },
            "template": [
                {
                    "sensor": [
                        _meter("Grid power", SIM_GRID_POWER, "W", "power", "measurement"),
                        _meter("Battery SoC", SIM_BATTERY_SOC, "%", "battery", "measurement"),
                        _meter(
                            "Export energy", SIM_EXPORT_ENERGY, "kWh", "energy", "total_increasing"
                        ),
                    ]
                }
            ],
            "script": {
                SLOW_SCRIPT.split(".")[1]: {
                    "alias": "Gridwatch e2e slow service",
                    "mode": "parallel",
                    "sequence": [{"delay": {"seconds": "{{ seconds | default(5) | int }}"}}],
                }
            },
            "command_line": [
                {
                    "notify": {
                        "name": NOTIFY_SERVICE.split(".")[1],
                        # The message arrives on stdin; one line per push.
                        "command": "(cat; echo) >> "
                        + shlex.quote(str(config_dir.resolve() / NOTIFY_FILENAME)),
                    }
                }
            ],
        }
        config.update(self.extra)
        return config

    def write(self, config_dir: Path) -> Path:
        """Write configuration.yaml into ``config_dir``.

        Args:
            config_dir: HA's config directory (created if missing).

        Returns:
            The file written.
        """
        config_dir.mkdir(parents=True, exist_ok=True)
        path = config_dir / "configuration.yaml"
        path.write_text(yaml.safe_dump(self.as_dict(config_dir), sort_keys=False))
        return path
