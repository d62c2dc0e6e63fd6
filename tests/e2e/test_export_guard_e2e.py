"""The export guard (apps/export_guard.py) in a real AppDaemon against a real HA.

Readings are REST-written sensors (so a test can make one ``unavailable``);
actuators are the HA config's input_boolean / input_number; requests come as
the HA event. Notices reach HA through the notifier app, as in production.
What counts is what HA shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha_client import HaClient, wait_for
from tests.e2e.ha_config import DISCHARGE_ENABLE, DISCHARGE_POWER

EVENT = "gridwatch_export_guard"
GRID, SOC, EXPORTED = "sensor.eg_e2e_grid", "sensor.eg_e2e_soc", "sensor.eg_e2e_export"


def guard_app(**overrides: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "module": "gridwatch_export_guard",
        "class": "ExportGuard",
        "export_limit_w": 3000,
        "deadband_w": 100,
        "daily_export_cap_kwh": 20,
        "max_discharge_w": 5000,
        "min_soc_pct": 20,
        "tick_s": 1,
        "retry_after_s": 1,
        "verify_within_s": 1,
        "attempts": 1,
        "readings": {
            "grid_power": {"entity": GRID},
            "soc": {"entity": SOC},
            "export_today": {"entity": EXPORTED},
        },
        "actuators": {
            "enable": {"entity": DISCHARGE_ENABLE},
            "power": {"entity": DISCHARGE_POWER},
        },
    }
    app.update(overrides)
    return app


NOTIFIER = {"module": "gridwatch_notifier", "class": "Notifier", "min_repost_s": 0, "tick_s": 1}


@pytest.fixture(autouse=True)
async def leave_actuators_off(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> AsyncIterator[None]:
    """The session's HA is shared: leave its inverter controls as found."""
    yield
    # Stop AppDaemon first, so no guard turns them back on.
    await asyncio.to_thread(appdaemon_factory.stop_all)
    await ha_client.call_service("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE})
    await ha_client.set_number(DISCHARGE_POWER, 0)


async def readings(client: HaClient, grid: Any, soc: Any = 80, exported: Any = 2.0) -> None:
    await client.set_state(GRID, grid, {"unit_of_measurement": "W"})
    await client.set_state(SOC, soc, {"unit_of_measurement": "%"})
    await client.set_state(EXPORTED, exported, {"unit_of_measurement": "kWh"})


async def start_guard(factory: AppDaemonFactory, client: HaClient, **overrides: Any) -> AppDaemon:
    await client.call_service("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE})
    await client.set_number(DISCHARGE_POWER, 0)
    await readings(client, 0)
    ad = await factory(apps={"export_guard": guard_app(**overrides), "notifier": NOTIFIER})
    ad.wait_app("export_guard")
    ad.wait_app("notifier")
    await client.wait_state(
        "sensor.export_guard_health", lambda s: s is not None and s["state"] == "healthy"
    )
    return ad


async def state_of(client: HaClient, entity_id: str) -> str | None:
    state = await client.get_state(entity_id)
    return None if state is None else str(state["state"])


async def wait_value(client: HaClient, entity_id: str, wanted: str, timeout: float = 15) -> None:
    await client.wait_state(
        entity_id, lambda s: s is not None and s["state"] == wanted, timeout=timeout
    )


async def wait_power(client: HaClient, wanted: float, timeout: float = 15) -> None:
    await client.wait_state(
        DISCHARGE_POWER,
        lambda s: s is not None and abs(float(s["state"]) - wanted) < 0.5,
        timeout=timeout,
    )


async def wait_notification(client: HaClient, nid: str, present: bool = True) -> dict[str, Any]:
    found: dict[str, Any] = await wait_for(
        client.notifications,
        lambda found: (nid in found) == present,
        timeout=20,
        what=f"notification {nid} {'present' if present else 'gone'}",
    )
    return found


@pytest.mark.slow
async def test_event_start_follows_headroom_and_stops_over_the_limit(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    await start_guard(appdaemon_factory, ha_client)

    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start", "power_w": 2500})
    await wait_value(ha_client, DISCHARGE_ENABLE, "on")
    await wait_power(ha_client, 2500)

    # The battery's 2500 W now shows in export: 3300 W is 400 W over the target.
    await ha_client.set_state(GRID, 3300, {"unit_of_measurement": "W"})
    await wait_power(ha_client, 2100)
    # Entities are published after the action, so they may trail the actuator.
    await wait_value(ha_client, "sensor.export_guard_export_headroom_power", "-400")

    # Far over the limit with no battery power left to give: stop.
    await ha_client.set_state(GRID, 9000, {"unit_of_measurement": "W"})
    await wait_value(ha_client, DISCHARGE_ENABLE, "off")
    await ha_client.wait_state(
        "sensor.export_guard_last_action",
        lambda s: s is not None and "no export headroom" in str(s["state"]),
        timeout=15,
    )


@pytest.mark.slow
async def test_unavailable_reading_stops_and_raises_the_stale_data_notice(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    await start_guard(appdaemon_factory, ha_client)
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start"})
    await wait_value(ha_client, DISCHARGE_ENABLE, "on")

    await ha_client.set_state(GRID, "unavailable")

    await wait_value(ha_client, DISCHARGE_ENABLE, "off")
    found = await wait_notification(ha_client, "export_guard_stale_data")
    assert GRID in found["export_guard_stale_data"]["message"]
    await wait_value(ha_client, "sensor.export_guard_health", "stale_data")

    await ha_client.set_state(GRID, 0, {"unit_of_measurement": "W"})
    await wait_notification(ha_client, "export_guard_stale_data", present=False)
    # The request is still active: the discharge resumes with fresh data.
    await wait_value(ha_client, DISCHARGE_ENABLE, "on")


@pytest.mark.slow
async def test_actuator_that_never_switches_opens_the_breaker_with_notices(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    # "Turning on" calls turn_off: HA answers, the entity never shows "on".
    broken = {
        "enable": {
            "entity": DISCHARGE_ENABLE,
            "on_service": "input_boolean/turn_off",
            "off_service": "input_boolean/turn_off",
        },
        "power": {"entity": DISCHARGE_POWER},
    }
    await start_guard(appdaemon_factory, ha_client, actuators=broken)
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start"})

    # Each round (start fails in ~1 s, verified stop, 1 s hold-off) takes a
    # few seconds: five fit well inside the readings' 30 s freshness.
    breaker = await ha_client.wait_state(
        "binary_sensor.export_guard_breaker_open",
        lambda s: s is not None and s["state"] == "on",
        timeout=45,
    )
    assert breaker is not None
    assert breaker["attributes"]["failure_count"] == 5
    assert "read back 'off'" in breaker["attributes"]["last_failure_reason"]
    found = await wait_notification(ha_client, "export_guard_breaker_open")
    assert "export_guard_actuator_failure" in found
    assert await state_of(ha_client, DISCHARGE_ENABLE) == "off"
    await wait_value(ha_client, "sensor.export_guard_health", "breaker_open")
