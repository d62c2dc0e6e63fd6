"""The device semantics the guard must not assume away: battery sensors
slower than the meter, quantised actuators, inverters that ignore a stop,
a wrong grid sign, actuator entities that vanish. Judged on the plant's
physics and on what the guard publishes."""

from __future__ import annotations

import pytest

from gridwatch.notices.client import NOTICE_EVENT
from tests.guard.plant_checks import guarded_site, request
from tests.support.plant import Steps
from tests.support.plant_sim import GuardSim

# PV 4 kW, house 1.1 kW: 2.9 kW of export before the battery; limit 3 kW.
PV, LOAD = Steps((), 4000.0), Steps((), 1100.0)
# Room for the battery: house 2.6 kW, so 1.4 kW of export before it.
ROOMY_LOAD = Steps((), 2600.0)


def health(sim: GuardSim) -> tuple[str | None, dict]:
    state = sim.hass.state_of("sensor.export_guard_health")
    assert state is not None
    return state.raw, dict(state.attributes)


def notice_log(sim: GuardSim, notice_id: str) -> list[tuple[str, str]]:
    return [
        (d["action"], d.get("severity", ""))
        for d in sim.hass.events_of(NOTICE_EVENT)
        if d["notice_id"] == f"export_guard_{notice_id}"
    ]


def discharged_s(sim: GuardSim, since: float = 0.0) -> float:
    rec = sim.record
    return sum(rec.dt for t, b in zip(rec.t, rec.battery, strict=True) if t >= since and b > 50)


async def stop_guard(sim: GuardSim) -> None:
    if sim.guard is not None:
        await sim.guard.terminate()


@pytest.mark.parametrize(("period", "lag"), [(1.0, 0.5), (5.0, 0.5), (5.0, 2.0)])
async def test_a_battery_sensor_slower_than_the_meter_does_not_stop_the_discharge(period, lag):
    sim = await guarded_site(
        PV, ROOMY_LOAD, battery_sensor=True, battery_period_s=period, battery_lag_s=lag
    )
    try:
        await request(sim)
        start = sim.now
        await sim.run(90)
        stops = len(sim.hass.calls_to("input_boolean/turn_off"))
        assert discharged_s(sim, start) > 75.0
        assert stops <= 1, f"{stops} stops on a plant that followed every change"
        assert not [a for a, _ in notice_log(sim, "actuator_failure") if a == "raise"]
    finally:
        await stop_guard(sim)


def notice_messages(sim: GuardSim, notice_id: str) -> list[str]:
    return [
        f"{d.get('title', '')} {d.get('message', '')} {' '.join(d.get('steps', ()))}"
        for d in sim.hass.events_of(NOTICE_EVENT)
        if d["notice_id"] == f"export_guard_{notice_id}" and d["action"] == "raise"
    ]


@pytest.mark.parametrize("battery_sensor", [False, True])
@pytest.mark.parametrize("step", [2000, 300])
async def test_a_wrong_grid_sign_is_caught_and_named(battery_sensor, step):
    # The meter writes export positive; the guard is told import positive.
    sim = await guarded_site(
        PV, ROOMY_LOAD, meter_sign=1.0, battery_sensor=battery_sensor, max_raise_step_w=step
    )
    try:
        await request(sim)
        await sim.run(120)
        over_wh = sim.record.over_wh()
        assert over_wh < 5.0, f"{over_wh:.1f} Wh over the limit"
        named = notice_messages(sim, "actuator_failure")
        assert named, "no notice"
        assert "grid_sign" in named[-1]
        # Every stop worked: it must not read as a stop that failed.
        assert notice_messages(sim, "stop_failed") == []
    finally:
        await stop_guard(sim)
