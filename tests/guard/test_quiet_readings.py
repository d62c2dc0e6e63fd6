"""A reading HA keeps receiving unchanged is live (HA 2024.4+ ``last_reported``).

HA fires no state_changed for a value that arrives again unchanged, so
AppDaemon's cache (the fake models it) never sees such a report; the guard
asks HA itself once a reading has been quiet for half its ``max_age_s``.
The plant is the steady site of test_plant; the SoC sensor is the quiet one.
"""

from __future__ import annotations

import pytest

from gridwatch.guard.quiet_readings import redate
from gridwatch_export_guard import ExportGuard
from tests.guard.plant_checks import guarded_site, request
from tests.guard.test_plant import STEADY_PV, health, stop_guard
from tests.support.app_harness import make_app
from tests.support.fake_hass import FakeHass
from tests.support.plant import Inverter, LaggedSensor, Site, Steps
from tests.support.plant_sim import EXPORTED, GRID, SOC, GuardSim, guard_args

SOC_MAX_AGE_S = 60
READINGS = {
    "grid_power": {"entity": GRID},
    "soc": {"entity": SOC, "max_age_s": SOC_MAX_AGE_S},
    "export_today": {"entity": EXPORTED, "max_age_s": 3600},
}


@pytest.mark.parametrize("reported", [True, False], ids=["re-reported", "silent"])
async def test_a_steady_soc_that_is_still_reported_keeps_the_discharge_going(reported):
    sim = await guarded_site(STEADY_PV, Steps((), 2600.0), readings=READINGS)
    try:
        await request(sim)
        await sim.run(20)
        assert sim.record.battery[-1] > 1000
        for _ in range(12):  # four minutes: four max ages
            await sim.run(20)
            if reported:
                await sim.hass.set_device_state(SOC, "80")  # same value: no event
        raw, attrs = health(sim)
        if reported:
            assert sim.record.battery[-1] > 1000, attrs
            assert raw == "healthy", attrs
        else:
            # Control: with no report at all the SoC is stale and the guard stops.
            assert sim.record.battery[-1] == 0.0
            assert raw != "healthy"
    finally:
        await stop_guard(sim)


async def test_at_start_a_reading_changed_long_ago_but_reported_now_is_fresh():
    hass = FakeHass()
    sim = GuardSim(hass, Site(STEADY_PV, Steps((), 2600.0), Inverter()), LaggedSensor(1.0, 1.0))
    hass.clock.advance(7200.0)  # SoC last changed two hours ago ...
    await hass.set_device_state(SOC, "80")  # ... and was reported just now
    await hass.set_device_state(EXPORTED, "1.5")
    assert (await hass.get_state(SOC)).last_reported < hass.clock.now()  # the cache lags
    app = make_app(ExportGuard, guard_args(readings=READINGS), hass, name="export_guard")
    await app.initialize()
    sim.guard = app
    try:
        await request(sim)
        await sim.run(20)
        assert sim.record.battery[-1] > 1000, health(sim)
    finally:
        await stop_guard(sim)


def test_a_reading_from_a_clock_ahead_counts_as_now_and_nothing_newer_is_none():
    hass = FakeHass()
    hass.seed(SOC, "80")
    state = hass.state_of(SOC)
    now = hass.clock.monotonic()
    behind = hass.clock.now().replace(year=hass.clock.now().year - 1)
    ahead = redate(state, None, now_mono=now, now_wall=behind)
    assert ahead is not None
    assert ahead.at == now
    assert redate(state, ahead, now_mono=now, now_wall=behind) is None


async def test_on_ha_before_2024_4_the_guard_asks_once_and_then_only_changes_count():
    hass = FakeHass(reports_unchanged=False)
    sim = GuardSim(hass, Site(STEADY_PV, Steps((), 2600.0)), LaggedSensor(1.0, 1.0))
    app = make_app(ExportGuard, guard_args(readings=READINGS), hass, name="export_guard")
    await app.initialize()
    sim.guard = app
    try:
        await request(sim)
        for _ in range(6):
            await sim.run(20)
            await sim.hass.set_device_state(SOC, "80")  # HA before 2024.4 records nothing
        # Stale as documented; and HA was asked once, not on every tick.
        raw, _attrs = health(sim)
        assert raw != "healthy"
        assert sim.record.battery[-1] == 0.0
        assert hass.rest_reads.count(SOC) == 1
    finally:
        await stop_guard(sim)


async def test_a_silent_reading_is_asked_about_at_most_every_tenth_of_its_max_age():
    sim = await guarded_site(STEADY_PV, Steps((), 2600.0), readings=READINGS)
    try:
        await sim.run(240)  # the SoC never reported again: four max ages
        asks = sim.hass.rest_reads.count(SOC)
        # Quiet after 30 s, then at most every 6 s (a tick is 1 s).
        assert 0 < asks <= (240 - 30) / (SOC_MAX_AGE_S * 0.1) + 1
    finally:
        await stop_guard(sim)
