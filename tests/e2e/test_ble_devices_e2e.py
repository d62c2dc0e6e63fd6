"""A BLE device profile in a real AppDaemon, publishing to a real HA.

AppDaemon (Python 3.11 here: aiobmsble cannot install on it, so the profile
is Victron's, read through victron-ble) runs a link monitor whose link names
``device: victron`` with its key and hears a simulated SmartShunt (the test
suite's advertiser, copied into the app dir as a module, in place of a
radio). Its readings must reach HA with the profile's units, device classes
and state classes, and HA's recorder must find nothing wrong with them
(``recorder/validate_statistics``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.ha_client import HaClient

pytestmark = [pytest.mark.e2e]

APP = "e2e_devices"
LINK = "e2e_shunt"
ADDRESS = "C4:4F:33:00:00:0E"
KEY = "5e5d7a3c9b1f40e2a6c88d0f13b7e294"
SIMULATOR = (Path(__file__).resolve().parents[1] / "support" / "fake_victron.py").read_text()
# The shunt as AppDaemon imports it: a module beside the apps (no repository
# on AppDaemon's path), advertising every 0.2 s.
SHUNT = f'''
from e2e_fake_victron import Shunt, ShuntState, advertiser_for

ADVERTISER = advertiser_for(
    Shunt(
        address="{ADDRESS}",
        key="{KEY}",
        state=ShuntState(
            voltage=52.31, current=-12.5, consumed_ah=40.0, soc=80.5, remaining_mins=1234
        ),
    ),
    interval_s=0.2,
)
'''
EXPECTED = {
    # value: (state, unit, device_class, state_class)
    "voltage": ("52.31", "V", "voltage", "measurement"),
    "current": ("-12.500", "A", "current", "measurement"),
    "soc": ("80.5", "%", "battery", "measurement"),
    "consumed_ah": ("-40.0", "Ah", None, "measurement"),
}


def _apps() -> dict[str, Any]:
    return {
        APP: {
            "module": "gridwatch_link_monitor",
            "class": "LinkMonitorApp",
            "tick_interval_s": 1,
            "links": [
                {
                    "name": LINK,
                    "ble": {
                        "address": ADDRESS,
                        "device": "victron",
                        "key": KEY,
                        "scanner": "e2e_shunt_sim:ADVERTISER",
                    },
                }
            ],
        }
    }


async def test_a_victron_shunt_reaches_ha_with_classes_the_recorder_accepts(
    ha_client: HaClient, appdaemon_factory: AppDaemonFactory
) -> None:
    pytest.importorskip("victron_ble")
    ad = await appdaemon_factory(
        apps=_apps(),
        test_apps={"e2e_fake_victron.py": SIMULATOR, "e2e_shunt_sim.py": SHUNT},
    )
    await asyncio.to_thread(ad.wait_app, APP)
    await ha_client.wait_state(
        f"binary_sensor.{LINK}_connected",
        lambda s: s is not None and s["state"] == "on",
        timeout=30,
    )
    for value, (state, unit, device_class, state_class) in EXPECTED.items():
        shown = await ha_client.wait_state(
            f"sensor.{LINK}_{value}",
            lambda s: s is not None and s["state"] not in ("unknown", "unavailable"),
            timeout=30,
        )
        assert shown is not None
        attributes = shown["attributes"]
        assert shown["state"] == state, value
        assert attributes.get("unit_of_measurement") == unit, value
        assert attributes.get("device_class") == device_class, value
        assert attributes.get("state_class") == state_class, value

    issues = await ha_client.validate_statistics()

    ours = {k: v for k, v in issues.items() if k.startswith(f"sensor.{LINK}_")}
    assert ours == {}
