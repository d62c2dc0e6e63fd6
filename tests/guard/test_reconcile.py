"""Belief against what the actuator entities show."""

from dataclasses import replace

from gridwatch.guard.decisions import Action, ActionKind, Actuator
from gridwatch.guard.reconcile import reconcile
from tests.guard.guard_helpers import NOW, SETTINGS, discharging, idle


def check(state, enable, power, now=NOW):
    return reconcile(state, enable, power, tolerance_w=1.0, settings=SETTINGS, now=now)


def test_matching_entities_change_nothing():
    state = discharging(2000.0)
    assert check(state, True, 2000.4) == (state, None)
    assert check(idle(), False, 0.0) == (idle(), None)


def test_switched_on_by_someone_else_is_unknown_and_runs_at_the_shown_power():
    state, problem = check(idle(), True, 4000.0)
    assert state.actuator is Actuator.UNKNOWN
    assert state.power_w == 4000.0
    assert "not by the guard" in problem
    assert state.stop_failed is None


def test_back_on_right_after_a_verified_stop_is_a_failed_stop():
    just_stopped = idle(settle_until=NOW + 3)
    state, problem = check(just_stopped, True, 2000.0)
    assert state.actuator is Actuator.UNKNOWN
    assert state.stop_failed == problem
    assert "right after" in problem


def test_the_first_switch_back_is_stopped_again_at_once_a_repeat_waits_the_hold():
    just_stopped = idle(settle_until=NOW + 3)
    first, _ = check(just_stopped, True, 2000.0)
    assert first.hold_until <= NOW  # a late-landing turn_on: stop it now
    # Stopped and verified again; back on within the minute: the stop does
    # not hold, so the retries wait (sparing an actuator that undoes each).
    restopped = replace(first, actuator=Actuator.OFF, settle_until=NOW + 13)
    second, _ = check(restopped, True, 2000.0, now=NOW + 10)
    assert second.hold_until == NOW + 10 + SETTINGS.retry_after_s
    # Long after, a new one-off is stopped at once again.
    later = replace(restopped, settle_until=NOW + 603)
    third, _ = check(later, True, 2000.0, now=NOW + 600)
    assert third.hold_until <= NOW + 600


def test_a_switch_back_leaves_no_plant_error_so_a_verified_stop_clears_it():
    # Not a plant ignoring a stop (the entity shows what happened): once
    # the stop after it is verified, nothing is left failed for ever.
    state, _ = check(idle(settle_until=NOW + 3), True, 2000.0)
    assert state.plant_error is None


def test_switched_off_by_someone_else_is_unknown():
    state, problem = check(discharging(2000.0), False, 2000.0)
    assert state.actuator is Actuator.UNKNOWN
    assert "switched off" in problem


def test_a_lower_power_with_a_request_is_followed_but_reported():
    state, problem = check(discharging(2000.0), True, 1500.0)
    assert (state.actuator, state.power_w) == (Actuator.ON, 1500.0)
    assert problem is not None


def test_a_higher_power_is_unknown():
    state, problem = check(discharging(2000.0), True, 5000.0)
    assert state.actuator is Actuator.UNKNOWN
    assert "5000" in problem


def test_nothing_is_judged_while_an_action_is_in_flight():
    state = replace(discharging(2000.0), pending=Action(ActionKind.SET_POWER, 1, power_w=900))
    assert check(state, True, 900.0) == (state, None)


def test_missing_actuator_entities_while_discharging_make_the_belief_unknown():
    state, problem = check(discharging(2000.0), None, 2000.0)
    assert state.actuator is Actuator.UNKNOWN
    assert "switch entity is missing" in problem


def test_missing_actuator_entities_while_off_are_an_error_not_a_breaker_failure():
    state, problem = check(idle(), False, None)
    assert problem is None
    assert state.actuator is Actuator.OFF
    assert "power entity is missing" in (state.actuator_error or "")
    # Back again: the error clears by itself.
    back, _ = check(state, False, 0.0)
    assert back.actuator_error is None
