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


def test_an_unavailable_enable_is_not_a_change():
    assert check(discharging(2000.0), None, None)[1] is None
