"""Smoke test of the harness: real HA, real AppDaemon, a throwaway app."""

from __future__ import annotations

import asyncio
import random
import textwrap

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon, AppRefused
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, HaCommandError
from tests.e2e.ha_config import (
    BATTERY_SOC,
    DISCHARGE_POWER,
    GRID_POWER,
    SIM_BATTERY_SOC,
    SIM_GRID_POWER,
)

# Written into the AppDaemon app_dir by the test, never into the repository.
ECHO_APP = textwrap.dedent(
    """
    from appdaemon.plugins.hass.hassapi import Hass


    class Echo(Hass):
        def initialize(self):
            self.set_state(
                "sensor.e2e_echo", state="ready", attributes={"marker": self.args["marker"]}
            )
            self.listen_state(self.on_power, self.args["watch"])

        def on_power(self, entity, attribute, old, new, kwargs):
            self.set_state("sensor.e2e_echo", state=f"seen {new}", attributes={"from": entity})
    """
)

BROKEN_APP = textwrap.dedent(
    """
    from appdaemon.plugins.hass.hassapi import Hass


    class Broken(Hass):
        def initialize(self):
            raise ValueError("refusing to start")
    """
)


async def test_ha_is_up_and_the_token_works(ha: HomeAssistant, ha_client: HaClient) -> None:
    config = await ha_client.rest("GET", "/api/config")
    assert config["state"] == "RUNNING"
    assert config["time_zone"] == "Europe/Amsterdam"

    async with HaClient(ha.url, "not-a-token") as stranger:
        with pytest.raises(HaCommandError) as refused:
            await stranger.rest("GET", "/api/config")
    assert refused.value.code == "401"


async def test_input_number_drives_the_template_meter(ha_client: HaClient) -> None:
    await ha_client.set_number(SIM_GRID_POWER, -1234)

    meter = await ha_client.wait_state(
        GRID_POWER, lambda s: s is not None and s["state"] == "-1234.0"
    )

    assert meter is not None
    assert meter["attributes"]["unit_of_measurement"] == "W"
    assert meter["attributes"]["device_class"] == "power"
    assert meter["attributes"]["state_class"] == "measurement"


async def test_state_changes_arrive_over_the_websocket(ha_client: HaClient) -> None:
    async with ha_client.websocket() as ws:
        changes = await ws.subscribe_events("state_changed")
        await ha_client.set_number(SIM_BATTERY_SOC, 42.5)

        async with asyncio.timeout(10):
            while True:
                event = await changes.get()
                if event["data"]["entity_id"] == BATTERY_SOC:
                    break

    assert event["event_type"] == "state_changed"
    assert event["data"]["new_state"]["state"] == "42.5"


async def test_unknown_websocket_command_is_refused(ha_client: HaClient) -> None:
    with pytest.raises(HaCommandError) as refused:
        await ha_client.ws_command("gridwatch/no_such_command")

    assert refused.value.code == "unknown_command"


# A minimal HADashboard dashboard: proves the harness serves dashboards.
E2E_DASH = textwrap.dedent(
    """
    title: Gridwatch e2e
    widget_dimensions: [120, 120]
    widget_size: [1, 1]
    widget_margins: [5, 5]
    columns: 4
    echo:
      widget_type: sensor
      title: Echo
      entity: sensor.e2e_echo
    layout:
      - echo
    """
)


@pytest.fixture(scope="module")
def echo_ad(
    appdaemon_module_factory: AppDaemonFactory, tmp_path_factory: pytest.TempPathFactory
) -> AppDaemon:
    # One AppDaemon for the app tests: a start costs seconds, a test must not.
    dashboards = tmp_path_factory.mktemp("dashboards")
    (dashboards / "e2e.dash").write_text(E2E_DASH)
    return appdaemon_module_factory.start(
        apps={
            "broken": {"module": "broken_app", "class": "Broken"},
            "echo": {
                "module": "echo_app",
                "class": "Echo",
                "marker": "m-42",
                "watch": DISCHARGE_POWER,
            },
        },
        test_apps={"broken_app.py": BROKEN_APP, "echo_app.py": ECHO_APP},
        dashboard_dir=dashboards,
    )


async def test_throwaway_app_round_trip(ha_client: HaClient, echo_ad: AppDaemon) -> None:
    await asyncio.to_thread(echo_ad.wait_app, "echo")

    ready = await ha_client.wait_state(
        "sensor.e2e_echo", lambda s: s is not None and s["attributes"].get("marker") == "m-42"
    )
    assert ready is not None

    # A value the helper surely does not hold yet: listen_state fires on change.
    power = random.randint(1, 9999)
    await ha_client.set_number(DISCHARGE_POWER, power)
    seen = await ha_client.wait_state(
        "sensor.e2e_echo", lambda s: s is not None and s["state"] == f"seen {power}.0"
    )
    assert seen is not None
    assert seen["attributes"]["from"] == DISCHARGE_POWER


def test_refused_app_is_reported(echo_ad: AppDaemon) -> None:
    with pytest.raises(AppRefused, match="refusing to start"):
        echo_ad.wait_app("broken")
    assert not echo_ad.app_refused("echo")


async def test_dashboard_is_served(echo_ad: AppDaemon, ha_client: HaClient) -> None:
    async with ha_client.session.get(f"{echo_ad.url}/e2e") as resp:
        page = await resp.text()
    assert resp.status == 200
    assert "compiled_javascript/default/e2e_init.js" in page

    # The compiled dashboard script wires the widget to its entity.
    async with ha_client.session.get(
        f"{echo_ad.url}/compiled_javascript/default/e2e_init.js"
    ) as resp:
        script = await resp.text()
    assert resp.status == 200
    assert "sensor.e2e_echo" in script
