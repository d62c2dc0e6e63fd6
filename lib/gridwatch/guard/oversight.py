"""Puts the controller's decision before the safety supervisor: what the
guard has published and the measurements go in, the supervisor's verdict
(a veto, an order of its own) comes out as the decision to perform.

Pure; one place for the app and the bench (the decision per reading is
the controller's rules and the supervisor's together).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gridwatch.guard import decisions as guard
from gridwatch.guard import supervisor
from gridwatch.guard.readings import Evaluation
from gridwatch.guard.state import Actuator, Decision, GuardSettings, GuardState, Outcome
from gridwatch.guard.supervisor import Limits, Measured, Order, Proposal, Published, Watch


def limits_of(settings: GuardSettings) -> Limits:
    """The supervisor's limits, from the guard's settings."""
    return Limits(
        settings.export_limit_w,
        settings.deadband_w,
        settings.min_discharge_w,
        settings.settle_s,
        settings.retry_after_s,
        settings.response_fraction,
        settings.response_min_w,
    )


def published_of(state: GuardState) -> Published:
    """What the guard has published about the discharge (its health
    entity's ``discharge`` and ``discharge_power_w``)."""
    on = state.actuator is Actuator.ON
    unsure = state.actuator is Actuator.UNKNOWN
    power = state.power_w if on or unsure else 0.0
    return Published(on, power, state.pending is not None, unsure)


@dataclass(frozen=True)
class Overseen:
    """The decision to perform, the supervisor's memory, and its order (to
    log), if it gave one."""

    decision: Decision
    watch: Watch
    order: Order | None = None


def oversee(
    before: GuardState,
    decision: Decision,
    ev: Evaluation,
    watch: Watch,
    *,
    enable_on: bool | None,
    limits: Limits,
    settings: GuardSettings,
    now: float,
) -> Overseen:
    """The supervisor's word on the controller's decision.

    Args:
        before: the state before the decision (what the guard published).
        decision: the controller's decision.
        ev: the readings' evaluation (the measurements).
        watch: the supervisor's memory.
        enable_on: the discharge enable entity as last seen.
        limits: the supervisor's limits.
        settings: the guard's settings (to fold a vetoed action back).
        now: monotonic time.

    Returns:
        The decision to perform: the controller's, or without its action
        (vetoed), or with the supervisor's order instead.
    """
    measured = Measured(ev.export_w, ev.grid_at, ev.battery_w, ev.battery_at, enable_on)
    proposal = guard.proposal_of(before, decision)
    verdict = supervisor.judge(watch, measured, published_of(before), proposal, limits, now)
    state, actions = decision.state, decision.actions
    failures = decision.failures + ((verdict.missed,) if verdict.missed else ())
    overruled = verdict.veto or (verdict.order is not None and proposal is not Proposal.STOP)
    if actions and overruled:
        why = "refused by the safety supervisor"
        state = guard.apply_result(state, actions[0], Outcome.REFUSED, why, settings, now)
        actions = ()
    order = None
    if verdict.order is not None and not actions:
        order = verdict.order
        ordered = guard.supervised(state, order, ev.export_w)
        state, actions = ordered.state, ordered.actions
    if state.supervision != verdict.supervision:
        state = replace(state, supervision=verdict.supervision)
    return Overseen(Decision(state, actions, failures), verdict.watch, order)
