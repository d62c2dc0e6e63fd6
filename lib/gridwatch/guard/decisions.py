"""The export guard's decisions: when to start, re-set or stop a battery
discharge so grid export stays under its limits, failing safe.

Pure functions of (state, evaluation, breaker snapshot, settings, now) that
return a new :class:`GuardState` and the actions to perform; the app performs
them (each through the verified call and the breaker) and feeds the outcome
back with :func:`apply_result`.

The export the battery does not cause is estimated from measurements
(:mod:`gridwatch.guard.estimate`); the target is the limit minus the deadband
minus that estimate. Rules, in the order they are applied:

- A discharge (on, being started, or being changed) is stopped when the
  request ended, a steering reading is stale or invalid, SoC is at the
  minimum, the daily cap or the power headroom is used up, the breaker is
  open, or the plant did not follow the last change.
- An actuator whose state is unknown (at start-up, after a failed start or
  power change, after a failed stop, after a change the guard did not make)
  is stopped; a failed stop is retried every ``retry_after_s``.
- Lowering is done at once, even over a start or raise in flight (it
  supersedes it), when the target is at least ``min_change_w`` lower or the
  export is over the limit.
- A start or raise needs a *settled* reading (no change in flight, newer
  than the last change plus ``settle_s``), fresh valid data, SoC above the
  minimum plus hysteresis, headroom, a breaker that admits a call, a request
  standing for ``request_debounce_s``, and ``min_write_interval_s`` since the
  last raise; it moves by at most ``max_raise_step_w``.
- A request stays active until stopped, its duration ends, or SoC reaches
  the minimum; while active the guard pauses and resumes with the headroom.
- With a duration control (``lease_min`` set), every start sets a short
  lease and a renewal extends it, so a guard that dies leaves at most one
  lease of discharge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gridwatch.guard.estimate import fold_reading, response_problem, widen
from gridwatch.guard.frozen import evolve
from gridwatch.guard.outcomes import apply_result, mark_unknown
from gridwatch.guard.readings import Evaluation
from gridwatch.guard.state import (
    PLANT_HOLD_S,
    Action,
    ActionKind,
    Actuator,
    Decision,
    DischargeRequest,
    GuardSettings,
    GuardState,
    Outcome,
    evaluate_for,
)
from gridwatch.guard.supervisor import Order, OrderKind, Proposal
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState

# Meters round and jitter by a few watts: readings this close count as
# steady and explained whatever the deadband (with deadband_w 0 no reading
# would ever be steady, and no start or raise would follow).
METER_NOISE_W = 20.0

# Re-exported: callers import the guard's vocabulary from here too.
__all__ = [
    "PLANT_HOLD_S",
    "Action",
    "ActionKind",
    "Actuator",
    "Decision",
    "DischargeRequest",
    "GuardSettings",
    "GuardState",
    "Miss",
    "Outcome",
    "apply_result",
    "decide",
    "evaluate_for",
    "mark_unknown",
    "next_due",
    "note_grid_sample",
    "proposal_of",
    "request_start",
    "request_stop",
    "supervised",
]


def request_start(
    state: GuardState,
    power_w: float | None,
    duration_min: float | None,
    now: float,
    now_wall: datetime | None = None,
) -> GuardState:
    """Record a start request (replacing an active one).

    Args:
        state: the current state.
        power_w: wanted power (W), or ``None`` for the most allowed.
        duration_min: minutes to discharge, or ``None`` until stopped.
        now: monotonic time.
        now_wall: wall-clock now, to date the end for publishing.

    Returns:
        The new state; the next :func:`decide` acts on it.
    """
    until = None if duration_min is None else now + duration_min * 60.0
    until_wall = None
    if duration_min is not None and now_wall is not None:
        until_wall = now_wall + timedelta(minutes=duration_min)
    # A repeated start keeps its debounce clock: only the first counts.
    since = now if state.request is None else state.request.since
    return replace(state, request=DischargeRequest(power_w, until, since, until_wall))


def request_stop(state: GuardState) -> GuardState:
    """Drop the active request; the next :func:`decide` stops the discharge."""
    return replace(state, request=None, last_stop_reason="stop requested")


@dataclass(frozen=True)
class Miss:
    """The plant did not follow a change.

    Attributes:
        text: what was commanded and what the measurements showed.
        hard: a fault (reported, counted by the breaker); else a strike in
            a disturbed window (the guard only stops, to be safe).
        wrong_way: the grid moved against the change: the likely cause is
            the grid sensor's sign, not a stop that failed.
    """

    text: str
    hard: bool
    wrong_way: bool = False


def note_grid_sample(
    state: GuardState, ev: Evaluation, settings: GuardSettings, now: float
) -> tuple[GuardState, Miss | None]:
    """Fold the grid reading into the estimate and run the plant-response
    check it is due for.

    A reading is folded when it arrives, and once more when the settle time
    has passed with no newer one: HA reports only changes, so a reading that
    stayed the same through the settle time is what the plant shows now.

    Args:
        state: the current state.
        ev: the evaluation holding the reading.
        settings: for the response check.
        now: monotonic time.

    Returns:
        The new state and, if the plant did not follow the last change, the miss.
    """
    est = state.estimate
    if ev.export_w is None or ev.grid_at is None:
        return state, None
    settled = state.pending is None and now >= state.settle_until
    if ev.grid_at == est.reading_at and (est.settled or not settled):
        return state, None
    pending = state.pending
    latest = state.believed_w
    if pending is not None:
        latest = 0.0 if pending.kind is ActionKind.STOP else pending.power_w
    est = fold_reading(
        est,
        ev.export_w,
        ev.grid_at,
        settled=settled,
        believed_w=state.believed_w,
        latest_w=latest,
        measured_w=_battery_since(ev, state.settle_until),
        tolerance_w=max(settings.deadband_w, METER_NOISE_W),
    )
    state = evolve(state, estimate=est)  # every reading: the cheap copy
    expect = state.expect
    if not settled or expect is None:
        return state, None
    # The next window starts clean.
    state = replace(state, estimate=replace(est, rose=False, fell=False), expect=None)
    measured = None
    battery = _battery_since(ev, expect.due)
    if expect.battery_before_w is not None and battery is not None:
        measured = battery - expect.battery_before_w
    verdict = response_problem(
        expect, ev.export_w, fraction=settings.response_fraction, measured_delta_w=measured
    )
    if verdict.problem is None:
        # The plant follows again: a stop it ignored before is over too
        # (also when this was a start: the discharge runs under control).
        recovered = state.actuator is Actuator.OFF or state.plant_error is not None
        stop_failed = None if recovered else state.stop_failed
        return replace(
            state, plant_error=None, wrong_way=False, stop_failed=stop_failed, strikes=0
        ), None
    # On the grid alone a PV or load step in the window can mask a change:
    # one miss is a strike (the guard stops, to be safe); two in a row --
    # a start and the stop after it, say -- are a fault. A wrong sign or a
    # stuck inverter misses every time; a cloud rarely twice in a row. A
    # battery reading newer than the change makes one miss a fault.
    strikes = state.strikes + 1
    state = replace(state, strikes=strikes)
    return state, Miss(verdict.problem, measured is not None or strikes >= 2, verdict.wrong_way)


def _battery_since(ev: Evaluation, since: float) -> float | None:
    """The measured battery power, if its reading arrived at or after
    ``since``: an older one (a sensor polled every few seconds, or late)
    shows the battery before the change it would be judged against."""
    if ev.battery_at is None or ev.battery_at < since:
        return None
    return ev.battery_w


def decide(
    state: GuardState,
    ev: Evaluation,
    breaker: BreakerSnapshot,
    settings: GuardSettings,
    now: float,
) -> Decision:
    """The guard's one decision.

    Args:
        state: what the guard remembers.
        ev: the readings' evaluation at ``now``.
        breaker: the actuator breaker's state now.
        settings: limits.
        now: monotonic time.

    Returns:
        The new state and at most one action. A STOP, or a lower START /
        SET_POWER, supersedes an action in flight (the app cancels it).
    """
    state = _expire_request(state, now)
    expect = state.expect
    state, miss = note_grid_sample(state, ev, settings, now)
    if miss is not None and expect is not None:
        if not miss.hard:
            # Perhaps masked by a PV or load step: stop to be safe, and
            # check again on the next change.
            state = replace(state, hold_until=now + settings.retry_after_s)
            if state.actuator is Actuator.OFF:
                return Decision(state)
            # Not checked itself: the same step would likely mask it too.
            return _stop(state, "plant response unclear")
        if miss.wrong_way and state.actuator is Actuator.OFF:
            # A stop that moved the grid the wrong way worked: the reading's
            # sign is wrong, not the stop. Off it stays; no start for a while.
            state = replace(
                state,
                plant_error=miss.text,
                wrong_way=True,
                hold_until=now + PLANT_HOLD_S,
            )
            return Decision(state, failures=(miss.text,))
        ignored_stop = state.actuator is Actuator.OFF
        state = replace(
            state,
            actuator=Actuator.UNKNOWN,
            # What the plant still does: the power before the change it
            # ignored (a stop it ignored leaves the battery running).
            power_w=max(state.power_w, expect.power_before_w),
            plant_error=miss.text,
            wrong_way=miss.wrong_way,
            # A stop the plant did not follow is a stop that did not work.
            stop_failed=miss.text if ignored_stop else state.stop_failed,
            hold_until=now + (settings.retry_after_s if ignored_stop else PLANT_HOLD_S),
        )
        stop = _stop(state, "plant did not follow", ev.export_w)
        return replace(stop, failures=(miss.text,))
    pending = state.pending
    if pending is not None and pending.kind is ActionKind.STOP:
        return Decision(state)

    if state.actuator is Actuator.UNKNOWN and (
        pending is None or pending.kind is not ActionKind.START
    ):
        if state.stop_failed is not None and now < state.hold_until:
            return Decision(state)
        why = (
            "retry failed stop"
            if state.stop_failed
            else "discharge state unknown: making sure it is off"
        )
        return _stop(state, why, ev.export_w)

    if state.actuator is Actuator.ON or pending is not None:
        reason, end_request = _stop_reason(state, ev, breaker, settings)
        if reason is not None:
            if end_request:
                state = replace(state, request=None)
            return _stop(state, reason, ev.export_w)
        return _follow(state, ev, breaker, settings, now)

    return _maybe_start(state, ev, breaker, settings, now)


def supervised(state: GuardState, order: Order, export_w: float | None) -> Decision:
    """Launch what the safety supervisor orders (it has the last word).

    Args:
        state: the state after the controller's decision was undone.
        order: a stop, or a lower power.
        export_w: the grid reading it was ordered on.
    """
    if order.kind is OrderKind.STOP:
        return _stop(state, order.reason, export_w)
    action = Action(
        ActionKind.SET_POWER, state.seq + 1, order.power_w, order.reason, export_w=export_w
    )
    return _launch(state, action)


def proposal_of(state: GuardState, decision: Decision) -> Proposal | None:
    """What the decision's action would do, in the supervisor's words.

    Args:
        state: the state before the decision (what the guard has published).
        decision: the controller's decision.
    """
    if not decision.actions:
        return None
    action = decision.actions[0]
    if action.kind is ActionKind.STOP:
        return Proposal.STOP
    if action.kind is ActionKind.RENEW:
        return Proposal.OTHER
    pending = state.pending
    now_w = state.believed_w
    if pending is not None and pending.kind in (ActionKind.START, ActionKind.SET_POWER):
        now_w = pending.power_w
    if action.power_w < now_w:
        return Proposal.LOWER
    return Proposal.RAISE


def next_due(state: GuardState, settings: GuardSettings, now: float) -> float | None:
    """When a time-gated rule (settle, debounce, write interval, retry hold,
    lease renewal, request end) next lets something happen, if later than
    ``now``: the app decides again then instead of waiting for a tick."""
    times = [state.settle_until, state.last_raise_at + settings.min_write_interval_s]
    times += [state.hold_until, state.lease_renew_at]
    if state.request is not None:
        times.append(state.request.since + settings.request_debounce_s)
        if state.request.until is not None:
            times.append(state.request.until)
    future = [t for t in times if now < t < math.inf]
    return min(future) if future else None


# --- internals ----------------------------------------------------------------


def _expire_request(state: GuardState, now: float) -> GuardState:
    request = state.request
    if request is not None and request.until is not None and now >= request.until:
        return replace(state, request=None, last_stop_reason="duration elapsed")
    return state


def _launch(state: GuardState, action: Action) -> Decision:
    """Hand ``action`` out; readings are uncertain until its outcome."""
    est = replace(widen(state.estimate, state.believed_w, action.power_w), settled=False)
    return Decision(
        replace(state, seq=action.seq, pending=action, estimate=est, settle_until=math.inf),
        (action,),
    )


def _stop(state: GuardState, reason: str, export_w: float | None = None) -> Decision:
    action = Action(ActionKind.STOP, state.seq + 1, reason=reason, export_w=export_w)
    return _launch(state, action)


def _stop_reason(
    state: GuardState, ev: Evaluation, breaker: BreakerSnapshot, settings: GuardSettings
) -> tuple[str | None, bool]:
    """Why a discharge must stop now (and whether that ends the request)."""
    if state.request is None:
        return state.last_stop_reason or "no active request", False
    if ev.invalid:
        return "invalid reading: " + _names(ev.invalid), False
    if ev.stale:
        return "stale data: " + _names(ev.stale), False
    soc, energy_room = ev.soc_pct, ev.energy_headroom_kwh
    target = _target(state, settings)
    if soc is None or energy_room is None or target is None:
        # Cannot happen when every check is OK; fail safe if it ever does.
        return "readings incomplete", False
    if soc <= settings.min_soc_pct:
        return f"SoC {soc:g} % at minimum {settings.min_soc_pct:g} %", True
    if energy_room <= 0:
        return "daily export cap reached", False
    if breaker.state is BreakerState.OPEN:
        return "circuit breaker open", False
    if target < settings.min_discharge_w:
        return "no export headroom", False
    return None, False


def _names(checks: tuple[object, ...]) -> str:
    return ", ".join(str(getattr(c, "name", c)) for c in checks)


def _target(state: GuardState, settings: GuardSettings) -> float | None:
    """Discharge power that fills the room below the limit minus deadband,
    given the estimated uncontrolled export; within the request and max."""
    uncontrolled = state.estimate.uncontrolled_w
    if uncontrolled is None:
        return None
    wanted = settings.max_discharge_w
    if state.request is not None and state.request.power_w is not None:
        wanted = min(wanted, state.request.power_w)
    # An inverter may run up to the power read-back's tolerance above what
    # was set (a quantised one rounds up): aim at least that far below.
    margin = max(settings.deadband_w, settings.power_tolerance_w)
    room = settings.export_limit_w - margin - uncontrolled
    return float(math.floor(min(max(room, 0.0), wanted)))


def _settled(state: GuardState) -> bool:
    """The latest reading shows the effect of every change made, and is not
    an averaging meter halfway through showing a step."""
    est = state.estimate
    return state.pending is None and est.settled and est.steady


def _follow(
    state: GuardState,
    ev: Evaluation,
    breaker: BreakerSnapshot,
    settings: GuardSettings,
    now: float,
) -> Decision:
    """While discharging: lower at once (over an action in flight too),
    raise in bounded steps on settled readings only, renew the lease."""
    target = _target(state, settings)
    if target is None:  # excluded by _stop_reason; fail safe anyway
        return _stop(state, "readings incomplete")
    pending = state.pending
    current = (
        state.power_w if pending is None or pending.kind is ActionKind.RENEW else pending.power_w
    )
    over = ev.export_w is not None and ev.export_w > settings.export_limit_w
    if target < current and (current - target >= settings.min_change_w or over):
        kind = (
            ActionKind.START
            if pending is not None and pending.kind is ActionKind.START
            else ActionKind.SET_POWER
        )
        return _power_action(state, ev, kind, target, "export near limit", settings, now)
    if pending is not None:
        return Decision(state)
    raise_ok = (
        target - state.power_w >= max(settings.deadband_w, 1.0)
        and breaker.can_attempt
        and _settled(state)
        and now - state.last_raise_at >= settings.min_write_interval_s
    )
    if raise_ok:
        power = min(target, state.power_w + settings.max_raise_step_w)
        return _power_action(
            state, ev, ActionKind.SET_POWER, power, "headroom available", settings, now
        )
    if now >= state.lease_renew_at and state.discharge_since is not None:
        minutes = _lease_minutes(state, settings, now, since=state.discharge_since)
        action = Action(ActionKind.RENEW, state.seq + 1, state.power_w, duration_min=minutes)
        return _launch(state, action)
    return Decision(state)


def _lease_minutes(
    state: GuardState, settings: GuardSettings, now: float, *, since: float
) -> float:
    """The duration control's value: what lets the discharge run one lease
    from now (no later than the request's end). A timer that counts from
    the start needs the time since the start added; one that restarts at
    each write (the default) gets the remaining time only, else a guard that
    dies leaves it running for as long as the discharge had already run."""
    lease = settings.lease_min if settings.lease_min is not None else math.inf
    end = now + lease * 60.0
    request = state.request
    if request is not None and request.until is not None:
        end = min(end, request.until)
    origin = since if settings.timer_from_start else now
    return max((end - origin) / 60.0, 0.0)


def _power_action(
    state: GuardState,
    ev: Evaluation,
    kind: ActionKind,
    power: float,
    reason: str,
    settings: GuardSettings,
    now: float,
) -> Decision:
    duration = None
    cutoff = None
    if kind is ActionKind.START:
        cutoff = settings.min_soc_pct
        duration = _start_minutes(state, settings, now)
    action = Action(
        kind,
        state.seq + 1,
        power_w=power,
        reason=reason,
        cutoff_soc_pct=cutoff,
        duration_min=duration,
        export_w=ev.export_w,
        battery_w=ev.battery_w,
    )
    return _launch(state, action)


def _start_minutes(state: GuardState, settings: GuardSettings, now: float) -> float | None:
    request = state.request
    if settings.lease_min is None:
        if request is None or request.until is None:
            return None
        return max((request.until - now) / 60.0, 0.0)
    return _lease_minutes(state, settings, now, since=now)


def _maybe_start(
    state: GuardState,
    ev: Evaluation,
    breaker: BreakerSnapshot,
    settings: GuardSettings,
    now: float,
) -> Decision:
    request = state.request
    if request is None or not ev.ok or not breaker.can_attempt or now < state.hold_until:
        return Decision(state)
    if state.stop_failed is not None and state.plant_error is None:
        return Decision(state)  # not while a stop has not been verified
    # After a stop the plant ignored, a start (after the hold) is the test
    # that tells a stuck inverter from a false alarm: its check clears it.
    if now < request.since + settings.request_debounce_s or not _settled(state):
        return Decision(state)
    if now - state.last_raise_at < settings.min_write_interval_s:
        return Decision(state)
    soc, energy_room, target = ev.soc_pct, ev.energy_headroom_kwh, _target(state, settings)
    if soc is None or energy_room is None or target is None:
        return Decision(state)
    if soc < settings.min_soc_pct + settings.soc_hysteresis_pct or energy_room <= 0:
        return Decision(state)
    if target < settings.min_discharge_w:
        return Decision(state)
    power = min(target, settings.max_raise_step_w)
    return _power_action(state, ev, ActionKind.START, power, "requested", settings, now)
