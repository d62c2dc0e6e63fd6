"""The suite's discovery configs against HA's own MQTT discovery schemas.

Every kind of entity the apps publish is rendered by
:func:`gridwatch.runtime.mqtt_discovery.discovery_config` and validated by
the ``DISCOVERY_SCHEMA`` of HA's MQTT sensor / binary_sensor platforms, in
the HA version of the running leg (each leg of ./run test runs it against
its own: 2024.1.6, then 2026.2.3), wherever ./run installed it (a venv of
the host's Python, or one in a Debian root). No HA is booted; the
schema is the part of HA that accepts or refuses a config (the e2e module
test_mqtt_discovery_e2e.py shows the whole path on a running HA).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from gridwatch.runtime.mqtt_discovery import DiscoveryDevice, DiscoveryLayout, discovery_config
from tests.e2e.ha_install import HaInstall, ensure_installed, install_from_env
from tests.e2e.ha_matrix import parse_version

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_S = 180

# One of each kind of entity the apps publish (attributes as the apps write them).
ENTITIES: dict[str, dict[str, Any]] = {
    "sensor.grid_import_energy_today": {
        "friendly_name": "Grid import energy today",
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total",
        "last_reset": "2026-01-01T00:00:00+01:00",
        "stale": False,
    },
    "sensor.gateway_link_status": {
        "friendly_name": "gateway link status",
        "device_class": "enum",
        "options": ["connected", "degraded", "offline", "disconnected"],
    },
    "binary_sensor.gateway_connected": {"device_class": "connectivity"},
    "sensor.gateway_grid_power": {
        "unit_of_measurement": "W",
        "device_class": "power",
        "state_class": "measurement",
    },
    "sensor.export_guard_data_age": {
        "unit_of_measurement": "s",
        "device_class": "duration",
        "state_class": "measurement",
    },
    "sensor.export_guard_export_headroom_energy": {"unit_of_measurement": "kWh"},
    "binary_sensor.export_guard_breaker_open": {"device_class": "problem", "state": "closed"},
    "sensor.notifier_active_notices": {"icon": "mdi:bell-check", "notices": {}},
    "sensor.energy_tally_last_update": {"device_class": "timestamp"},
}

# Runs inside HA's Python: validates each config, prints what the schema kept.
VALIDATE = """
import asyncio, json, sys, tempfile
import homeassistant.components.persistent_notification  # import order: a cycle in 2024.1
from homeassistant.core import HomeAssistant
from homeassistant.components.mqtt import binary_sensor, sensor

async def main():
    HomeAssistant(tempfile.mkdtemp())  # cv.template wants HA and its loop (2026.x)
    result = {}
    for entity_id, config in json.loads(sys.stdin.read()).items():
        platform = sensor if entity_id.startswith("sensor.") else binary_sensor
        try:
            result[entity_id] = sorted(platform.DISCOVERY_SCHEMA(dict(config)))
        except Exception as err:
            result[entity_id] = "refused: " + str(err)
    print(json.dumps(result))

asyncio.run(main())
"""


# The release whose MQTT discovery names an entity by ``default_entity_id``
# (``object_id`` before it, deprecated from then on).
DEFAULT_ENTITY_ID_SINCE = (2025, 10)


def _leg_install() -> HaInstall:
    # The HA this leg runs against (./run test: 2024.1.6 in the first leg,
    # 2026.2.3 in the second), wherever ./run put it: the host's venv or a
    # Debian root, on Debian 12 and 13 alike.
    return install_from_env()


@pytest.mark.parametrize("install", [_leg_install()], ids=lambda i: f"ha-{i.version}")
def test_ha_accepts_every_kind_of_entity(install: HaInstall) -> None:
    ensure_installed(install)
    since = parse_version(install.version)[:2] >= DEFAULT_ENTITY_ID_SINCE
    id_key = "default_entity_id" if since else "object_id"
    device = DiscoveryDevice("gridwatch_app", "app")
    layout = DiscoveryLayout(app="app")
    configs = {
        entity_id: discovery_config(entity_id, attrs, device, layout, "0.1.0")[1]
        for entity_id, attrs in ENTITIES.items()
    }
    done = subprocess.run(
        install.command([str(install.python), "-c", VALIDATE]),
        input=json.dumps(configs),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kept = json.loads(done.stdout.strip().splitlines()[-1])
    refused = {k: v for k, v in kept.items() if isinstance(v, str)}
    assert refused == {}
    for entity_id, keys in kept.items():
        # The key this HA version names the entity by survives its schema,
        # with unique id, device, origin and availability.
        assert {id_key, "unique_id", "device", "origin", "availability"} <= set(keys), entity_id
