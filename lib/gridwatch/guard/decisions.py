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
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gridwatch.guard.estimate import (
    Estimate,
    Expectation,
    fold_reading,
    response_problem,
    widen,
)
from gridwatch.guard.readings import Evaluation, GridSign, Readings, ReadingSpecs, evaluate
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState

# After the plant ignored a start or raise, wait this long before trying
# again: each try runs the battery against a plant that may not follow (a
# wrong sign exports over the limit every time). The breaker counts them.
PLANT_HOLD_S = 60.0


@dataclass(frozen=True)
class GuardSettings:
    """Limits and behaviour, from apps.yaml.

    Attributes:
        export_limit_w: instantaneous export limit (W).
        deadband_w: regulation aims this far below the limit, and raises
            power only by steps of at least this much, so it does not chatter.
        daily_cap_kwh: daily export energy cap (kWh).
        margin_kwh: kept free below the cap (kWh).
        min_soc_pct: discharge stops at this SoC (%).
        soc_hysteresis_pct: a (re)start needs SoC at least this far above the
            minimum, so a battery at the minimum does not start and stop.
        max_discharge_w: the most the guard ever commands (W).
        min_discharge_w: a target below this is "no headroom": stop (> 0).
        retry_after_s: after a failed action, wait this long before the next
            start or stop retry.
        grid_sign: how the grid sensor signs export.
        specs: range and age limits per reading.
        settle_s: after a change, readings are uncertain this long (meter
            period, lag and averaging plus the inverter's ramp).
        max_raise_step_w: a start or raise moves by at most this (W).
        min_write_interval_s: raises (and starts) at most this often (s).
        min_change_w: a lowering smaller than this waits, unless the export
            is over the limit (the deadband absorbs it).
        request_debounce_s: a start request must stand this long.
        lease_min: dead-man lease on the inverter's duration control
            (minutes); ``None`` without one.
        response_min_w: changes at least this big are checked for a response.
        response_fraction: share of a change the measurements must show.
    """

    export_limit_w: float
    daily_cap_kwh: float
    max_discharge_w: float
    deadband_w: float = 100.0
    margin_kwh: float = 0.2
    min_soc_pct: float = 10.0
    soc_hysteresis_pct: float = 2.0
    min_discharge_w: float = 100.0
    retry_after_s: float = 5.0
    grid_sign: GridSign = GridSign.IMPORT_POSITIVE
    specs: ReadingSpecs = field(default_factory=ReadingSpecs)
    settle_s: float = 5.0
    max_raise_step_w: float = 2000.0
    min_write_interval_s: float = 10.0
    min_change_w: float = 50.0
    request_debounce_s: float = 1.0
    lease_min: float | None = None
    response_min_w: float = 300.0
    response_fraction: float = 0.5

    def __post_init__(self) -> None:
        values = {
            "export_limit_w": self.export_limit_w,
            "daily_cap_kwh": self.daily_cap_kwh,
            "max_discharge_w": self.max_discharge_w,
            "deadband_w": self.deadband_w,
            "margin_kwh": self.margin_kwh,
            "min_soc_pct": self.min_soc_pct,
            "soc_hysteresis_pct": self.soc_hysteresis_pct,
            "min_discharge_w": self.min_discharge_w,
            "retry_after_s": self.retry_after_s,
            "settle_s": self.settle_s,
            "max_raise_step_w": self.max_raise_step_w,
            "min_write_interval_s": self.min_write_interval_s,
            "min_change_w": self.min_change_w,
            "request_debounce_s": self.request_debounce_s,
            "response_min_w": self.response_min_w,
            "response_fraction": self.response_fraction,
        }
        bad = [k for k, v in values.items() if not math.isfinite(v) or v < 0]
        if bad:
            raise ValueError(f"guard settings must be finite and >= 0: {', '.join(bad)}")
        # Settings that would switch a safety rule off.
        if self.min_discharge_w <= 0 or self.max_raise_step_w <= 0:
            raise ValueError("min_discharge_w and max_raise_step_w must be > 0")
        if self.lease_min is not None and not 0 < self.lease_min <= 1440:
            raise ValueError("lease_min must be in (0, 1440]")


def evaluate_for(
    readings: Readings, settings: GuardSettings, now: float, unmetered_export_kwh: float = 0.0
) -> Evaluation:
    """:func:`evaluate` with the limits taken from ``settings``."""
    return evaluate(
        readings,
        specs=settings.specs,
        grid_sign=settings.grid_sign,
        export_limit_w=settings.export_limit_w,
        deadband_w=settings.deadband_w,
        daily_cap_kwh=settings.daily_cap_kwh,
        margin_kwh=settings.margin_kwh,
        now=now,
        unmetered_export_kwh=unmetered_export_kwh,
    )


class Actuator(StrEnum):
    """What the guard believes the discharge actuator is doing."""

    OFF = "off"
    ON = "on"
    UNKNOWN = "unknown"  # not verified either way: must be stopped


class ActionKind(StrEnum):
    START = "start"
    SET_POWER = "set_power"
    RENEW = "renew"  # extend the dead-man lease
    STOP = "stop"


@dataclass(frozen=True)
class Action:
    """One thing for the app to do.

    Attributes:
        kind: start / set_power / renew / stop.
        seq: identifies the action when its outcome comes back.
        power_w: discharge power for start / set_power (W).
        reason: why (for logs and ``last_action``).
        cutoff_soc_pct: for start: the battery's own cutoff.
        duration_min: for start and renew: the duration control's value.
        export_w: the grid reading the action was decided on (W).
        battery_w: measured battery power when decided (W), if configured.
    """

    kind: ActionKind
    seq: int
    power_w: float = 0.0
    reason: str = ""
    cutoff_soc_pct: float | None = None
    duration_min: float | None = None
    export_w: float | None = None
    battery_w: float | None = None

    def describe(self) -> str:
        """A short human text, e.g. ``start 2000 W``."""
        if self.kind is ActionKind.STOP:
            return f"stop ({self.reason})" if self.reason else "stop"
        if self.kind is ActionKind.RENEW:
            return f"renew lease to {math.ceil(self.duration_min or 0)} min"
        text = f"{self.kind.value} {self.power_w:.0f} W"
        return f"{text} ({self.reason})" if self.reason else text


class Outcome(StrEnum):
    OK = "ok"  # verified
    FAILED = "failed"  # not verified (reason given)
    REFUSED = "refused"  # the breaker did not admit it: nothing was called
    CANCELLED = "cancelled"  # superseded or shut down: state not known


@dataclass(frozen=True)
class DischargeRequest:
    """An active request to discharge.

    Attributes:
        power_w: wanted power (W); ``None`` means the most allowed.
        until: monotonic end time; ``None`` means until stopped.
        since: when it was made (a start waits out the debounce).
    """

    power_w: float | None = None
    until: float | None = None
    since: float = -math.inf


@dataclass(frozen=True)
class GuardState:
    """Everything the guard remembers between decisions.

    Attributes:
        actuator: belief about the discharge; UNKNOWN at start-up, so the
            first decision verifies that nothing is discharging.
        power_w: last verified discharge power (W), as read back.
        estimate: the uncontrolled export estimate and its uncertainty.
        settle_until: readings arriving before this are uncertain
            (infinite while a change is in flight).
        expect: the response the last verified change should show.
        last_raise_at: when the last start or raise was written.
        discharge_since: when the running discharge was verified started.
        lease_renew_at: when the dead-man lease is next renewed.
        request: the active request, if any.
        pending: the action in flight, if any.
        seq: last action number handed out.
        hold_until: no start, and no retry of a failed stop, before this.
        actuator_error: why the last action failed; cleared by the next
            verified start or power change (or stop, after a failed stop).
        plant_error: why the plant did not follow a change; cleared when a
            later change is followed.
        strikes: changes in a row the plant did not visibly follow.
        stop_failed: why the last stop failed; cleared by a verified stop.
        last_action: text of the last action and its outcome.
        last_stop_reason: why the guard last stopped.
    """

    actuator: Actuator = Actuator.UNKNOWN
    power_w: float = 0.0
    estimate: Estimate = field(default_factory=Estimate)
    settle_until: float = -math.inf
    expect: Expectation | None = None
    last_raise_at: float = -math.inf
    discharge_since: float | None = None
    lease_renew_at: float = math.inf
    request: DischargeRequest | None = None
    pending: Action | None = None
    seq: int = 0
    hold_until: float = -math.inf
    actuator_error: str | None = None
    plant_error: str | None = None
    strikes: int = 0
    stop_failed: str | None = None
    last_action: str = "none"
    last_stop_reason: str | None = None

    @property
    def believed_w(self) -> float:
        """Battery power believed to flow now (0 unless verified on)."""
        return self.power_w if self.actuator is Actuator.ON else 0.0


@dataclass(frozen=True)
class Decision:
    """A new state, the actions to perform (at most one), and actuator
    failures found by the plant-response check (for the breaker)."""

    state: GuardState
    actions: tuple[Action, ...] = ()
    failures: tuple[str, ...] = ()


def request_start(
    state: GuardState, power_w: float | None, duration_min: float | None, now: float
) -> GuardState:
    """Record a start request (replacing an active one).

    Args:
        state: the current state.
        power_w: wanted power (W), or ``None`` for the most allowed.
        duration_min: minutes to discharge, or ``None`` until stopped.
        now: monotonic time.

    Returns:
        The new state; the next :func:`decide` acts on it.
    """
    until = None if duration_min is None else now + duration_min * 60.0
    # A repeated start keeps its debounce clock: only the first counts.
    since = now if state.request is None else state.request.since
    return replace(state, request=DischargeRequest(power_w, until, since))


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
    """

    text: str
    hard: bool


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
        measured_w=ev.battery_w,
        tolerance_w=settings.deadband_w,
    )
    state = replace(state, estimate=est)
    expect = state.expect
    if not settled or expect is None:
        return state, None
    # The next window starts clean.
    state = replace(state, estimate=replace(est, rose=False, fell=False), expect=None)
    measured = None
    if expect.battery_before_w is not None and ev.battery_w is not None:
        measured = ev.battery_w - expect.battery_before_w
    problem = response_problem(
        expect, ev.export_w, fraction=settings.response_fraction, measured_delta_w=measured
    )
    if problem is None:
        stop_failed = None if state.actuator is Actuator.OFF else state.stop_failed
        return replace(state, plant_error=None, stop_failed=stop_failed, strikes=0), None
    # On the grid alone a PV or load step in the window can mask a change:
    # one miss is a strike (the guard stops, to be safe); two in a row --
    # a start and the stop after it, say -- are a fault. A wrong sign or a
    # stuck inverter misses every time; a cloud rarely twice in a row.
    strikes = state.strikes + 1
    state = replace(state, strikes=strikes)
    return state, Miss(problem, hard=not _grid_only(expect, ev) or strikes >= 2)


def _grid_only(expect: Expectation, ev: Evaluation) -> bool:
    """No measured battery power to judge a change by (the grid alone)."""
    return expect.battery_before_w is None or ev.battery_w is None


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
        ignored_stop = state.actuator is Actuator.OFF
        state = replace(
            state,
            actuator=Actuator.UNKNOWN,
            # What the plant still does: the power before the change it
            # ignored (a stop it ignored leaves the battery running).
            power_w=max(state.power_w, expect.power_before_w),
            plant_error=miss.text,
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
            expect = _expectation(state, action, 0.0, settings) if current else None
            expect = expect or state.expect  # one not yet checked still counts
            # A stop the plant ignored stays failed until the plant follows
            # a change again (a response check passes).
            still_failed = state.plant_error is not None
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
                last_action=f"{text}: verified",
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
            renew = now + _lease_s(settings) / 2
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
            lease_renew_at=now + _lease_s(settings) / 2 if started else state.lease_renew_at,
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


def mark_unknown(state: GuardState, problem: str, settings: GuardSettings) -> GuardState:
    """The actuators show something the guard did not command: its belief
    is unknown, so the next :func:`decide` stops the discharge (verified)."""
    est = replace(widen(state.estimate, 0.0, settings.max_discharge_w), settled=False)
    return replace(state, actuator=Actuator.UNKNOWN, estimate=est, actuator_error=problem)


# --- internals ----------------------------------------------------------------


def _lease_s(settings: GuardSettings) -> float:
    return math.inf if settings.lease_min is None else settings.lease_min * 60.0


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
    room = settings.export_limit_w - settings.deadband_w - uncontrolled
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
    """The duration control's value: time since the discharge started plus
    one lease, ending no later than the request."""
    lease = settings.lease_min if settings.lease_min is not None else math.inf
    end = now + lease * 60.0
    request = state.request
    if request is not None and request.until is not None:
        end = min(end, request.until)
    return max((end - since) / 60.0, 0.0)


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
