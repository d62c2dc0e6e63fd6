"""The site simulator: the demo's stand-in for the meters, inverter and battery.

Every tick (one real second by default) it reads the inverter controls from
HA, advances :func:`demo.site_model.step` on the simulated clock, and
publishes the result on every channel a real site would use:

- HA's REST API: the meter sensors (as a meter integration would),
- MQTT: a meter gateway's JSON messages (through :class:`gridwatch.transport.mqtt_link.MqttLink`),
- the controller: a WebSocket ``telemetry`` event and an HTTP status endpoint
  (served by the test suite's :class:`~tests.support.device_server.DeviceServer`).

A channel that is down (HA restarting, broker stopped) is skipped for that
tick and logged once; the site keeps running, as a real one would.

A fault can be switched on in HA: :data:`GRID_METER_OFFLINE` makes the grid
meter's sensor ``unavailable`` until it is switched off again.

The fourth transport, Bluetooth LE, needs its device inside AppDaemon's
process: see :mod:`demo.ble_battery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from demo import feeds
from demo.entities import CONTROL_IDS, DISCHARGE_ENABLE, GRID_POWER
from demo.ha_rest import HaRest, HaRestError
from demo.inverter import Controls, InverterState, decide
from demo.sim_clock import DailyCounter, SimClock, hour_of_day
from demo.site_model import SiteParams, SiteState, step
from gridwatch.transport.errors import TransportError

if TYPE_CHECKING:
    from gridwatch.transport.mqtt_link import MqttLink
    from tests.support.device_server import DeviceServer

_LOGGER = logging.getLogger("demo.simulator")

# One real second per tick: HA's sensors and the dashboard update at the pace
# a real meter reports, and the export guard sees readings well inside its
# 30 s staleness limit.
DEFAULT_TICK_S = 1.0
# A fault to show (and test) what the suite does when the grid meter drops
# out: while this HA helper (defined in the sandbox, "Demo fault: grid meter
# offline") is on, the grid power sensor reads ``unavailable``, as HA shows a
# meter its integration lost.
GRID_METER_OFFLINE: Final = "input_boolean.demo_fault_grid_meter_offline"
# Realistic lifetime meter readings, so the dashboard does not start at 0.
INITIAL_SITE = SiteState(
    soc_pct=80.0,
    imported_kwh=4210.0,
    exported_kwh=1830.0,
    pv_kwh=6120.0,
    battery_out_kwh=950.0,
    consumption_kwh=9300.0,
)


def cloud_cover(sim_s: float) -> float:
    """Passing clouds: a smooth, repeatable 0..0.5 cover over simulated seconds."""
    slow = 0.5 * (1 + math.sin(sim_s / 1700.0))
    fast = 0.5 * (1 + math.sin(sim_s / 373.0))
    return min(max(0.5 * slow * fast, 0.0), 1.0)


@dataclass
class ChannelHealth:
    """Logs a channel's failure once and its recovery once, not every tick."""

    name: str
    failing: bool = False
    failures: int = 0
    sent: int = 0

    def ok(self) -> None:
        if self.failing:
            _LOGGER.info("simulator: %s is back", self.name)
        self.failing = False
        self.sent += 1

    def failed(self, err: BaseException) -> None:
        self.failures += 1
        if not self.failing:
            _LOGGER.warning("simulator: %s failed, retrying every tick: %s", self.name, err)
        self.failing = True


@dataclass
class Simulator:
    """Runs the simulated site until stopped.

    Attributes:
        ha: REST client of the HA instance to feed.
        clock: simulated time.
        gateway: the MQTT gateway's link (started by the simulator), or None.
        controller: the WebSocket/HTTP controller server (started), or None.
        params: the site's sizes.
        tick_s: real seconds between steps.
        monotonic: the real clock (tests pass a fake).
        wall_clock: real wall time, for the ``measured_at`` attribute.
    """

    ha: HaRest
    clock: SimClock
    gateway: MqttLink | None = None
    controller: DeviceServer | None = None
    params: SiteParams = field(default_factory=SiteParams)
    tick_s: float = DEFAULT_TICK_S
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    site: SiteState = INITIAL_SITE
    steps: int = 0
    last: feeds.Snapshot | None = None

    def __post_init__(self) -> None:
        self._inverter = InverterState()
        self._today = DailyCounter(self.clock.origin.date(), self.site.exported_kwh)
        self._started: float | None = None
        self.grid_meter_offline = False
        # The demo's story (demo.story) passes a cloud and switches a load on.
        self.story_cloud = 0.0
        self.story_load_w = 0.0
        self._previous: float | None = None
        self.health = {
            name: ChannelHealth(name)
            for name in ("HA controls", "HA sensors", "MQTT gateway", "controller")
        }

    def start_links(self) -> None:
        """Start connecting the gateway in the background (idempotent)."""
        if self.gateway is not None:
            self.gateway.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set; the gateway link is disconnected on the way out."""
        self.start_links()
        try:
            while not stop.is_set():
                started = self.monotonic()
                await self.tick()
                delay = max(self.tick_s - (self.monotonic() - started), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            if self.gateway is not None:
                await asyncio.wait_for(self.gateway.disconnect(), 15.0)

    async def tick(self) -> feeds.Snapshot:
        """One step: read controls, advance the site, publish everywhere."""
        now_real = self.monotonic()
        if self._started is None:
            self._started = self._previous = now_real
        assert self._previous is not None  # set together with _started
        dt_sim = self.clock.sim_seconds(now_real - self._previous)
        self._previous = now_real
        sim_now = self.clock.at(now_real - self._started)

        controls = await self._read_controls()
        self._inverter, setpoint = decide(self._inverter, controls, self.site.soc_pct, sim_now)
        if setpoint.timer_expired:
            await self._guarded("HA controls", self._switch_off())
        sim_s = (sim_now - self.clock.origin).total_seconds()
        cloud = max(cloud_cover(sim_s), self.story_cloud)
        if dt_sim > 0:
            self.site, readings = step(
                self.site,
                hour=hour_of_day(sim_now),
                dt_s=dt_sim,
                discharge_w=setpoint.discharge_w,
                params=self.params,
                cloud=cloud,
                extra_load_w=self.story_load_w,
            )
        else:  # the first tick: no time has passed, publish the starting point
            _, readings = step(
                self.site,
                hour=hour_of_day(sim_now),
                dt_s=1e-3,
                discharge_w=setpoint.discharge_w,
                params=self.params,
                cloud=cloud,
                extra_load_w=self.story_load_w,
            )
        self._today = self._today.advance(sim_now, self.site.exported_kwh)
        snap = feeds.Snapshot(
            time=sim_now,
            readings=replace(readings, soc_pct=self.site.soc_pct),
            site=self.site,
            export_today_kwh=self._today.value(self.site.exported_kwh),
            mode=setpoint.mode,
        )
        await asyncio.gather(
            self._guarded("HA sensors", self._publish_ha(snap)),
            self._guarded("MQTT gateway", self._publish_mqtt(snap)),
            self._guarded("controller", self._publish_controller(snap)),
        )
        self.steps += 1
        self.last = snap
        return snap

    async def _read_controls(self) -> Controls:
        try:
            states = await self.ha.get_states((*CONTROL_IDS, GRID_METER_OFFLINE))
        except HaRestError as err:
            self.health["HA controls"].failed(err)
            return Controls()  # HA unreachable: the inverter stops discharging
        self.health["HA controls"].ok()
        offline = states[GRID_METER_OFFLINE] == "on"
        if offline != self.grid_meter_offline:
            _LOGGER.info("simulator: fault: grid meter %s", "offline" if offline else "back")
        self.grid_meter_offline = offline
        return Controls.from_states(states)

    async def _switch_off(self) -> None:
        await self.ha.call_service("input_boolean", "turn_off", {"entity_id": DISCHARGE_ENABLE})

    async def _guarded(self, channel: str, work: Any) -> None:
        try:
            await work
        except (HaRestError, TransportError) as err:
            self.health[channel].failed(err)
        else:
            self.health[channel].ok()

    async def _publish_ha(self, snap: feeds.Snapshot) -> None:
        measured = {"measured_at": self.wall_clock().isoformat(timespec="seconds")}
        writes = []
        for sensor, state in feeds.ha_states(snap):
            attributes = sensor.attributes() | (measured if sensor.heartbeat else {})
            if sensor is GRID_POWER and self.grid_meter_offline:
                state, attributes = "unavailable", sensor.attributes()
            writes.append(self.ha.set_state(sensor.entity_id, state, attributes))
        await asyncio.gather(*writes)

    async def _publish_mqtt(self, snap: feeds.Snapshot) -> None:
        if self.gateway is None or not self.gateway.connected:
            return  # the link logs its own outages and reconnects
        for topic, body in feeds.gateway_messages(snap).items():
            await self.gateway.publish(topic, json.dumps(body), qos=0)

    async def _publish_controller(self, snap: feeds.Snapshot) -> None:
        if self.controller is None or not self.controller.running:
            return
        self.controller.values[feeds.CONTROLLER_STATUS_PATH] = feeds.controller_status(snap)
        await self.controller.push(feeds.CONTROLLER_EVENT, feeds.controller_event(snap))
