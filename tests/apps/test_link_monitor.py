"""The link monitor app against the fake HA, with scripted in-test links.

The links are a small :class:`Link` subclass whose connects succeed or fail
as the test says; time is the fake clock shared by HA, the links' health and
their backoff sleeps, so outages of many minutes run in milliseconds.
"""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest

from gridwatch.config.base import load_config
from gridwatch.config.link_monitor_schema import LinkConfig, LinkMonitorConfig, LinkMonitorSchema
from gridwatch.links.runner import LinkMonitorRunner
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient
from gridwatch.runtime.link_factory import link_setups
from gridwatch.transport.errors import AuthError, ConnectError, UnsupportedHostError
from gridwatch.transport.health import LinkState
from gridwatch.transport.link import Link
from gridwatch_link_monitor import LinkMonitorApp
from tests.support.clock import FakeClock
from tests.support.fake_hass import FakeHass

GRACE = 600
NOTICE_AFTER = 300

ARGS = {
    "name": "link_monitor",
    "module": "gridwatch_link_monitor",
    "class": "LinkMonitorApp",
    "tick_interval_s": 5,
    "links": [
        {
            "name": "gateway",
            "mqtt": {"host": "broker.local"},
            "grace_period_s": GRACE,
            "outage_notice_after_s": NOTICE_AFTER,
            "values": [
                {
                    "name": "grid_power",
                    "source": "gw/+/state",
                    "path": "power",
                    "unit": "W",
                    "device_class": "power",
                    "state_class": "measurement",
                    "min": -50000,
                    "max": 50000,
                },
                {"name": "soc", "source": "gw/+/state", "path": "soc", "min": 0, "max": 100},
            ],
        },
        {
            "name": "controller",
            "websocket": {"url": "http://controller.local"},
            "values": [{"name": "pv_power", "source": "pv", "path": "w", "unit": "W"}],
        },
    ],
}


class Sleeper:
    """Backoff sleeps that end when the fake clock passes their due time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waiting: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((self.clock() + seconds, future))
        await future

    def wake_due(self) -> None:
        for due, future in self.waiting:
            if due <= self.clock() and not future.done():
                future.set_result(None)
        self.waiting = [(d, f) for d, f in self.waiting if not f.done()]


class ScriptedLink(Link):
    """A link whose connects do what the test says; messages are injected."""

    def __init__(self, name: str, clock: FakeClock, sleeper: Sleeper) -> None:
        super().__init__(name, clock=clock, sleep=sleeper.sleep, rand=lambda: 0.5)
        self.reachable = True
        self.fatal: Exception | None = None  # raised by every connect when set
        self.opens = 0
        self.closes = 0

    async def _open(self) -> None:
        self.opens += 1
        if self.fatal is not None:
            raise self.fatal
        if not self.reachable:
            raise ConnectError("connection refused")

    async def _close(self) -> None:
        self.closes += 1

    def emit(self, source: str, payload, topic: str | None = None) -> None:
        self._deliver(self.subscriptions[source], payload, key=topic)

    def cut(self) -> None:
        self.reachable = False
        self._connection_lost("cut by test")


class Harness:
    def __init__(self, args) -> None:
        self.clock = FakeClock()
        self.hass = FakeHass(self.clock)
        self.sleeper = Sleeper(self.clock)
        self.notices = NoticeClient(self.hass, "link_monitor")
        self.links: dict[str, ScriptedLink] = {}
        self.broken: set[str] = set()
        self.baseline = 0
        self.config = load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)
        self.runner = LinkMonitorRunner(
            link_setups(self.config, self._build), self.config.tick_interval_s,
            self.hass, self.notices, logging.getLogger("test.link_monitor"),
        )  # fmt: skip

    def _build(self, cfg: LinkConfig) -> Link:
        if cfg.name in self.broken:
            raise RuntimeError("no such transport on this host")
        link = ScriptedLink(cfg.name, self.clock, self.sleeper)
        self.links[cfg.name] = link
        return link

    async def settle(self) -> None:
        # Let link supervisors and the flush task run (no real time passes).
        for _ in range(20):
            await asyncio.sleep(0)

    async def start(self) -> None:
        await self.runner.start()
        await self.settle()
        await self.advance(5)
        self.mark_baseline()

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        done = 0.0
        while done < seconds:
            d = min(step, seconds - done)
            await self.hass.advance(d)
            self.sleeper.wake_due()
            await self.settle()
            done += d

    def state(self, entity_id: str) -> str | None:
        entity = self.hass.state_of(entity_id)
        return None if entity is None else entity.raw

    def attrs(self, entity_id: str):
        entity = self.hass.state_of(entity_id)
        assert entity is not None, entity_id
        return entity.attributes

    def notice_events(self):
        """Notice events after start-up (which clears notices of earlier runs)."""
        return self.hass.events_of(NOTICE_EVENT)[self.baseline :]

    def mark_baseline(self) -> None:
        self.baseline = len(self.hass.events_of(NOTICE_EVENT))


@pytest.fixture
async def harness():
    h = Harness(ARGS)
    yield h
    await h.runner.stop()


def args_with(**link0):
    args = copy.deepcopy(ARGS)
    args["links"][0].update(link0)
    return args


async def test_values_and_link_entities_are_published(harness):
    await harness.start()
    gw = harness.links["gateway"]
    assert gw.connected
    gw.emit("gw/+/state", b'{"power": -1234, "soc": 87.5}', topic="gw/meter1/state")
    await harness.settle()
    assert harness.state("sensor.gateway_grid_power") == "-1234"
    assert harness.state("sensor.gateway_soc") == "87.5"
    power = harness.attrs("sensor.gateway_grid_power")
    assert power["unit_of_measurement"] == "W"
    assert power["device_class"] == "power"
    assert power["state_class"] == "measurement"
    assert power["stale"] is False
    assert power["connection_status"] == "connected"
    assert harness.state("binary_sensor.gateway_connected") == "on"
    assert harness.attrs("binary_sensor.gateway_connected")["device_class"] == "connectivity"
    assert harness.state("sensor.gateway_link_status") == "connected"
    received_at = harness.clock.now()
    await harness.advance(5)  # the status entity is refreshed on the tick
    status = harness.attrs("sensor.gateway_link_status")
    assert status["success_rate"] == 100.0
    assert status["consecutive_failures"] == 0
    assert status["reconnect_count"] == 0
    assert status["last_message"] == received_at.isoformat(timespec="seconds")
    assert status["adaptive_timeout_s"] == 25.0
    assert "mean_connect_time_s" in status
    assert "last_connect_time_s" in status
    # The other link's value has no reading yet: unknown, not unavailable.
    assert harness.state("sensor.controller_pv_power") == "unknown"


async def test_outage_grace_notice_and_recovery_in_order(harness):
    await harness.start()
    gw = harness.links["gateway"]
    gw.emit("gw/+/state", {"power": 1500, "soc": 50})
    await harness.advance(5)
    cut_at = harness.clock()
    gw.cut()
    await harness.advance(60)
    # Short outage: last good value kept, marked stale, link offline.
    assert harness.state("sensor.gateway_grid_power") == "1500"
    assert harness.attrs("sensor.gateway_grid_power")["stale"] is True
    assert harness.attrs("sensor.gateway_grid_power")["connection_status"] == "offline"
    assert harness.state("binary_sensor.gateway_connected") == "off"
    assert harness.state("sensor.gateway_link_status") == "offline"
    assert harness.attrs("sensor.gateway_link_status")["consecutive_failures"] >= 3
    assert harness.notice_events() == []

    await harness.advance(NOTICE_AFTER - 60 + 5)
    raised = [e for e in harness.notice_events() if e["action"] == "raise"]
    assert len(raised) == 1
    notice = raised[0]
    assert notice["notice_id"] == "link_monitor_gateway_outage"
    assert notice["severity"] == "warning"
    assert "gateway" in notice["title"]
    assert "mqtt://broker.local:1883" in notice["message"]
    assert "connection refused" in notice["message"]
    assert any("broker" in step for step in notice["steps"])
    assert harness.state("sensor.gateway_grid_power") == "1500"  # still within grace

    await harness.advance(cut_at + GRACE - harness.clock() - 1)
    assert harness.state("sensor.gateway_grid_power") == "1500"
    await harness.advance(6)
    assert harness.state("sensor.gateway_grid_power") == "unavailable"
    assert harness.state("sensor.gateway_soc") == "unavailable"

    gw.reachable = True
    await harness.advance(65)  # the backoff is capped at 60 s
    assert gw.connected
    assert harness.state("binary_sensor.gateway_connected") == "on"
    # Back, but values from before the long outage are not trusted again...
    assert harness.state("sensor.gateway_grid_power") == "unavailable"
    resolves = [e for e in harness.notice_events() if e["action"] == "resolve"]
    assert [e["notice_id"] for e in resolves] == ["link_monitor_gateway_outage"]
    # ...until a fresh reading arrives.
    gw.emit("gw/+/state", {"power": 900, "soc": 51})
    await harness.settle()
    assert harness.state("sensor.gateway_grid_power") == "900"
    assert harness.attrs("sensor.gateway_grid_power")["stale"] is False
    assert harness.attrs("sensor.gateway_link_status")["reconnect_count"] == 1
    assert len([e for e in harness.notice_events() if e["action"] == "raise"]) == 1


async def test_brief_drop_never_flaps_values(harness):
    await harness.start()
    gw = harness.links["gateway"]
    gw.emit("gw/+/state", {"power": 1500, "soc": 50})
    await harness.settle()
    writes_before = len(harness.hass.entity_writes)
    gw.cut()
    await harness.advance(2)
    gw.reachable = True
    await harness.advance(10)
    assert gw.connected
    values = [
        state
        for entity_id, state, _ in harness.hass.entity_writes[writes_before:]
        if entity_id == "sensor.gateway_grid_power"
    ]
    assert "unavailable" not in values
    assert harness.state("sensor.gateway_grid_power") == "1500"
    assert harness.notice_events() == []


async def test_data_after_reconnect_shows_connected_without_waiting_for_the_tick(harness):
    await harness.start()
    gw = harness.links["gateway"]
    gw.emit("gw/+/state", {"power": 1, "soc": 2})
    gw.cut()
    await harness.advance(20)
    gw.reachable = True
    for _ in range(70):
        await harness.advance(1)  # each step: tick first, then the reconnect
        if gw.connected:
            break
    assert gw.connected
    assert harness.state("binary_sensor.gateway_connected") == "off"  # the tick ran before
    gw.emit("gw/+/state", {"power": 3, "soc": 4})
    await harness.settle()
    assert harness.state("sensor.gateway_grid_power") == "3"
    # Up again (degraded: most of its recent connect attempts failed).
    assert harness.attrs("sensor.gateway_grid_power")["connection_status"] == "degraded"
    assert harness.state("sensor.gateway_link_status") == "degraded"
    assert harness.attrs("sensor.gateway_grid_power")["stale"] is False
    assert harness.state("binary_sensor.gateway_connected") == "on"


async def test_invalid_values_are_skipped_counted_and_never_raise(harness, caplog):
    await harness.start()
    gw = harness.links["gateway"]
    gw.emit("gw/+/state", {"power": 100, "soc": 40})
    caplog.set_level(logging.WARNING)
    for payload in ({"power": 99999999, "soc": 40}, b"\xff\x00garbage", None, [], {"power": "x"}):
        gw.emit("gw/+/state", payload)
    await harness.advance(5)
    assert harness.state("sensor.gateway_grid_power") == "100"
    attrs = harness.attrs("sensor.gateway_grid_power")
    assert attrs["invalid_count"] == 5
    assert attrs["last_invalid"].startswith("not_a_number")
    assert harness.attrs("sensor.gateway_soc")["invalid_count"] == 4  # soc was valid once
    skipped = [r for r in caplog.records if "skipped invalid grid_power" in r.getMessage()]
    assert len(skipped) == 4  # one per kind, not one per payload
    assert gw.connected


async def test_one_unreachable_or_broken_link_does_not_stall_the_others():
    args = copy.deepcopy(ARGS)
    args["links"].append(
        {
            "name": "battery",
            "ble": {"address": "AA:BB:CC:DD:EE:FF"},
            "values": [{"name": "soc", "source": "ffe1", "offset": 0, "format": "B"}],
        }
    )
    h = Harness(args)
    h.broken.add("battery")
    try:
        await h.runner.start()
        h.links["controller"].reachable = False
        await h.advance(5)
        h.links["gateway"].emit("gw/+/state", {"power": 10, "soc": 20})
        await h.advance(5)
        assert h.state("sensor.gateway_grid_power") == "10"
        assert h.state("sensor.gateway_link_status") == "connected"
        assert h.state("sensor.battery_link_status") == "disconnected"
        assert "cannot start" in h.attrs("sensor.battery_link_status")["reason"]
        raised = [e["notice_id"] for e in h.notice_events() if e["action"] == "raise"]
        assert raised == ["link_monitor_battery_outage"]  # broken: told at once
    finally:
        await h.runner.stop()


@pytest.mark.parametrize(
    ("error", "title"),
    [
        (AuthError("bad password"), "credentials refused"),
        (UnsupportedHostError("no BlueZ on this host"), "no Bluetooth"),
    ],
)
async def test_a_link_that_stops_for_good_raises_a_notice_at_once(error, title):
    h = Harness(ARGS)
    try:
        await h.runner.start()
        h.links["controller"].fatal = error
        h.links["controller"].cut()
        await h.advance(10)
        assert h.links["controller"].fatal_error is not None
        assert h.state("sensor.controller_link_status") == "disconnected"
        assert h.attrs("sensor.controller_link_status")["reason"] == str(error)
        raised = [e for e in h.notice_events() if e["action"] == "raise"]
        assert [e["notice_id"] for e in raised] == ["link_monitor_controller_outage"]
        assert title in raised[0]["title"]
        opens = h.links["controller"].opens
        await h.advance(120)
        assert h.links["controller"].opens == opens  # no hammering
    finally:
        await h.runner.stop()


async def test_notice_from_an_earlier_run_is_cleared_when_the_link_is_up(harness):
    await harness.start()
    events = harness.hass.events_of(NOTICE_EVENT)
    resolves = [e["notice_id"] for e in events if e["action"] == "resolve"]
    assert sorted(resolves) == ["link_monitor_controller_outage", "link_monitor_gateway_outage"]
    await harness.advance(60)
    assert harness.notice_events() == []  # once per run, not per tick


async def test_stop_disconnects_every_link_and_marks_them_stopped(harness):
    await harness.start()
    harness.links["gateway"].emit("gw/+/state", {"power": 5, "soc": 6})
    await harness.settle()
    await harness.runner.stop()
    for link in harness.links.values():
        assert not link.connected
        assert link.health.state is LinkState.DISCONNECTED
        assert link.closes >= 1
    assert harness.hass.pending_timers == 0
    assert harness.state("sensor.gateway_link_status") == "disconnected"
    assert harness.state("binary_sensor.gateway_connected") == "off"
    assert harness.state("sensor.gateway_grid_power") == "unavailable"
    assert harness.attrs("sensor.gateway_grid_power")["unit_of_measurement"] == "W"
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(n.startswith("link-") for n in names)


async def test_entities_come_back_after_ha_restart(harness):
    await harness.start()
    harness.links["gateway"].emit("gw/+/state", {"power": 5, "soc": 6})
    await harness.settle()
    await harness.hass.simulate_restart()
    assert harness.state("sensor.gateway_grid_power") == "5"
    assert harness.attrs("sensor.gateway_grid_power")["unit_of_measurement"] == "W"
    assert harness.state("sensor.gateway_link_status") == "connected"


async def test_silent_link_degrades_after_stale_after():
    h = Harness(args_with(stale_after_s=30))
    try:
        await h.start()
        h.links["gateway"].emit("gw/+/state", {"power": 5, "soc": 6})
        await h.advance(25)
        assert h.state("sensor.gateway_link_status") == "connected"
        await h.advance(10)
        assert h.state("sensor.gateway_link_status") == "degraded"
        assert h.state("binary_sensor.gateway_connected") == "on"
        assert h.attrs("sensor.gateway_grid_power")["stale"] is True
        assert h.state("sensor.gateway_grid_power") == "5"
    finally:
        await h.runner.stop()


def test_app_class_is_wired_to_its_schema():
    assert LinkMonitorApp.schema is LinkMonitorSchema


async def test_a_failing_background_publish_is_logged_and_the_next_one_works(harness, caplog):
    await harness.start()
    real_set_entity = harness.hass.set_entity
    calls = {"n": 0}

    async def flaky(entity_id, state, attributes):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("adapter bug")
        await real_set_entity(entity_id, state, attributes)

    harness.hass.set_entity = flaky
    gw = harness.links["gateway"]
    gw.emit("gw/+/state", {"power": 1, "soc": 2})
    await harness.settle()
    assert "publishing link values failed" in caplog.text
    gw.emit("gw/+/state", {"power": 7, "soc": 8})
    await harness.settle()
    assert harness.state("sensor.gateway_grid_power") == "7"
