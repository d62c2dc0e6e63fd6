"""Requests are facts with a wall-clock end: a restarted guard resumes only
what still stands, and only until its end. Judged on the battery's power."""

from __future__ import annotations

import asyncio

from gridwatch_export_guard import ExportGuard
from tests.guard.plant_checks import guarded_site, request
from tests.support.app_harness import make_app
from tests.support.plant import Steps
from tests.support.plant_sim import EVENT, GuardSim, guard_args

PV, LOAD = Steps((), 4000.0), Steps((), 2600.0)


async def restart(sim: GuardSim) -> None:
    app = make_app(
        ExportGuard, guard_args(meter_period_s=1, settle_s=4), sim.hass, name="export_guard"
    )
    await app.initialize()
    sim.guard = app


async def down(sim: GuardSim) -> None:
    await sim.guard.terminate()
    sim.guard = None


def discharged_s(sim: GuardSim, since: float) -> float:
    rec = sim.record
    return sum(rec.dt for t, b in zip(rec.t, rec.battery, strict=True) if t >= since and b > 50)


async def test_a_timed_request_whose_end_passed_while_the_guard_was_down_is_not_resumed():
    sim = await guarded_site(PV, LOAD)
    await request(sim, duration_min=30)
    await sim.run(60)
    assert sim.record.battery[-1] > 1000
    await down(sim)
    sim.hass.clock.advance(2000.0)  # half an hour down: the request has ended
    await sim.run(5)
    back = sim.now
    await restart(sim)
    try:
        await sim.run(60)
        assert discharged_s(sim, back) == 0.0, "a request that had ended ran again"
    finally:
        await down(sim)


async def test_a_timed_request_resumes_only_until_its_end():
    sim = await guarded_site(PV, LOAD)
    await request(sim, duration_min=3)
    await sim.run(60)
    await down(sim)
    await sim.run(60)  # down a minute: one minute of the three is left
    back = sim.now
    await restart(sim)
    try:
        await sim.run(150)
        ran = discharged_s(sim, back)
        assert 30.0 < ran <= 62.0, f"ran {ran:.0f} s of the one minute left"
    finally:
        await down(sim)


async def test_a_stop_requested_just_before_a_restart_is_not_resumed():
    sim = await guarded_site(PV, LOAD)
    await request(sim)
    await sim.run(30)
    assert sim.record.battery[-1] > 1000
    # The stop arrives; the inverter's integration takes its time to answer
    # the turn_off, and AppDaemon terminates the app meanwhile.
    real_call = sim.hass.call_service
    slow: list[str] = []

    async def slow_turn_off(service, data=None, **kw):
        if service.endswith("turn_off") and not slow:
            slow.append(service)
            await asyncio.sleep(0.05)
        return await real_call(service, data, **kw)

    sim.hass.call_service = slow_turn_off
    stopping = asyncio.ensure_future(sim.hass.fire_event(EVENT, {"action": "stop"}))
    await asyncio.sleep(0.01)
    await down(sim)
    await stopping
    sim.hass.call_service = real_call
    await sim.run(5)
    back = sim.now
    await restart(sim)
    try:
        await sim.run(60)
        assert discharged_s(sim, back) == 0.0, "the restarted guard resumed a stopped request"
    finally:
        await down(sim)
