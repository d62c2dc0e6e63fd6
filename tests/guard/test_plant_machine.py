"""A hypothesis state machine over the plant, its faults, requests and
settings, driving the real app on the fake HA; after every step the
physics must hold (export over the limit only right after a disturbance
the guard could not foresee, never discharging while the guard believes
it stopped, the battery off soon after a teardown)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gridwatch_export_guard import ExportGuard
from tests.guard.plant_checks import bounds_for, guarded_site, request, violations
from tests.support.app_harness import make_app
from tests.support.plant import Steps
from tests.support.plant_sim import ENABLE, EVENT, POWER, GuardSim, guard_args


class PlantMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sim: GuardSim | None = None
        self.options: dict[str, Any] = {}
        self.external: list[float] = []  # things done to the plant the guard cannot foresee
        self.down_since: float | None = None  # the guard was torn down
        self.guarded_since = 0.0  # this guard instance's start

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @initialize(
        period=st.sampled_from([1.0, 2.0]),
        lag=st.sampled_from([0.0, 1.0]),
        ramp=st.sampled_from([0.5, 1.0, 2.0]),
        step=st.sampled_from([1000, 2000, 5000]),
        interval=st.sampled_from([0, 10]),
        pv=st.integers(0, 7000),
        load=st.integers(300, 3000),
        requested=st.booleans(),
    )
    def boot(self, period, lag, ramp, step, interval, pv, load, requested) -> None:
        self.options = {"period_s": period, "lag_s": lag, "ramp_s": ramp}
        self.guard_options = {"max_raise_step_w": step, "min_write_interval_s": interval}
        self.bounds = bounds_for(period, lag, ramp)
        self.sim = self.run(
            guarded_site(
                Steps((), float(pv)), Steps((), float(load)), **self.options, **self.guard_options
            )
        )
        if requested:
            self.run(request(self.sim))
        self.run(self.sim.run(10.0))  # past the start-up stop's settle time

    # --- the world ------------------------------------------------------------------

    @rule(seconds=st.floats(1.0, 30.0))
    def time_passes(self, seconds: float) -> None:
        assert self.sim is not None
        self.run(self.sim.run(seconds))

    @rule(value=st.integers(0, 7000))
    def cloud_or_sun(self, value: int) -> None:
        assert self.sim is not None
        site = self.sim.site
        site.pv = Steps((*site.pv.points, (self.sim.now, float(value))), site.pv.default)

    @rule(value=st.integers(300, 4000))
    def load_changes(self, value: int) -> None:
        assert self.sim is not None
        site = self.sim.site
        site.load = Steps((*site.load.points, (self.sim.now, float(value))), site.load.default)

    @precondition(lambda self: self.down_since is None)
    @rule(power=st.none() | st.integers(100, 6000))
    def start_requested(self, power: int | None) -> None:
        assert self.sim is not None
        data = {} if power is None else {"power_w": power}
        self.run(request(self.sim, **data))

    @precondition(lambda self: self.down_since is None)
    @rule()
    def stop_requested(self) -> None:
        assert self.sim is not None
        self.run(self.sim.hass.fire_event(EVENT, {"action": "stop"}))

    @rule(after=st.floats(0.5, 6.0))
    def next_turn_on_lands_late(self, after: float) -> None:
        assert self.sim is not None
        self.sim.late_turn_on(after)
        self.external.append(self.sim.now + after)

    @rule(power=st.integers(500, 5000))
    def another_automation_switches_on(self, power: int) -> None:
        assert self.sim is not None
        self.run(self.sim.other_actor(True, float(power)))
        self.external.append(self.sim.now)

    @rule()
    def appdaemon_cache_loses_the_actuators(self) -> None:
        assert self.sim is not None
        self.sim.hass.cache_lost.update({ENABLE, POWER})

    @precondition(lambda self: self.down_since is None)
    @rule()
    def guard_torn_down(self) -> None:
        assert self.sim is not None
        assert self.sim.guard is not None
        self.run(self.sim.guard.terminate())
        self.sim.guard = None
        self.down_since = self.sim.now

    @precondition(lambda self: self.down_since is not None)
    @rule()
    def guard_restarted(self) -> None:
        assert self.sim is not None
        args = guard_args(
            meter_period_s=self.options["period_s"],
            settle_s=2 * self.options["period_s"] + self.options["lag_s"] + self.options["ramp_s"],
            **self.guard_options,
        )
        app = make_app(ExportGuard, args, self.sim.hass, name="export_guard")
        self.run(app.initialize())
        self.sim.guard = app
        self.down_since = None
        self.guarded_since = self.sim.now
        # Whatever ran while it was down is, to the new guard, a disturbance.
        self.external.append(self.sim.now)

    # --- the physics ------------------------------------------------------------------

    @invariant()
    def physics_hold(self) -> None:
        if self.sim is None:
            return
        site = self.sim.site
        # What others did counts as a disturbance the guard could not foresee.
        original = site.disturbances

        def with_external() -> list[float]:
            return sorted({*original(), *self.external})

        site.disturbances = with_external  # type: ignore[method-assign]
        # The guard answers for the plant only while it runs: what happened
        # while it was down is bounded by the lease (torn_down_means_stopped),
        # and each segment before a teardown was checked while it ran.
        record = self.sim.record.since(self.guarded_since)
        if self.down_since is not None:
            # With no guard running only the lease bounds the plant.
            record = record.until(self.down_since)
        try:
            assert violations(record, site, self.bounds) == []
        finally:
            del site.disturbances

    @invariant()
    def torn_down_means_stopped(self) -> None:
        if self.sim is None or self.down_since is None:
            return
        if any(t >= self.down_since - 10.0 for t in self.external):
            return  # someone else switched it on: only the lease bounds that
        rec = self.sim.record
        settled = self.down_since + self.bounds.believed_off_s
        late = [b for t, b in zip(rec.t, rec.battery, strict=True) if t > settled]
        assert all(b == 0.0 for b in late), "discharging after the guard was torn down"

    def teardown(self) -> None:
        if self.sim is not None:
            over = bool(self.sim.record.over_stretches())
            event(f"discharged: {max(self.sim.record.battery, default=0) > 0}, over: {over}")
        if self.sim is not None and self.sim.guard is not None:
            self.run(self.sim.guard.terminate())
        self.loop.close()


PlantMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPlantMachine = PlantMachine.TestCase
