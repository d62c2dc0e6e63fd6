from dataclasses import replace

import pytest

from gridwatch.guard.decisions import (
    Action,
    ActionKind,
    Actuator,
    DischargeRequest,
    GuardSettings,
    GuardState,
    Outcome,
    apply_result,
    decide,
    request_start,
    request_stop,
)
from gridwatch.guard.readings import GridSign
from tests.guard.guard_helpers import (
    CLOSED,
    HALF_OPEN,
    NOW,
    OPEN,
    SETTINGS,
    discharging,
    ev,
    idle,
    with_pending,
)


def only_action(decision):
    assert len(decision.actions) == 1
    return decision.actions[0]


# --- start ------------------------------------------------------------------


def test_start_with_fresh_valid_data_headroom_and_soc():
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(grid=-500.0), CLOSED, SETTINGS, NOW)
    action = only_action(decision)
    assert action.kind is ActionKind.START
    # Importing 500 W; limit 3000 minus 100 deadband: 3400 W of room.
    assert action.power_w == 3400.0
    assert action.cutoff_soc_pct == SETTINGS.min_soc_pct
    assert action.duration_min is None
    assert decision.state.pending == action


def test_start_honours_requested_power_and_duration():
    state = request_start(idle(), 1500.0, 30.0, NOW - 60.0)
    action = only_action(decide(state, ev(), CLOSED, SETTINGS, NOW))
    assert action.power_w == 1500.0
    assert action.duration_min == pytest.approx(29.0)


def test_start_never_above_max_discharge():
    settings = replace(SETTINGS, max_discharge_w=2000.0)
    state = request_start(idle(), 4000.0, None, NOW)
    action = only_action(decide(state, ev(now=NOW, settings=settings), CLOSED, settings, NOW))
    assert action.power_w == 2000.0


@pytest.mark.parametrize(
    ("evaluation", "breaker", "why"),
    [
        (ev(grid_at=NOW - 31), CLOSED, "grid power stale"),
        (ev(soc_at=None), CLOSED, "soc not yet received"),
        (ev(grid="unavailable"), CLOSED, "grid unavailable"),
        (ev(grid="garbage"), CLOSED, "grid invalid"),
        (ev(soc=150.0), CLOSED, "soc out of range"),
        (ev(soc=20.0), CLOSED, "soc at minimum"),
        (ev(soc=21.9), CLOSED, "soc inside hysteresis"),
        (ev(exported=9.5), CLOSED, "daily cap minus margin used"),
        (ev(grid=2850.0), CLOSED, "headroom below the minimum power"),
        (ev(), OPEN, "breaker open"),
        (ev(), replace(HALF_OPEN, can_attempt=False), "probe busy"),
    ],
)
def test_no_start_without_every_condition(evaluation, breaker, why):
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, evaluation, breaker, SETTINGS, NOW)
    assert decision.actions == (), why
    assert decision.state.pending is None


def test_half_open_breaker_admits_a_start_as_the_probe():
    state = request_start(idle(), None, None, NOW)
    assert only_action(decide(state, ev(), HALF_OPEN, SETTINGS, NOW)).kind is ActionKind.START


def test_no_start_without_request():
    assert decide(idle(), ev(), CLOSED, SETTINGS, NOW).actions == ()


def test_no_start_during_retry_hold_off():
    state = request_start(idle(hold_until=NOW + 1), None, None, NOW)
    assert decide(state, ev(), CLOSED, SETTINGS, NOW).actions == ()
    assert decide(state, ev(now=NOW + 1), CLOSED, SETTINGS, NOW + 1).actions != ()


def test_import_positive_sign_convention():
    settings = replace(SETTINGS, grid_sign=GridSign.IMPORT_POSITIVE)
    state = request_start(idle(), None, None, NOW)
    # +500 means importing 500 W here: same room as -500 export_positive.
    evaluation = ev(grid=500.0, settings=settings)
    assert evaluation.export_w == -500.0
    assert only_action(decide(state, evaluation, CLOSED, settings, NOW)).power_w == 3400.0


# --- while discharging ---------------------------------------------------------


@pytest.mark.parametrize(
    ("evaluation", "fragment"),
    [
        (ev(grid_at=NOW - 31), "stale data: grid_power"),
        (ev(grid="unavailable"), "stale data: grid_power"),
        (ev(soc="abc"), "invalid reading: soc"),
        (ev(exported=2000.0), "invalid reading: export_today"),
        (ev(soc=20.0), "SoC 20 % at minimum 20 %"),
        (ev(exported=9.6), "daily export cap reached"),
        # Discharging 2000 W and exporting 4950: target 50 W < 100 W minimum.
        (ev(grid=4950.0), "no export headroom"),
    ],
)
def test_discharge_stops(evaluation, fragment):
    decision = decide(discharging(), evaluation, CLOSED, SETTINGS, NOW)
    action = only_action(decision)
    assert action.kind is ActionKind.STOP
    assert fragment in action.reason


def test_breaker_open_while_discharging_stops():
    action = only_action(decide(discharging(), ev(), OPEN, SETTINGS, NOW))
    assert action.kind is ActionKind.STOP
    assert action.reason == "circuit breaker open"


def test_min_soc_ends_the_request_other_stops_pause_it():
    at_min = decide(discharging(), ev(soc=19.0), CLOSED, SETTINGS, NOW)
    assert at_min.state.request is None
    stale = decide(discharging(), ev(grid_at=NOW - 40), CLOSED, SETTINGS, NOW)
    assert stale.state.request is not None


def test_stop_request_stops():
    state = request_stop(discharging())
    action = only_action(decide(state, ev(), CLOSED, SETTINGS, NOW))
    assert action.kind is ActionKind.STOP
    assert action.reason == "stop requested"


def test_duration_elapsed_stops():
    state = request_start(discharging(), None, 10.0, NOW)
    state = replace(state, actuator=Actuator.ON, power_w=2000.0)
    # Steady export just under the band: nothing to do until the time is up.
    before = ev(grid=2850.0, now=NOW + 599, at=NOW + 599)
    assert decide(state, before, CLOSED, SETTINGS, NOW + 599).actions == ()
    after = ev(grid=2850.0, now=NOW + 600, at=NOW + 600)
    action = only_action(decide(state, after, CLOSED, SETTINGS, NOW + 600))
    assert action.kind is ActionKind.STOP
    assert action.reason == "duration elapsed"


@pytest.mark.parametrize(
    ("power", "grid", "expected"),
    [
        (2000.0, 3000.0, 1900.0),  # at the limit: down to limit - deadband
        (2000.0, 2950.0, 1950.0),  # inside the deadband: lower before crossing
        (3000.0, 5000.0, 900.0),  # far over: lower by the whole excess
    ],
)
def test_lowers_power_before_the_limit(power, grid, expected):
    action = only_action(decide(discharging(power), ev(grid=grid), CLOSED, SETTINGS, NOW))
    assert action.kind is ActionKind.SET_POWER
    assert action.power_w == expected


def test_lowering_power_is_not_blocked_by_a_busy_half_open_breaker():
    busy = replace(HALF_OPEN, can_attempt=False)
    action = only_action(decide(discharging(2000.0), ev(grid=3000.0), busy, SETTINGS, NOW))
    assert (action.kind, action.power_w) == (ActionKind.SET_POWER, 1900.0)


def test_raises_power_only_by_at_least_the_deadband():
    # Exporting 2850: target 2050, a 50 W step: not worth it.
    assert decide(discharging(2000.0), ev(grid=2850.0), CLOSED, SETTINGS, NOW).actions == ()
    # Exporting 2700: target 2200.
    action = only_action(decide(discharging(2000.0), ev(grid=2700.0), CLOSED, SETTINGS, NOW))
    assert (action.kind, action.power_w) == (ActionKind.SET_POWER, 2200.0)


def test_no_power_increase_when_breaker_cannot_attempt():
    busy = replace(HALF_OPEN, can_attempt=False)
    assert decide(discharging(2000.0), ev(grid=0.0), busy, SETTINGS, NOW).actions == ()


def test_raise_is_capped_by_the_requested_power():
    state = replace(discharging(1000.0), request=DischargeRequest(power_w=1200.0))
    action = only_action(decide(state, ev(grid=0.0), CLOSED, SETTINGS, NOW))
    assert action.power_w == 1200.0


def lowered(state, target, at):
    """Run the decision at ``at``; return (state, the SET_POWER it launched)."""
    decision = decide(state, ev(grid=target, now=at, at=at), CLOSED, SETTINGS, at)
    return decision.state, only_action(decision)


def test_a_reading_during_a_lowering_is_credited_with_the_lower_power():
    # Battery 3000 W, the house exports 900 W: 3900 W, 1000 W over the target.
    state, action = lowered(discharging(3000.0), 3900.0, NOW)
    assert (action.kind, action.power_w) == (ActionKind.SET_POWER, 2000.0)
    # The meter reports 2900 W before the read-back confirms: no raise back.
    after = ev(grid=2900.0, now=NOW + 0.5, at=NOW + 0.5)
    assert decide(state, after, CLOSED, SETTINGS, NOW + 0.5).actions == ()
    state = apply_result(state, action, Outcome.OK, None, SETTINGS, NOW + 1)
    for t in (NOW + 2, NOW + 7, NOW + 30):  # unsettled, then settled readings
        decision = decide(state, ev(grid=2900.0, now=t, at=t), CLOSED, SETTINGS, t)
        assert decision.actions == (), t
        state = decision.state


def test_a_pause_does_not_restart_above_what_the_house_left():
    # Battery 2000 W + house 900 W: 2900 W. SoC goes missing: stop.
    state = decide(discharging(2000.0), ev(grid=2900.0), CLOSED, SETTINGS, NOW).state
    decision = decide(state, ev(grid=2900.0, soc="unavailable"), CLOSED, SETTINGS, NOW)
    stop = only_action(decision)
    assert stop.kind is ActionKind.STOP
    # The meter reports during the stop, battery still in it.
    t = NOW + 0.5
    state = decide(
        decision.state, ev(grid=2900.0, soc="unavailable", now=t, at=t), CLOSED, SETTINGS, t
    ).state
    state = apply_result(state, stop, Outcome.OK, None, SETTINGS, NOW + 1)
    # SoC returns; the meter shows the house alone once the stop settled.
    for t in (NOW + 2, NOW + 7):
        decision = decide(state, ev(grid=900.0, now=t, at=t), CLOSED, SETTINGS, t)
        state = decision.state
    start = only_action(decision)
    assert (start.kind, start.power_w) == (ActionKind.START, 2000.0)


def test_no_raise_before_the_reading_reflects_the_last_change():
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(grid=900.0), CLOSED, SETTINGS, NOW)
    start = only_action(decision)
    assert start.power_w == 2000.0
    state = apply_result(decision.state, start, Outcome.OK, None, SETTINGS, NOW)
    # A meter one period behind: still no battery in the next readings.
    for t in (NOW + 1, NOW + 4.9):
        decision = decide(state, ev(grid=900.0, now=t, at=t), CLOSED, SETTINGS, t)
        assert decision.actions == (), t
        state = decision.state


def test_a_lower_setpoint_supersedes_a_raise_in_flight():
    state, raise_ = lowered(discharging(1000.0), 900.0, NOW)
    assert raise_.power_w == 3000.0  # 2000 W more fits
    # PV jumps while the raise is in flight: the meter shows 3500 W, more
    # than any battery power between 1000 and 3000 W explains.
    t = NOW + 0.5
    decision = decide(state, ev(grid=3500.0, now=t, at=t), CLOSED, SETTINGS, t)
    lower = only_action(decision)
    assert lower.kind is ActionKind.SET_POWER
    # Worst case: only 1000 W of battery in that reading, 2500 W from the
    # house; 3000 - 100 - 2500 leaves 400 W.
    assert lower.power_w == 400.0


def test_raises_move_by_a_bounded_step_and_wait_the_write_interval():
    settings = replace(SETTINGS, max_raise_step_w=500.0, min_write_interval_s=10.0)
    state = decide(discharging(1000.0), ev(grid=1000.0, settings=settings), CLOSED, settings, NOW)
    action = only_action(state)
    assert action.power_w == 1500.0
    state = apply_result(state.state, action, Outcome.OK, None, settings, NOW)
    t = NOW + 6  # settled, but within the write interval
    decision = decide(state, ev(grid=1500.0, now=t, at=t, settings=settings), CLOSED, settings, t)
    assert decision.actions == ()
    state = decision.state
    t = NOW + 10
    decision = decide(state, ev(grid=1501.0, now=t, at=t, settings=settings), CLOSED, settings, t)
    assert only_action(decision).power_w == 2000.0


def test_a_start_waits_out_the_request_debounce():
    settings = replace(SETTINGS, request_debounce_s=1.0)
    state = request_start(idle(), None, None, NOW)
    assert decide(state, ev(settings=settings), CLOSED, settings, NOW).actions == ()
    t = NOW + 1
    evaluation = ev(now=t, at=t, settings=settings)
    assert only_action(decide(state, evaluation, CLOSED, settings, t)).kind is ActionKind.START


def test_a_plant_that_ignores_two_changes_in_a_row_is_a_fault():
    state, raise_ = lowered(discharging(1000.0), 900.0, NOW)
    state = apply_result(state, raise_, Outcome.OK, None, SETTINGS, NOW)
    # The inverter stayed at 1000 W: the grid reading does not move. On
    # the grid alone one miss may be a cloud: the guard only stops.
    t = NOW + 6
    decision = decide(state, ev(grid=900.0, now=t, at=t), CLOSED, SETTINGS, t)
    stop = only_action(decision)
    assert (stop.kind, stop.reason) == (ActionKind.STOP, "plant response unclear")
    assert decision.failures == ()
    state = apply_result(decision.state, stop, Outcome.OK, None, SETTINGS, t)
    # Restart (after the hold) on a steady settled reading: ignored again.
    t = NOW + 12
    decision = decide(state, ev(grid=900.0, now=t, at=t), CLOSED, SETTINGS, t)
    start = only_action(decision)
    assert start.kind is ActionKind.START
    state = apply_result(decision.state, start, Outcome.OK, None, SETTINGS, t)
    t = NOW + 19
    decision = decide(state, ev(grid=900.0, now=t, at=t), CLOSED, SETTINGS, t)
    assert only_action(decision).kind is ActionKind.STOP
    assert decision.failures
    assert "did not follow" in decision.failures[0]
    assert "grid_sign" in decision.state.plant_error


def test_a_wrong_grid_sign_is_caught_by_the_first_start_and_stop():
    # The meter reports export positive, the guard was told import positive:
    # 1000 W of export reads as 1000 W of import.
    settings = replace(SETTINGS, grid_sign=GridSign.IMPORT_POSITIVE)
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(grid=1000.0, settings=settings), CLOSED, settings, NOW)
    start = only_action(decision)
    state = apply_result(decision.state, start, Outcome.OK, None, settings, NOW)
    # The battery adds its power to the export: the sensor goes UP by it.
    t = NOW + 6
    high = 1000.0 + start.power_w
    decision = decide(state, ev(grid=high, now=t, at=t, settings=settings), CLOSED, settings, t)
    stop = only_action(decision)
    assert stop.kind is ActionKind.STOP
    state = apply_result(decision.state, stop, Outcome.OK, None, settings, t)
    # ... and the stop brings it back DOWN: the second miss in a row.
    t = NOW + 12
    for at in (t, t + 1):
        decision = decide(
            state, ev(grid=1000.0, now=at, at=at, settings=settings), CLOSED, settings, at
        )
        state = decision.state
    start = only_action(decision)
    state = apply_result(state, start, Outcome.OK, None, settings, t + 1)
    t = NOW + 19
    decision = decide(state, ev(grid=high, now=t, at=t, settings=settings), CLOSED, settings, t)
    assert decision.failures
    assert "grid_sign" in decision.state.plant_error


def test_quantised_read_back_is_what_the_guard_believes():
    pending = Action(ActionKind.SET_POWER, 2, power_w=1950.0)
    state = with_pending(discharging(2000.0), pending)
    state = apply_result(state, pending, Outcome.OK, None, SETTINGS, NOW, read_w=1945.0)
    assert state.power_w == 1945.0


# --- pending actions and outcomes ------------------------------------------------


def test_no_raise_while_an_action_is_in_flight():
    pending = Action(ActionKind.SET_POWER, 7, power_w=2200.0)
    state = with_pending(discharging(2000.0), pending)
    assert decide(state, ev(grid=0.0), CLOSED, SETTINGS, NOW).actions == ()


def test_stop_supersedes_a_start_in_flight():
    start = Action(ActionKind.START, 3, power_w=2000.0)
    state = with_pending(request_start(idle(), None, None, NOW), start)
    action = only_action(decide(state, ev(grid="unavailable"), CLOSED, SETTINGS, NOW))
    assert action.kind is ActionKind.STOP
    assert action.seq == 4


def test_nothing_while_a_stop_is_in_flight():
    stop = Action(ActionKind.STOP, 3, reason="x")
    state = with_pending(replace(discharging(), actuator=Actuator.UNKNOWN), stop)
    assert decide(state, ev(grid="unavailable"), CLOSED, SETTINGS, NOW).actions == ()


def test_unknown_actuator_at_startup_is_stopped():
    action = only_action(decide(GuardState(), ev(), OPEN, SETTINGS, NOW))
    assert action.kind is ActionKind.STOP
    assert action.reason == "discharge state unknown: making sure it is off"


def test_verified_start_then_follow():
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(grid=0.0), CLOSED, SETTINGS, NOW)
    start = only_action(decision)
    state = apply_result(decision.state, start, Outcome.OK, None, SETTINGS, NOW)
    assert (state.actuator, state.power_w, state.pending) == (Actuator.ON, 2900.0, None)
    assert state.last_action == "start 2900 W (requested): verified"


def test_failed_start_stops_at_once_and_holds_off_restart():
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(), CLOSED, SETTINGS, NOW)
    state = apply_result(decision.state, decision.actions[0], Outcome.FAILED, "x", SETTINGS, NOW)
    assert state.actuator is Actuator.UNKNOWN
    assert state.actuator_error == "x"
    stop = only_action(decide(state, ev(), CLOSED, SETTINGS, NOW))
    assert stop.kind is ActionKind.STOP
    decision = decide(state, ev(), CLOSED, SETTINGS, NOW)
    state = apply_result(decision.state, stop, Outcome.OK, None, SETTINGS, NOW)
    assert state.actuator is Actuator.OFF
    assert state.actuator_error == "x"  # the start still has not worked
    assert decide(state, ev(), CLOSED, SETTINGS, NOW + 1).actions == ()
    restart = only_action(decide(state, ev(now=NOW + 5, at=NOW + 5), CLOSED, SETTINGS, NOW + 5))
    assert restart.kind is ActionKind.START


def test_failed_power_change_stops():
    pending = Action(ActionKind.SET_POWER, 2, power_w=2500.0)
    state = with_pending(discharging(2000.0), pending)
    state = apply_result(state, pending, Outcome.FAILED, "read back 2000", SETTINGS, NOW)
    assert only_action(decide(state, ev(), CLOSED, SETTINGS, NOW)).kind is ActionKind.STOP


def test_unverified_stop_is_kept_as_error_and_retried():
    stop = Action(ActionKind.STOP, 2, reason="stale data: grid_power")
    state = with_pending(discharging(), stop)
    state = apply_result(state, stop, Outcome.FAILED, "read back 'on'", SETTINGS, NOW)
    assert state.stop_failed == "read back 'on'"
    assert state.actuator is Actuator.UNKNOWN
    # Held off briefly, then retried, breaker open or not, request or not.
    assert decide(state, ev(), OPEN, SETTINGS, NOW + 4).actions == ()
    retry = only_action(decide(state, ev(), OPEN, SETTINGS, NOW + 5))
    assert retry.kind is ActionKind.STOP
    state = apply_result(
        decide(state, ev(), OPEN, SETTINGS, NOW + 5).state, retry, Outcome.OK, None, SETTINGS, NOW
    )
    assert state.stop_failed is None
    assert state.actuator is Actuator.OFF


def test_refused_start_changes_nothing_but_pending():
    start = Action(ActionKind.START, 1, power_w=1000.0)
    state = with_pending(request_start(idle(), None, None, NOW), start)
    after = apply_result(state, start, Outcome.REFUSED, None, SETTINGS, NOW)
    assert (after.actuator, after.pending, after.actuator_error) == (Actuator.OFF, None, None)


def test_outcome_of_a_superseded_action_keeps_the_stop_pending():
    start = Action(ActionKind.START, 1, power_w=1000.0)
    stop = Action(ActionKind.STOP, 2, reason="stale")
    state = with_pending(idle(), stop)
    after = apply_result(state, start, Outcome.CANCELLED, None, SETTINGS, NOW)
    assert after.pending == stop
    assert after.actuator is Actuator.UNKNOWN


def test_cancelled_power_change_assumes_the_higher_power():
    pending = Action(ActionKind.SET_POWER, 2, power_w=2500.0)
    state = with_pending(discharging(2000.0), pending)
    after = apply_result(state, pending, Outcome.CANCELLED, None, SETTINGS, NOW)
    assert (after.actuator, after.power_w) == (Actuator.ON, 2500.0)


def test_settings_reject_negative_or_non_finite():
    with pytest.raises(ValueError, match="deadband_w"):
        GuardSettings(export_limit_w=1, daily_cap_kwh=1, max_discharge_w=1, deadband_w=-1)
    with pytest.raises(ValueError, match="export_limit_w"):
        GuardSettings(export_limit_w=float("nan"), daily_cap_kwh=1, max_discharge_w=1)


def test_describe():
    assert Action(ActionKind.START, 1, power_w=1234.4, reason="requested").describe() == (
        "start 1234 W (requested)"
    )
    assert Action(ActionKind.STOP, 1).describe() == "stop"


def test_a_start_the_plant_follows_ends_a_stop_it_ignored_before():
    # The plant ignored a stop (critical); it recovered, and the start after
    # the hold shows on the grid: the discharge runs under control again,
    # so the failed stop is over (not "discharge: unknown" for good).
    from gridwatch.guard.estimate import Expectation

    state = discharging(
        2000.0,
        stop_failed="the plant did not follow stop",
        plant_error="the plant did not follow stop",
        expect=Expectation(2000.0, 1000.0, NOW, "start 2000 W", power_before_w=0.0),
        settle_until=NOW,
    )
    t = NOW + 1
    decision = decide(state, ev(grid=3000.0, now=t, at=t), CLOSED, SETTINGS, t)
    assert decision.state.stop_failed is None
    assert decision.state.plant_error is None


def test_a_start_withdrawn_at_once_is_no_stop_the_plant_ignored():
    # The request is switched off right after the start (a quick toggle, the
    # demo's story): the battery never discharged and the grid never rose, so
    # the grid not falling afterwards is no failed stop.
    state = request_start(idle(), None, None, NOW)
    decision = decide(state, ev(grid=1000.0), CLOSED, SETTINGS, NOW)
    start = only_action(decision)
    assert start.kind is ActionKind.START
    state = apply_result(decision.state, start, Outcome.OK, None, SETTINGS, NOW)
    t = NOW + 0.01
    decision = decide(request_stop(state), ev(grid=1000.0, now=t, at=t), CLOSED, SETTINGS, t)
    stop = only_action(decision)
    assert stop.kind is ActionKind.STOP
    state = apply_result(decision.state, stop, Outcome.OK, None, SETTINGS, t)
    for step in range(1, 20):
        at = t + step
        decision = decide(state, ev(grid=1000.0, now=at, at=at), CLOSED, SETTINGS, at)
        state = decision.state
        assert not decision.failures, decision.failures
    assert state.plant_error is None
    assert state.stop_failed is None
