"""BLE device profiles in a real AppDaemon, publishing to a real HA.

A link monitor whose link names ``device: victron`` with its key hears a
simulated SmartShunt (the test suite's advertiser, copied into the app dir
as a module, in place of a radio); where AppDaemon's Python has aiobmsble
(>= 3.12: a Debian 13 host), a second test polls the simulated JBD BMS
through aiobmsble the same way. The readings must reach HA with the
profile's units, device classes and state classes, and HA's recorder must
find nothing wrong with them (``recorder/validate_statistics``).
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
SUPPORT = Path(__file__).resolve().parents[1] / "support"
SIMULATOR = (SUPPORT / "fake_victron.py").read_text()
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


# The JBD BMS and the scripted bleak backend it sits on, as AppDaemon imports
# them (modules beside the apps).
BMS_LINK = "e2e_bms"
BMS_MODULES = {
    "e2e_fake_bleak.py": (SUPPORT / "fake_bleak.py").read_text(),
    "e2e_fake_jbd.py": (SUPPORT / "fake_jbd.py")
    .read_text()
    .replace("from tests.support.fake_bleak import", "from e2e_fake_bleak import"),
    "e2e_bms_sim.py": (
        "from e2e_fake_jbd import JbdSimulator\n"
        "BACKEND = JbdSimulator().peripheral(address='A4:C1:37:00:00:0E').backend\n"
    ),
}
BMS_EXPECTED = {
    # aiobmsble's decoding of the recorded frames: (state, unit, device_class)
    "voltage": ("15.60", "V", "voltage"),
    "current": ("-2.87", "A", "current"),
    "battery_level": ("100", "%", "battery"),
    "power": ("-44.8", "W", "power"),
    "delta_voltage": ("0.015", "V", "voltage"),
}


async def test_a_jbd_bms_polled_through_aiobmsble_reaches_ha(
    ha_client: HaClient, appdaemon_factory: AppDaemonFactory
) -> None:
    pytest.importorskip("aiobmsble", reason="aiobmsble needs Python >= 3.12 (AppDaemon's here)")
    apps = {
        APP: {
            "module": "gridwatch_link_monitor",
            "class": "LinkMonitorApp",
            "tick_interval_s": 1,
            "links": [
                {
                    "name": BMS_LINK,
                    "ble": {
                        "address": "A4:C1:37:00:00:0E",
                        "device": "jbd",
                        "poll_interval_s": 5,
                        "backend": "e2e_bms_sim:BACKEND",
                    },
                }
            ],
        }
    }
    ad = await appdaemon_factory(apps=apps, test_apps=BMS_MODULES)
    await asyncio.to_thread(ad.wait_app, APP)
    for value, (state, unit, device_class) in BMS_EXPECTED.items():
        shown = await ha_client.wait_state(
            f"sensor.{BMS_LINK}_{value}",
            lambda s: s is not None and s["state"] not in ("unknown", "unavailable"),
            timeout=60,
        )
        assert shown is not None
        assert shown["state"] == state, value
        assert shown["attributes"].get("unit_of_measurement") == unit, value
        assert shown["attributes"].get("device_class") == device_class, value
        assert shown["attributes"].get("state_class") == "measurement", value

    issues = await ha_client.validate_statistics()

    assert {k: v for k, v in issues.items() if k.startswith(f"sensor.{BMS_LINK}_")} == {}
