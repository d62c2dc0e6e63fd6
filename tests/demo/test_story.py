"""The demo's story: each beat does to the site what it says, and the console tells it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from demo.entities import GRID_POWER, PV_POWER
from demo.sim_clock import SimClock
from demo.simulator import GRID_METER_OFFLINE, Simulator
from demo.site_model import SiteState
from demo.story import GUARD_EVENT, STORY, Beat, Storyteller, due, perform
from tests.demo.fake_ha_rest import FakeHaRest

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))


@pytest.fixture
async def ha():
    fake = FakeHaRest()
    await fake.start()
    fake.set(GRID_METER_OFFLINE, "off")
    try:
        yield fake
    finally:
        await fake.stop()


def test_the_story_has_every_beat_the_issue_asks_for_in_order():
    kinds = [b.kind for b in STORY]
    assert kinds[0] == "request"
    assert STORY[0].value["action"] == "start"
    assert {"cloud", "load", "meter_offline"} <= set(kinds)
    assert STORY[-1].value == {"action": "stop"}
    times = [b.at_s for b in STORY]
    assert times == sorted(times)
    # Every disturbance is switched off again (the site recovers).
    for kind, off in (("cloud", 0.0), ("load", 0.0), ("meter_offline", False)):
        assert [b.value for b in STORY if b.kind == kind][-1] == off


@pytest.mark.parametrize(
    ("done", "elapsed", "expected"),
    [(0, 0.0, 0), (0, 10.0, 1), (0, 1000.0, len(STORY)), (3, 1000.0, len(STORY) - 3)],
)
def test_due_beats(done, elapsed, expected):
    assert len(due(STORY, done, elapsed)) == expected


async def test_a_cloud_dims_the_pv_and_a_load_spike_moves_the_grid(ha, rest):
    sim = Simulator(ha=rest, clock=SimClock(NOON), site=SiteState(soc_pct=50.0))
    before = (await sim.tick()).readings
    await perform(Beat(0, "", "cloud", 0.7), rest, sim)
    await perform(Beat(0, "", "load", 3000.0), rest, sim)
    after = (await sim.tick()).readings
    assert after.pv_w < 0.6 * before.pv_w
    assert after.load_w == pytest.approx(before.load_w + 3000.0, abs=5)
    assert after.grid_w > before.grid_w + 3000.0  # less export: the load and the cloud
    assert float(ha.state(PV_POWER.entity_id)) == pytest.approx(after.pv_w, abs=1)


async def test_a_request_is_the_guards_event_and_the_fault_is_a_dead_meter(ha, rest):
    sim = Simulator(ha=rest, clock=SimClock(NOON), site=SiteState(soc_pct=50.0))
    await perform(STORY[0], rest, sim)
    assert ha.events == [(GUARD_EVENT, STORY[0].value)]
    await perform(Beat(0, "", "meter_offline", True), rest, sim)
    await sim.tick()
    assert ha.state(GRID_POWER.entity_id) == "unavailable"
    await perform(Beat(0, "", "meter_offline", False), rest, sim)
    await sim.tick()
    assert ha.state(GRID_POWER.entity_id) not in (None, "unavailable")


async def test_the_console_tells_the_beats_and_the_guards_answers(ha, rest):
    sim = Simulator(ha=rest, clock=SimClock(NOON), site=SiteState(soc_pct=50.0))
    ha.set("sensor.export_guard_last_action", "none yet")
    said: asyncio.Queue[str] = asyncio.Queue()
    lines: list[str] = []

    async def line_with(text: str) -> None:
        while text not in (line := await said.get()):
            lines.append(line)
        lines.append(line)

    teller = Storyteller(rest, sim, said.put_nowait, story=(Beat(0, "a cloud", "cloud", 0.5),))
    stop = asyncio.Event()
    task = asyncio.create_task(teller.run(stop))
    try:
        async with asyncio.timeout(10):
            await line_with("[story] a cloud")
            ha.set("sensor.export_guard_last_action", "start 1200 W (requested): verified")
            await line_with("guard: start 1200 W")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sim.story_cloud == 0.5
    # Where the guard stood at the start is not news.
    assert not any("none yet" in line for line in lines)
