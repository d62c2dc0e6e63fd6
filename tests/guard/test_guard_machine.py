"""Random sequences of readings, staleness, actuator failures and requests,
checking the guard's safety invariants after every decision.

The machine plays the app: it runs each decision's action through a real
:class:`CircuitBreaker` (fake clock) against a simulated actuator that works,
fails, or is slow (the action stays in flight until a rule finishes it, so a
stop can supersede it).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gridwatch.guard.decisions import (
    Action,
    ActionKind,
    Actuator,
    GuardState,
    Outcome,
    apply_result,
    decide,
    evaluate_for,
    note_grid_sample,
    request_start,
    request_stop,
)
from gridwatch.guard.readings import Readings, ReadingStatus, Sample
from gridwatch.safety.breaker import BreakerState, CircuitBreaker, Ticket
from tests.guard.guard_helpers import SETTINGS
from tests.support.clock import FakeClock

BROKEN = st.one_of(
    st.sampled_from(["unavailable", "unknown", "", "abc", "nan", "inf", None, "150", "-3"]),
    st.floats(allow_nan=True, allow_infinity=True),
)
PLAUSIBLE = {
    "grid_power": st.floats(min_value=-4000, max_value=6000),
    # Values at the minimum (20 %) and the restart threshold (22 %) included.
    "soc": st.floats(min_value=0, max_value=100) | st.sampled_from([19.9, 20.0, 21.9, 22.0]),
    "export_today": st.floats(min_value=0, max_value=12),
}
# Enough follow-up decisions per step for fail -> stop -> restart chains.
MAX_ROUNDS = 4


class GuardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(threshold=5, reset_after_s=60.0, clock=self.clock)
        self.state = GuardState()
        t = self.clock()
        self.readings = Readings(Sample("0", t), Sample("80", t), Sample("1.0", t))
        self.in_flight: tuple[Action, Ticket] | None = None
        self.works = True  # the simulated actuator does what it is told
        self.slow = False  # actions stay in flight until a rule finishes them
        self.physically_on = False  # what the hardware really does
        self.foreign: list[Ticket] = []

    @initialize(known_off=st.booleans())
    def boot(self, known_off: bool) -> None:
        # At start-up the guard does not know the actuator (and stops it);
        # half the runs skip that to spend their steps on discharges.
        if known_off:
            self.state = GuardState(actuator=Actuator.OFF)
        self.step()

    # --- the world --------------------------------------------------------------

    @rule(grid=PLAUSIBLE["grid_power"], soc=PLAUSIBLE["soc"], exported=PLAUSIBLE["export_today"])
    def fresh_readings(self, grid: float, soc: float, exported: float) -> None:
        t = self.clock()
        self.readings = Readings(Sample(str(grid), t), Sample(str(soc), t), Sample(exported, t))
        self.state = note_grid_sample(self.state)
        self.step()

    @rule(name=st.sampled_from(sorted(PLAUSIBLE)), raw=BROKEN)
    def broken_reading(self, name: str, raw: object) -> None:
        sample = Sample(raw, self.clock())
        self.readings = Readings(
            grid_power=sample if name == "grid_power" else self.readings.grid_power,
            soc=sample if name == "soc" else self.readings.soc,
            export_today=sample if name == "export_today" else self.readings.export_today,
        )
        if name == "grid_power":
            self.state = note_grid_sample(self.state)
        self.step()

    @rule(seconds=st.sampled_from([0.2, 1.0, 5.0, 31.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.step()

    @rule(
        power=st.none() | st.floats(min_value=0, max_value=8000),
        duration=st.none() | st.floats(min_value=0.1, max_value=120),
    )
    def start_requested(self, power: float | None, duration: float | None) -> None:
        self.state = request_start(self.state, power, duration, self.clock())
        self.step()

    @rule()
    def stop_requested(self) -> None:
        self.state = request_stop(self.state)
        self.step()

    @rule(works=st.booleans(), slow=st.booleans())
    def actuator_changes(self, works: bool, slow: bool) -> None:
        self.works, self.slow = works, slow
        self.step()

    @precondition(lambda self: self.in_flight is not None)
    @rule(left_on=st.booleans())
    def slow_action_finishes(self, left_on: bool) -> None:
        self.finish(left_on=left_on)
        self.step()

    @rule()
    def foreign_calls_fail(self) -> None:
        # Another path through the same breaker fails until it opens.
        for _ in range(self.breaker.threshold):
            ticket = self.breaker.acquire()
            if ticket is None:
                break
            self.breaker.failed(ticket, "foreign failure")
        self.step()

    @rule()
    def foreign_caller_tries(self) -> None:
        ticket = self.breaker.acquire()
        if ticket is not None:
            self.foreign.append(ticket)

    @precondition(lambda self: bool(self.foreign))
    @rule(ok=st.booleans())
    def foreign_caller_finishes(self, ok: bool) -> None:
        ticket = self.foreign.pop(0)
        if ok:
            self.breaker.succeeded(ticket)
        else:
            self.breaker.failed(ticket, "foreign failure")

    # --- the guard, as the app drives it -------------------------------------------

    def step(self) -> None:
        for _ in range(MAX_ROUNDS):
            now = self.clock()
            before = self.state
            breaker = self.breaker.snapshot()
            ev = evaluate_for(self.readings, SETTINGS, now)
            decision = decide(before, ev, breaker, SETTINGS, now)
            self.state = decision.state
            for action in decision.actions:
                self.check_action(action, before, ev, breaker)
            self.check_stops(before, ev, breaker, decision.actions, now)
            if not decision.actions:
                return
            self.launch(decision.actions[0])
            if self.in_flight is not None:
                if self.slow:
                    return
                self.finish(left_on=True)

    def launch(self, action: Action) -> None:
        if self.in_flight is not None:
            # Superseded by a stop: the app cancels the call in flight.
            old, old_ticket = self.in_flight
            assert action.kind is ActionKind.STOP
            self.breaker.cancelled(old_ticket)
            self.state = apply_result(
                self.state, old, Outcome.CANCELLED, None, SETTINGS, self.clock()
            )
            self.physically_on = True  # worst case: it landed
            self.in_flight = None
        ticket = self.breaker.acquire(force=action.kind is ActionKind.STOP)
        if ticket is None:
            self.state = apply_result(
                self.state, action, Outcome.REFUSED, None, SETTINGS, self.clock()
            )
            return
        self.in_flight = (action, ticket)

    def finish(self, *, left_on: bool) -> None:
        assert self.in_flight is not None
        action, ticket = self.in_flight
        self.in_flight = None
        if self.works:
            self.physically_on = action.kind is not ActionKind.STOP
            self.breaker.succeeded(ticket)
        else:
            if action.kind is ActionKind.START:
                self.physically_on = self.physically_on or left_on  # may half-happen
            self.breaker.failed(ticket, "scripted failure")
        outcome = Outcome.OK if self.works else Outcome.FAILED
        self.state = apply_result(self.state, action, outcome, None, SETTINGS, self.clock())

    # --- invariants ---------------------------------------------------------------

    def check_action(self, action, before, ev, breaker) -> None:
        assert 0 <= action.power_w <= SETTINGS.max_discharge_w
        increase = action.kind is ActionKind.START or (
            action.kind is ActionKind.SET_POWER and action.power_w > before.power_w
        )
        if not increase:
            return
        assert ev.ok, "start or power increase on stale/invalid data"
        assert breaker.can_attempt, "start or power increase with the breaker open"
        assert breaker.state is not BreakerState.OPEN
        assert before.request is not None
        assert ev.soc_pct is not None
        assert ev.soc_pct > SETTINGS.min_soc_pct
        if action.kind is ActionKind.START:
            assert ev.soc_pct >= SETTINGS.min_soc_pct + SETTINGS.soc_hysteresis_pct
        assert ev.energy_headroom_kwh is not None
        assert ev.energy_headroom_kwh > 0
        assert action.power_w >= SETTINGS.min_discharge_w

    def check_stops(self, before, ev, breaker, actions, now) -> None:
        """Every path to a bad condition while discharging issues a stop."""
        pending = before.pending
        if pending is not None and pending.kind is ActionKind.STOP:
            return  # a stop is already on its way
        discharging = before.actuator is Actuator.ON or pending is not None
        soc_low = ev.soc_pct is not None and ev.soc_pct <= SETTINGS.min_soc_pct
        cap = ev.energy_headroom_kwh is not None and ev.energy_headroom_kwh <= 0
        no_room = (
            ev.power_headroom_w is not None
            and before.actuator is Actuator.ON
            and before.power_basis_w + ev.power_headroom_w < SETTINGS.min_discharge_w
        )
        bad = not ev.ok or soc_low or cap or no_room or breaker.state is BreakerState.OPEN
        must_stop = (discharging and bad) or (
            before.actuator is Actuator.UNKNOWN
            and not (before.stop_failed is not None and now < before.hold_until)
        )
        if must_stop:
            assert [a.kind for a in actions] == [ActionKind.STOP], (
                f"no stop: actuator={before.actuator} ev.ok={ev.ok} "
                f"stale={[c.name for c in ev.stale]} invalid={[c.name for c in ev.invalid]}"
            )

    @invariant()
    def belief_off_means_off(self) -> None:
        # The guard may doubt (UNKNOWN) but never believe OFF while it runs.
        if self.state.actuator is Actuator.OFF and self.in_flight is None:
            assert not self.physically_on

    @invariant()
    def at_most_one_probe(self) -> None:
        tickets = list(self.foreign)
        if self.in_flight is not None:
            tickets.append(self.in_flight[1])
        assert sum(t.probe for t in tickets) <= 1

    @invariant()
    def unverified_stop_keeps_error(self) -> None:
        if self.state.stop_failed is not None:
            assert self.state.actuator is Actuator.UNKNOWN

    @invariant()
    def ok_readings_are_finite(self) -> None:
        ev = evaluate_for(self.readings, SETTINGS, self.clock())
        for check in ev.checks:
            if check.status is ReadingStatus.OK:
                assert check.value is not None
                assert math.isfinite(check.value)


GuardMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestGuardMachine = GuardMachine.TestCase


# Fixed paths through the same machine (and the same invariant checks), so
# the rarer ways into a bad state while discharging are always exercised.
def _discharging_machine() -> GuardMachine:
    machine = GuardMachine()
    machine.boot(known_off=True)
    machine.fresh_readings(grid=0.0, soc=80.0, exported=1.0)
    machine.start_requested(power=None, duration=None)
    assert machine.state.actuator is Actuator.ON
    return machine


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (lambda m: m.fresh_readings(grid=0.0, soc=15.0, exported=1.0), "SoC 15 %"),
        (lambda m: m.fresh_readings(grid=0.0, soc=80.0, exported=9.9), "daily export cap"),
        (lambda m: m.fresh_readings(grid=60000.0, soc=80.0, exported=1.0), "invalid reading"),
        (lambda m: m.fresh_readings(grid=6000.0, soc=80.0, exported=1.0), "no export headroom"),
        (lambda m: m.broken_reading("grid_power", "unavailable"), "stale data"),
        (lambda m: m.broken_reading("soc", "nan"), "invalid reading"),
        (lambda m: m.time_passes(31.0), "stale data"),
        (lambda m: m.foreign_calls_fail(), "circuit breaker open"),
        (lambda m: m.stop_requested(), "stop requested"),
    ],
)
def test_every_path_to_a_bad_state_while_discharging_stops(path, reason):
    machine = _discharging_machine()
    path(machine)
    assert machine.state.actuator is Actuator.OFF
    assert machine.state.last_action.startswith("stop (")
    assert reason in machine.state.last_action
    assert not machine.physically_on


def test_slow_start_superseded_by_a_stop_is_cancelled_then_stopped():
    machine = GuardMachine()
    machine.boot(known_off=True)
    machine.actuator_changes(works=True, slow=True)
    machine.start_requested(power=None, duration=None)
    assert machine.in_flight is not None
    assert machine.in_flight[0].kind is ActionKind.START
    machine.broken_reading("grid_power", "unavailable")
    assert machine.in_flight[0].kind is ActionKind.STOP
    assert machine.state.actuator is Actuator.UNKNOWN
    machine.slow_action_finishes(left_on=False)
    assert machine.state.actuator is Actuator.OFF
    assert not machine.physically_on
