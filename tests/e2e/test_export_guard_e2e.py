"""The export guard (apps/gridwatch_export_guard.py) in a real AppDaemon
against a real HA.

Readings are REST-written sensors (so a test can make one ``unavailable``);
actuators are the HA config's input_boolean / input_number; requests come as
the HA event. Notices reach HA through the notifier app, as in production.
What counts is what HA shows. The first tests write readings by hand; the
plant tests run a simulated site (:mod:`tests.support.plant`) that reads the
inverter controls from HA and writes its meter there, and judge the export.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, wait_for
from tests.e2e.ha_config import DISCHARGE_DURATION, DISCHARGE_ENABLE, DISCHARGE_POWER
from tests.e2e.ha_matrix import parse_version
from tests.guard.plant_checks import bounds_for, violations
from tests.support.plant import Controls, Inverter, LaggedSensor, Site, Steps
from tests.support.plant_sim import Record

EVENT = "gridwatch_export_guard"
GRID, SOC, EXPORTED = "sensor.eg_e2e_grid", "sensor.eg_e2e_soc", "sensor.eg_e2e_export"


# Each test starts its own AppDaemon on the session's HA and leaves the
# actuators off (leave_actuators_off): independent, and together the longest
# file of a leg, so ./run test deals them out to its workers one by one.
SPLIT_ACROSS_WORKERS = True


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
        # Readings written by hand, export positive, with no plant behind
        # them: no settle time, debounce or write interval, and only changes
        # of the whole max_discharge_w are checked for a response (the
        # schema refuses switching the check off).
        "grid_sign": "export_positive",
        "meter_period_s": 1,
        "settle_s": 1,
        "min_write_interval_s": 0,
        "request_debounce_s": 0,
        "max_raise_step_w": 5000,
        "response_min_w": 5000,
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


async def forget_earlier_guards(client: HaClient) -> None:
    """The session's HA is shared: a guard resumes a request its health
    entity shows standing, and notices of an earlier test may linger."""
    for fact in ("sensor.export_guard_health", "sensor.export_guard_request"):
        if await client.get_state(fact) is not None:
            await client.rest("DELETE", f"/api/states/{fact}")
    for nid in await client.notifications():
        if nid.startswith("export_guard_"):
            await client.call_service(
                "persistent_notification", "dismiss", {"notification_id": nid}
            )


async def start_guard(factory: AppDaemonFactory, client: HaClient, **overrides: Any) -> AppDaemon:
    await forget_earlier_guards(client)
    await client.call_service("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE})
    await client.set_number(DISCHARGE_POWER, 0)
    # Each reading changes, so each is fresh whatever an earlier test wrote:
    # HA before 2024.4 dates a value written again unchanged by its change.
    await readings(client, 1, soc=79, exported=1.9)
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
    await asyncio.sleep(1.5)  # past the settle time: the next reading shows the battery

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


async def test_a_steady_soc_reported_unchanged_is_live_where_ha_has_last_reported(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient, ha: HomeAssistant
) -> None:
    # A battery at rest: its integration writes the same SoC every 2 s. HA
    # 2024.4+ moves last_reported without a state_changed event (nothing
    # reaches AppDaemon); the guard asks HA itself. HA 2024.1 records nothing,
    # so there the reading goes stale and the guard stops, as documented.
    quiet = {"max_age_s": 3600}
    await start_guard(
        appdaemon_factory,
        ha_client,
        readings={
            "grid_power": {"entity": GRID, **quiet},
            "soc": {"entity": SOC, "max_age_s": 6},
            "export_today": {"entity": EXPORTED, **quiet},
        },
    )
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start", "power_w": 1000})
    await wait_value(ha_client, DISCHARGE_ENABLE, "on")
    for _ in range(8):  # 16 s: well past the SoC's max age
        await ha_client.set_state(SOC, 80, {"unit_of_measurement": "%"})
        await asyncio.sleep(2)
    health = await ha_client.get_state("sensor.export_guard_health")
    assert health is not None
    if parse_version(ha.install.version)[:2] >= (2024, 4):
        assert health["state"] == "healthy", health
        assert await state_of(ha_client, DISCHARGE_ENABLE) == "on"
    else:
        assert health["state"] != "healthy", health
        await wait_value(ha_client, DISCHARGE_ENABLE, "off")


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


# --- a simulated site on real HA + AppDaemon ---------------------------------------

PLANT_STEP_S = 0.1


class HaPlant:
    """The plant of :mod:`tests.support.plant` behind real HA entities: it
    follows the inverter controls HA shows (from state_changed events) and
    writes its grid meter (import positive unless ``sign`` says otherwise)
    once a meter period, one period late, averaged."""

    def __init__(self, client: HaClient, site: Site, *, sign: float = -1.0) -> None:
        self.client, self.site, self.sign = client, site, sign
        self.meter = LaggedSensor(1.0, 1.0)
        self.controls = {DISCHARGE_ENABLE: "off", DISCHARGE_POWER: "0", DISCHARGE_DURATION: "0"}
        self.record = Record(3000.0, PLANT_STEP_S)
        self.t = 0.0
        self.jitter = 1

    async def run(self, seconds: float) -> None:
        """Run in real time for ``seconds``."""
        async with self.client.websocket() as ws:
            events = await ws.subscribe_events("state_changed")
            calls = await ws.subscribe_events("call_service")
            # Between runs nobody listened: read what HA shows now (after
            # subscribing, so no change falls between the read and the events).
            for entity in self.controls:
                state = await self.client.get_state(entity)
                if state is not None:
                    self.controls[entity] = state["state"]
            loop = asyncio.get_running_loop()
            began, t0 = loop.time(), self.t
            while self.t < t0 + seconds:
                while not events.empty():
                    data = events.get_nowait().get("data", {})
                    new = data.get("new_state") or {}
                    if data.get("entity_id") in self.controls:
                        self.controls[data["entity_id"]] = new.get("state")
                while not calls.empty():
                    # A write of the same minutes changes no state, but an
                    # inverter whose timer counts from the write restarts it.
                    data = calls.get_nowait().get("data", {})
                    target = (data.get("service_data") or {}).get("entity_id")
                    targets = target if isinstance(target, list) else [target]
                    if data.get("service") == "set_value" and DISCHARGE_DURATION in targets:
                        self.site.inverter.timer_written_at = self.t
                await self.step()
                # Real time: the guard and HA run on the wall clock.
                await asyncio.sleep(max(0.0, began + (self.t - t0) - loop.time()))

    async def step(self) -> None:
        dt = PLANT_STEP_S
        c = self.controls
        controls = Controls(
            c[DISCHARGE_ENABLE] == "on",
            float(c[DISCHARGE_POWER] or 0),
            float(c[DISCHARGE_DURATION] or 0),
        )
        export, battery = self.site.step(self.t, dt, controls)
        if self.site.inverter.timer_expired:
            # The inverter ends a timed discharge by switching its enable off.
            self.site.inverter.timer_expired = False
            await self.client.call_service(
                "input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE}
            )
        self.meter.record(self.t, dt, export)
        self.record.add(self.t, export, battery, False, True)
        self.t += dt
        reading = self.meter.due(self.t)
        if reading is not None:
            self.jitter = -self.jitter
            value = round(self.sign * reading) + self.jitter
            await self.client.set_state(GRID, value, {"unit_of_measurement": "W"})


def plant_app(**overrides: Any) -> dict[str, Any]:
    """The guard with its defaults (import positive) on the simulated site."""
    app = guard_app(
        grid_sign="import_positive",
        meter_period_s=1,
        min_write_interval_s=10,
        request_debounce_s=1,
        max_raise_step_w=2000,
        response_min_w=300,
        heartbeat_s=5,
        actuators={
            "enable": {"entity": DISCHARGE_ENABLE},
            "power": {"entity": DISCHARGE_POWER},
            "duration": {"entity": DISCHARGE_DURATION},
        },
        # SoC and energy are written once: they must not go stale meanwhile.
        readings={
            "grid_power": {"entity": GRID},
            "soc": {"entity": SOC, "max_age_s": 3600},
            "export_today": {"entity": EXPORTED, "max_age_s": 3600},
        },
    )
    app.pop("settle_s")  # the default: from meter_period_s
    app.update(overrides)
    return app


async def start_plant(
    factory: AppDaemonFactory, client: HaClient, site: Site, *, sign: float = -1.0, **overrides: Any
) -> tuple[AppDaemon, HaPlant]:
    await forget_earlier_guards(client)
    await client.call_service("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE})
    await client.set_number(DISCHARGE_POWER, 0)
    await client.set_number(DISCHARGE_DURATION, 0)
    plant = HaPlant(client, site, sign=sign)
    first = round(sign * site.uncontrolled_w(0.0))
    await readings(client, first)
    ad = await factory(apps={"export_guard": plant_app(**overrides), "notifier": NOTIFIER})
    ad.wait_app("export_guard")
    ad.wait_app("notifier")
    return ad, plant


async def discharging_plant(
    factory: AppDaemonFactory,
    client: HaClient,
    inverter: Inverter,
    run_s: float = 15.0,
    **overrides: Any,
) -> tuple[AppDaemon, HaPlant]:
    """A sunny site (4 kW PV, 2.6 kW load) whose guard was asked to start, run
    until the battery discharges."""
    site = Site(Steps((), 4000.0), Steps((), 2600.0), inverter)
    ad, plant = await start_plant(factory, client, site, **overrides)
    await client.rest("POST", f"/api/events/{EVENT}", {"action": "start"})
    await plant.run(run_s)
    assert plant.record.battery[-1] > 1000
    return ad, plant


@pytest.mark.slow
@pytest.mark.one_leg
async def test_a_cloudy_minute_on_a_simulated_site_holds_the_limit_on_physics(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    pv = Steps(((20.0, 6500.0), (35.0, 3500.0), (50.0, 6000.0)), 4000.0)
    site = Site(pv, Steps(((28.0, 3000.0), (40.0, 800.0)), 1200.0), Inverter())
    _ad, plant = await start_plant(appdaemon_factory, ha_client, site)
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start"})
    await plant.run(70.0)
    assert max(plant.record.battery) > 1000, "the guard never discharged"
    # The real stack adds HA's and AppDaemon's latency to the reaction.
    bounds = bounds_for(meter_period_s=1.0, lag_s=1.0, ramp_s=1.0 + 1.0)
    assert violations(plant.record, site, bounds) == []
    heartbeat = await ha_client.get_state("sensor.export_guard_heartbeat")
    assert heartbeat is not None
    assert heartbeat["attributes"]["device_class"] == "timestamp"


@pytest.mark.slow
@pytest.mark.one_leg
async def test_a_meter_with_the_other_sign_is_caught_on_the_real_stack(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    site = Site(Steps((), 4000.0), Steps((), 2000.0), Inverter())
    _ad, plant = await start_plant(appdaemon_factory, ha_client, site, sign=1.0)
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "start"})
    await plant.run(40.0)
    error = await ha_client.get_state("sensor.export_guard_error")
    assert error is not None
    attrs = error["attributes"]
    # Found by the controller's check or the supervisor's, whichever first.
    assert "grid_sign" in f"{attrs.get('plant_error')} {attrs.get('supervisor_fault')}"
    assert plant.record.battery[-1] == 0.0
    found = await wait_notification(ha_client, "export_guard_actuator_failure")
    assert "sign looks wrong" in found["export_guard_actuator_failure"]["title"]
    # Every stop worked: not a stop that failed.
    assert "export_guard_stop_failed" not in await ha_client.notifications()


@pytest.mark.slow
async def test_removed_and_readded_actuators_do_not_fake_a_failed_stop(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    _ad, plant = await discharging_plant(appdaemon_factory, ha_client, Inverter())
    # An integration reload: HA removes the entities and adds them back;
    # AppDaemon 4.5.13 forgets them and ignores their return.
    for entity in (DISCHARGE_ENABLE, DISCHARGE_POWER):
        await ha_client.rest("DELETE", f"/api/states/{entity}")
    await ha_client.call_service("input_boolean", "turn_on", {"entity_id": DISCHARGE_ENABLE})
    await ha_client.set_number(DISCHARGE_POWER, plant.record.battery[-1])
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "stop"})
    await plant.run(10.0)
    assert plant.record.battery[-1] == 0.0
    error = await ha_client.get_state("sensor.export_guard_error")
    assert error is not None
    assert error["attributes"]["stop_failed"] is None
    assert "export_guard_stop_failed" not in await ha_client.notifications()


@pytest.mark.slow
@pytest.mark.one_leg
async def test_killed_appdaemon_leaves_at_most_one_lease_and_its_heartbeat_stops(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    # The inverter's timer counts from each write (the default counts_from):
    # the guard writes the minutes left, not the time since the start.
    # Past the first renewal (lease_min / 2).
    ad, plant = await discharging_plant(
        appdaemon_factory, ha_client, Inverter(timer_from_write=True), 40.0, lease_min=1
    )
    assert plant.site.inverter.timer_written_at is not None
    assert plant.site.inverter.timer_written_at > 20.0, "the lease was not renewed"
    beat = await ha_client.get_state("sensor.export_guard_heartbeat")
    assert beat is not None
    pid = ad.process.pid
    assert pid is not None
    killed_wall = datetime.now(UTC)
    os.killpg(pid, signal.SIGKILL)  # kill -9: no terminate, nothing runs any more
    killed_at = plant.t
    # Until the inverter's own timer ends the discharge (nothing else will),
    # or well past the bound.
    while plant.t - killed_at < 135.0:
        await plant.run(5.0)
        if plant.record.battery[-1] == 0.0:
            break
    on = [t for t, b in zip(plant.record.t, plant.record.battery, strict=True) if b > 0]
    # One lease (1 min) from the last write, before the kill (a guard that
    # wrote the time since the start plus a lease would leave two minutes).
    assert max(on) - killed_at <= 60.0 + 1.0
    assert plant.record.battery[-1] == 0.0
    # HA shows the guard gone: its heartbeat (every 5 s) has not moved since
    # the kill, many beats ago.
    later = await ha_client.get_state("sensor.export_guard_heartbeat")
    assert later is not None
    stamp = datetime.fromisoformat(later["state"])
    assert stamp <= killed_wall + timedelta(seconds=1)
    assert (datetime.now(UTC) - stamp).total_seconds() > 30


@pytest.mark.slow
async def test_a_stop_the_plant_ignores_is_critical_until_the_plant_stops(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    # Only the grid meter: the grid reading alone shows the stop failed.
    _ad, plant = await discharging_plant(appdaemon_factory, ha_client, Inverter())
    plant.site.inverter.ignores_stop = True
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "stop"})
    await plant.run(10.0)  # the settle time (3 s), a reading, HA's and AppDaemon's latency
    found = await ha_client.notifications()
    assert "export_guard_stop_failed" in found, found
    seen = []
    for _ in range(10):  # it stands: critical, never healthy, the notice never gone
        await plant.run(1.0)
        health = await ha_client.get_state("sensor.export_guard_health")
        assert health is not None
        seen.append((health["state"], health["attributes"]["discharge"]))
        assert "export_guard_stop_failed" in await ha_client.notifications()
    assert set(seen) == {("error", "unknown")}, seen
    assert plant.record.battery[-1] > 1000  # the plant still runs
    plant.site.inverter.ignores_stop = False
    await plant.run(10.0)
    assert plant.record.battery[-1] == 0.0
    await wait_notification(ha_client, "export_guard_stop_failed", present=False)


@pytest.mark.slow
async def test_a_restart_during_a_stop_does_not_resume(
    appdaemon_factory: AppDaemonFactory, ha_client: HaClient
) -> None:
    ad, plant = await discharging_plant(appdaemon_factory, ha_client, Inverter(), 12.0)
    # The stop arrives and AppDaemon dies right after (kill -9: nothing of
    # the guard runs any more; the inverter may still be discharging).
    await ha_client.rest("POST", f"/api/events/{EVENT}", {"action": "stop"})
    await asyncio.sleep(0.2)
    pid = ad.process.pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    request = await ha_client.get_state("sensor.export_guard_request")
    assert request is not None
    assert request["state"] == "off", "the stop was not a fact before it was acted on"
    back = await appdaemon_factory(apps={"export_guard": plant_app(), "notifier": NOTIFIER})
    back.wait_app("export_guard")
    restarted_at = plant.t
    await plant.run(15.0)
    late = [
        b
        for t, b in zip(plant.record.t, plant.record.battery, strict=True)
        if t > restarted_at + 5.0
    ]
    assert late, "the plant did not run"
    assert max(late) == 0.0, "the restarted guard resumed a stopped request"


def _heartbeat_alert_template() -> str:
    """The README's heartbeat alert: the ``state:`` template of its recipe."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "Export guard down" in b
    )
    return str(yaml.safe_load(block)["template"][0]["binary_sensor"][0]["state"])


async def _render(client: HaClient, template: str) -> str:
    async with client.session.post(
        f"{client.url}/api/template", json={"template": template}
    ) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        return text.strip()


async def test_the_readme_heartbeat_alert_renders_and_reads_a_missing_heartbeat_as_down(
    ha_client: HaClient,
) -> None:
    template = _heartbeat_alert_template()
    beat = "sensor.export_guard_heartbeat"
    now = datetime.now(UTC)
    cases = [
        ((now - timedelta(seconds=10)).isoformat(timespec="seconds"), "False"),
        ((now - timedelta(minutes=10)).isoformat(timespec="seconds"), "True"),
        ("unavailable", "True"),
        ("unknown", "True"),
        (None, "True"),  # gone: HA restarted while AppDaemon was dead
    ]
    try:
        for state, down in cases:
            if state is None:
                await ha_client.rest("DELETE", f"/api/states/{beat}")
            else:
                await ha_client.set_state(beat, state, {"device_class": "timestamp"})
            assert await _render(ha_client, template) == down, state
    finally:
        await ha_client.rest("DELETE", f"/api/states/{beat}")
