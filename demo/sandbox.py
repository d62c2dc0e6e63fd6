"""The demo's Home Assistant sandbox: the e2e harness's HA with the demo's helpers.

The harness's configuration is kept (same zone, recorder, notify service,
integrations); the demo swaps the e2e tests' simulator knobs and template
meters for its own helpers, because here the site simulator writes the meter
sensors itself, as a meter integration would, plus the simulator's fault
switch. It adds HA's frontend so the printed HA URL opens a UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.entities import helpers_config
from demo.simulator import GRID_METER_OFFLINE
from demo.site_model import SiteParams
from tests.e2e.ha_config import DOMAINS_WITH_DEMO, HaConfig

# The web UI: the only integration the demo adds to the harness's set.
DEMO_DOMAINS = DOMAINS_WITH_DEMO
# With ``--entities mqtt``: HA's MQTT integration (paho-mqtt in HA's venv).
MQTT_DOMAINS = (*DEMO_DOMAINS, "config", "mqtt")


@dataclass(frozen=True)
class DemoHaConfig(HaConfig):
    """configuration.yaml of the demo's HA.

    Attributes:
        params: the simulated site (the discharge power helper's range).
        frontend: load HA's web UI (the demo prints its URL).
        config_flows: load the config-flow API (``config``; the frontend
            loads it too), through which the demo adds HA's MQTT integration.
    """

    params: SiteParams = field(default_factory=SiteParams)
    frontend: bool = True
    config_flows: bool = False

    def as_dict(self, config_dir: Path) -> dict[str, Any]:
        """The harness's configuration with the demo's helpers and no template meters."""
        config = super().as_dict(config_dir)
        config["homeassistant"]["name"] = "Gridwatch demo"
        config.pop("template", None)
        config.update(helpers_config(self.params.max_discharge_w))
        # The simulator's fault switch; off at every start: a healthy site.
        config["input_boolean"][GRID_METER_OFFLINE.split(".")[1]] = {
            "name": "Demo fault: grid meter offline",
            "icon": "mdi:meter-electric-outline",
            "initial": False,
        }
        if self.frontend:
            config["frontend"] = {}
        if self.config_flows:
            config["config"] = {}
        return config


# HA's onboarding steps, the same in 2024.1 and 2026.2
# (homeassistant/components/onboarding/const.py).
ONBOARDING_STEPS = ("user", "core_config", "analytics", "integration")


def _onboarding_store(config_dir: Path) -> Path:
    return config_dir / ".storage" / "onboarding"


def onboarding_done(config_dir: Path) -> bool:
    """True if HA's onboarding file lists every step as done."""
    try:
        done = json.loads(_onboarding_store(config_dir).read_text())["data"]["done"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return False
    return set(done) >= set(ONBOARDING_STEPS)


def finish_onboarding(config_dir: Path) -> bool:
    """Mark HA's remaining onboarding steps done, so the UI opens at the login.

    The harness onboards only the owner user (the core_config step would set
    up integrations that want the network). Without the other steps HA's UI
    shows the onboarding wizard instead of the login page. Call only while
    HA is stopped: HA reads this file at start.

    Args:
        config_dir: HA's config directory.

    Returns:
        True if the file was changed (HA must be (re)started to see it).
    """
    path = _onboarding_store(config_dir)
    try:
        store = json.loads(path.read_text())
        done = list(store["data"]["done"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return False  # not onboarded yet: the harness does the user step first
    if "user" not in done or set(done) >= set(ONBOARDING_STEPS):
        return False
    store["data"]["done"] = [*done, *(s for s in ONBOARDING_STEPS if s not in done)]
    path.write_text(json.dumps(store, indent=2))
    return True
