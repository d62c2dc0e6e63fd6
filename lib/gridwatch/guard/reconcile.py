"""Reconciles the guard's belief with what the actuator entities show.

Pure. A change the guard did not command (a late-landing call, an entity
that reported optimistically and reverted, another automation, a stuck
inverter flipping back) makes the belief unknown, which leads to a verified
stop; only a change to a lower power while a request is active is safe
enough to adopt.
"""

from __future__ import annotations

from dataclasses import replace

from gridwatch.guard.decisions import Actuator, GuardSettings, GuardState, mark_unknown
from gridwatch.guard.state import PLANT_HOLD_S

_MISSING = "entity is missing or unavailable"


def reconcile(
    state: GuardState,
    enable_on: bool | None,
    power_w: float | None,
    *,
    tolerance_w: float,
    settings: GuardSettings,
    now: float,
) -> tuple[GuardState, str | None]:
    """Compare the belief with the entities (when no action is in flight).

    Args:
        state: the guard state.
        enable_on: the enable entity (``None``: missing or unavailable).
        power_w: the power entity (``None``: missing or unavailable).
        tolerance_w: a power this close to the belief matches.
        settings: for the widened estimate and the retry hold-off.
        now: monotonic time.

    Returns:
        The new state and what did not match (``None`` if all did); the
        caller counts it as an actuator failure.
    """
    if state.pending is not None:
        return state, None  # the action's own read-back judges it
    missing = [name for name, value in (("switch", enable_on), ("power", power_w)) if value is None]
    if missing:
        # Gone from HA (a reloaded or removed integration) or unavailable:
        # the guard cannot see, nor verify, what the inverter does.
        problem = f"the discharge {' and '.join(missing)} {_MISSING}"
        if state.actuator is Actuator.ON:
            return mark_unknown(state, problem, settings), problem
        # Off: nothing to stop, but not healthy either (and not a breaker
        # failure each tick).
        return replace(state, actuator_error=problem), None
    if state.actuator_error is not None and state.actuator_error.endswith(_MISSING):
        state = replace(state, actuator_error=None)  # back
    if state.actuator is Actuator.OFF and enable_on:
        # It runs at what the power entity shows: the stop that follows is
        # then checked against the plant like any other.
        running = max(power_w or 0.0, 0.0)
        if now < state.settle_until:
            # Back on right after a verified stop: a command that landed
            # late (a cancelled start's retry), an optimistic entity
            # reverting, an inverter undoing the stop. A failed stop until a
            # stop is verified again. The first time it is stopped again at
            # once: waiting would leave the battery running. If it keeps
            # coming back, each retry waits the hold, sparing an actuator
            # that undoes every stop (the breaker counts each).
            problem = "the discharge switched back on right after the guard stopped it"
            again = now - state.switched_back_at < PLANT_HOLD_S
            state = replace(
                state,
                stop_failed=problem,
                switched_back_at=now,
                hold_until=now + settings.retry_after_s if again else now,
            )
        else:
            problem = "the discharge was switched on, not by the guard"
        return mark_unknown(replace(state, power_w=running), problem, settings), problem
    if state.actuator is not Actuator.ON:
        return state, None
    if not enable_on:
        problem = "the discharge was switched off, not by the guard"
        return mark_unknown(state, problem, settings), problem
    if power_w is None or abs(power_w - state.power_w) <= tolerance_w:
        return state, None
    if power_w < state.power_w and state.request is not None:
        # Lower is safe: adopt it (the guard raises again if there is room),
        # but report it: an inverter that keeps undoing changes is broken.
        problem = (
            f"the discharge power went down to {power_w:.0f} W, not by the guard "
            f"(it set {state.power_w:.0f} W); following it"
        )
        return replace(state, power_w=max(power_w, 0.0), actuator_error=problem), problem
    problem = (
        f"the discharge power changed to {power_w:.0f} W, not by the guard "
        f"(it set {state.power_w:.0f} W)"
    )
    return mark_unknown(state, problem, settings), problem
