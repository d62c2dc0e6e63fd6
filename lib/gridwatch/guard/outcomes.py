"""Folds the outcome of an action, or a change seen on the actuators, into
the export guard's state. Pure.
"""

from __future__ import annotations

import math
from dataclasses import replace

from gridwatch.guard.estimate import Expectation, widen
from gridwatch.guard.state import (
    Action,
    ActionKind,
    Actuator,
    GuardSettings,
    GuardState,
    Outcome,
)


def apply_result(
    state: GuardState,
    action: Action,
    outcome: Outcome,
    reason: str | None,
    settings: GuardSettings,
    now: float,
    read_w: float | None = None,
) -> GuardState:
    """Fold an action's outcome into the state.

    Args:
        state: the current state.
        action: the action performed.
        outcome: how it went.
        reason: why it failed (for FAILED).
        settings: for the retry hold-off, settle time and lease.
        now: monotonic time.
        read_w: the power read back (quantised inverters round); the
            commanded one when ``None``.

    Returns:
        The new state. An outcome of a superseded action only updates the
        belief about the actuator; the action now in flight stays pending.
    """
    current = state.pending is not None and state.pending.seq == action.seq
    pending = None if current else state.pending
    # Until the plant shows it, which power flows is uncertain again.
    settle = math.inf if pending is not None else now + settings.settle_s
    est = replace(state.estimate, settled=False)
    state = replace(state, pending=pending, settle_until=max(settle, now), estimate=est)
    text = action.describe()
    why = reason or "not verified"
    if action.kind is ActionKind.STOP:
        if outcome is Outcome.OK:
            unchecked = state.expect
            if current and unchecked is not None and unchecked.delta_w > 0:
                # A start or raise not yet checked (the request withdrawn
                # within the settle time): the grid answers for the net
                # change since the reading it was decided on, not for a
                # discharge it may never have seen.
                expect = _net_stop_expectation(unchecked, state, action, settings)
            else:
                expect = _expectation(state, action, 0.0, settings) if current else None
                expect = expect or unchecked  # one not yet checked still counts
            # A stop the plant ignored stays failed until the plant follows
            # a change again (a response check passes).
            still_failed = state.plant_error is not None
            # The switch reads off; while the supervisor's failed stop
            # stands the plant has not shown it: not "verified".
            done = (
                "switched off, the plant has not shown it yet"
                if state.supervision.alarm
                else "verified"
            )
            return replace(
                state,
                actuator=Actuator.OFF,
                power_w=0.0,
                expect=expect,
                discharge_since=None,
                lease_renew_at=math.inf,
                # A verified stop clears a stop failure; a failed start or
                # power change stays reported until one of those works.
                actuator_error=None if state.stop_failed else state.actuator_error,
                stop_failed=state.stop_failed if still_failed else None,
                last_action=f"{text}: {done}",
                last_stop_reason=action.reason,
            )
        # A stop is never refused (it bypasses the breaker); failed or
        # cancelled, the discharge may still be running.
        return replace(
            state,
            actuator=Actuator.UNKNOWN,
            estimate=widen(state.estimate, settings.max_discharge_w),
            actuator_error=why if outcome is Outcome.FAILED else state.actuator_error,
            stop_failed=why if outcome is Outcome.FAILED else "stop cancelled",
            hold_until=now + settings.retry_after_s,
            last_action=f"{text}: {outcome.value}" + (f": {why}" if reason else ""),
        )
    if action.kind is ActionKind.RENEW:
        if outcome is Outcome.OK:
            renew = now + lease_s(settings) / 2
            return replace(state, lease_renew_at=renew, last_action=f"{text}: verified")
        if outcome in (Outcome.REFUSED, Outcome.CANCELLED):
            return state  # renewed at the next decision
    if outcome is Outcome.OK:
        landed = action.power_w if read_w is None else read_w
        raised = landed > state.believed_w
        started = action.kind is ActionKind.START
        return replace(
            state,
            actuator=Actuator.ON,
            power_w=landed,
            estimate=widen(state.estimate, landed),
            expect=_expectation(state, action, landed, settings) if current else None,
            last_raise_at=now if raised else state.last_raise_at,
            discharge_since=now if started else state.discharge_since,
            lease_renew_at=now + lease_s(settings) / 2 if started else state.lease_renew_at,
            actuator_error=None,
            last_action=f"{text}: verified",
        )
    if outcome is Outcome.REFUSED:
        # Nothing was called: the actuator is as it was.
        return replace(state, last_action=f"{text}: refused (breaker open)")
    if outcome is Outcome.CANCELLED:
        if action.kind is ActionKind.SET_POWER and state.actuator is Actuator.ON:
            # It may or may not have landed: believe the higher of the two.
            return replace(
                state, power_w=max(state.power_w, action.power_w), last_action=f"{text}: cancelled"
            )
        return replace(state, actuator=Actuator.UNKNOWN, last_action=f"{text}: cancelled")
    # FAILED: a start may have half-happened, a power change may not have:
    # either way the discharge is no longer under control, so it is stopped.
    return replace(
        state,
        actuator=Actuator.UNKNOWN,
        actuator_error=why,
        hold_until=now + settings.retry_after_s,
        last_action=f"{text}: failed: {why}",
    )


def mark_unknown(state: GuardState, problem: str, settings: GuardSettings) -> GuardState:
    """The actuators show something the guard did not command: its belief
    is unknown, so the next :func:`decide` stops the discharge (verified)."""
    est = replace(widen(state.estimate, 0.0, settings.max_discharge_w), settled=False)
    return replace(state, actuator=Actuator.UNKNOWN, estimate=est, actuator_error=problem)


# --- internals ----------------------------------------------------------------


def lease_s(settings: GuardSettings) -> float:
    return math.inf if settings.lease_min is None else settings.lease_min * 60.0


def _net_stop_expectation(
    unchecked: Expectation, state: GuardState, action: Action, settings: GuardSettings
) -> Expectation | None:
    delta = -unchecked.power_before_w
    if abs(delta) < settings.response_min_w:
        return None  # a start withdrawn at once: nothing the grid must show
    return Expectation(
        delta,
        unchecked.export_before_w,
        state.settle_until,
        action.describe(),
        unchecked.battery_before_w,
        unchecked.power_before_w,
    )


def _expectation(
    state: GuardState, action: Action, landed_w: float, settings: GuardSettings
) -> Expectation | None:
    if action.kind is ActionKind.START:
        before = 0.0
    elif action.kind is ActionKind.STOP and state.actuator is Actuator.UNKNOWN:
        if state.plant_error is None or state.stop_failed is not None:
            # Unknown (start-up, a switch by someone else the stop may have
            # beaten, a retry after a stop the plant ignored): nothing sure
            # to expect. Repeating a failed check would turn one false
            # alarm into a lasting one.
            return None
        before = state.power_w  # after a change it ignored: the power it ran at
    else:
        before = state.believed_w
    delta = landed_w - before
    if abs(delta) < settings.response_min_w or action.export_w is None:
        return None
    return Expectation(
        delta,
        action.export_w,
        state.settle_until,
        action.describe(),
        action.battery_w,
        before,
    )
