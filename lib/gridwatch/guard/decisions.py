"""The export guard's decisions: when to start, re-set or stop a battery
discharge so grid export stays under its limits, failing safe.

Pure functions of (state, evaluation, breaker snapshot, settings, now) that
return a new :class:`GuardState` and the actions to perform; the app performs
them (each through the verified call and the breaker) and feeds the outcome
back with :func:`apply_result`.

Fail-safe rules, in the order they are applied:

- A discharge (on, or being started) is stopped when the request ended, a
  steering reading is stale or invalid, SoC is at the minimum, the daily cap
  or the power headroom is used up, or the breaker is open.
- An actuator whose state is unknown (at start-up, after a failed start or
  power change, after a failed stop) is stopped; a failed stop is retried
  every ``retry_after_s`` until it is verified.
- A start, or a power increase, needs fresh valid data, SoC above the
  minimum (plus hysteresis), headroom, and a breaker that admits a call.
- Lowering power needs nothing but a reason: it only makes things safer.
- A request stays active until stopped, its duration ends, or SoC reaches
  the minimum; while active the guard pauses and resumes with the headroom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gridwatch.guard.headroom import discharge_target_w
from gridwatch.guard.readings import Evaluation, GridSign, Readings, ReadingSpecs, evaluate
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState


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
        min_discharge_w: a target below this is "no headroom": stop.
        retry_after_s: after a failed action, wait this long before the next
            start or stop retry.
        grid_sign: how the grid sensor signs export.
        specs: range and age limits per reading.
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
    grid_sign: GridSign = GridSign.EXPORT_POSITIVE
    specs: ReadingSpecs = field(default_factory=ReadingSpecs)

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
        }
        bad = [k for k, v in values.items() if not math.isfinite(v) or v < 0]
        if bad:
            raise ValueError(f"guard settings must be finite and >= 0: {', '.join(bad)}")


def evaluate_for(readings: Readings, settings: GuardSettings, now: float) -> Evaluation:
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
    )


class Actuator(StrEnum):
    """What the guard believes the discharge actuator is doing."""

    OFF = "off"
    ON = "on"
    UNKNOWN = "unknown"  # not verified either way: must be stopped


class ActionKind(StrEnum):
    START = "start"
    SET_POWER = "set_power"
    STOP = "stop"


@dataclass(frozen=True)
class Action:
    """One thing for the app to do.

    Attributes:
        kind: start / set_power / stop.
        seq: identifies the action when its outcome comes back.
        power_w: discharge power for start / set_power (W).
        reason: why (for logs and ``last_action``).
        cutoff_soc_pct: for start: the battery's own cutoff.
        duration_min: for start: remaining minutes of the request, if timed.
    """

    kind: ActionKind
    seq: int
    power_w: float = 0.0
    reason: str = ""
    cutoff_soc_pct: float | None = None
    duration_min: float | None = None

    def describe(self) -> str:
        """A short human text, e.g. ``start 2000 W``."""
        if self.kind is ActionKind.STOP:
            return f"stop ({self.reason})" if self.reason else "stop"
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
    """

    power_w: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class GuardState:
    """Everything the guard remembers between decisions.

    Attributes:
        actuator: belief about the discharge; UNKNOWN at start-up, so the
            first decision verifies that nothing is discharging.
        power_w: last verified discharge power (W).
        power_basis_w: the discharge power the latest grid reading reflects
            (W). The grid reading lags a power change until the meter
            reports again; the target is computed from this basis so a
            change is not counted twice.
        request: the active request, if any.
        pending: the action in flight, if any.
        seq: last action number handed out.
        hold_until: no start, and no retry of a failed stop, before this.
        actuator_error: why the last action failed; cleared by the next
            verified start or power change (or stop, after a failed stop).
        stop_failed: why the last stop failed; cleared by a verified stop.
        last_action: text of the last action and its outcome.
        last_stop_reason: why the guard last stopped.
    """

    actuator: Actuator = Actuator.UNKNOWN
    power_w: float = 0.0
    power_basis_w: float = 0.0
    request: DischargeRequest | None = None
    pending: Action | None = None
    seq: int = 0
    hold_until: float = -math.inf
    actuator_error: str | None = None
    stop_failed: str | None = None
    last_action: str = "none"
    last_stop_reason: str | None = None


@dataclass(frozen=True)
class Decision:
    """A new state and the actions to perform (at most one)."""

    state: GuardState
    actions: tuple[Action, ...] = ()


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
    return replace(state, request=DischargeRequest(power_w, until))


def note_grid_sample(state: GuardState) -> GuardState:
    """Record that a new grid reading arrived: it reflects the discharge
    power believed now. Call it for every grid power sample.

    Args:
        state: the current state.

    Returns:
        The state with the new power basis.
    """
    basis = state.power_w if state.actuator is Actuator.ON else 0.0
    return state if basis == state.power_basis_w else replace(state, power_basis_w=basis)


def request_stop(state: GuardState) -> GuardState:
    """Drop the active request; the next :func:`decide` stops the discharge."""
    return replace(state, request=None, last_stop_reason="stop requested")


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
        The new state and at most one action. A STOP supersedes a START or
        SET_POWER in flight (the app cancels that one first).
    """
    state = _expire_request(state, now)
    pending = state.pending
    if pending is not None and pending.kind is ActionKind.STOP:
        return Decision(state)
    discharging = state.actuator is Actuator.ON or pending is not None

    if state.actuator is Actuator.UNKNOWN:
        if state.stop_failed is not None and now < state.hold_until:
            return Decision(state)
        why = (
            "retry failed stop"
            if state.stop_failed
            else "discharge state unknown: making sure it is off"
        )
        return _stop(state, why)

    if discharging:
        reason, end_request = _stop_reason(state, ev, breaker, settings)
        if reason is not None:
            if end_request:
                state = replace(state, request=None)
            return _stop(state, reason)
        if pending is not None:
            return Decision(state)
        return _follow(state, ev, breaker, settings)

    return _maybe_start(state, ev, breaker, settings, now)


def apply_result(
    state: GuardState,
    action: Action,
    outcome: Outcome,
    reason: str | None,
    settings: GuardSettings,
    now: float,
) -> GuardState:
    """Fold an action's outcome into the state.

    Args:
        state: the current state.
        action: the action performed.
        outcome: how it went.
        reason: why it failed (for FAILED).
        settings: for the retry hold-off.
        now: monotonic time.

    Returns:
        The new state. An outcome of a superseded action only updates the
        belief about the actuator; the action now in flight stays pending.
    """
    current = state.pending is not None and state.pending.seq == action.seq
    pending = None if current else state.pending
    text = action.describe()
    why = reason or "not verified"
    if action.kind is ActionKind.STOP:
        if outcome is Outcome.OK:
            return replace(
                state,
                pending=pending,
                actuator=Actuator.OFF,
                power_w=0.0,
                # A verified stop clears a stop failure; a failed start or
                # power change stays reported until one of those works.
                actuator_error=None if state.stop_failed else state.actuator_error,
                stop_failed=None,
                last_action=f"{text}: verified",
                last_stop_reason=action.reason,
            )
        # A stop is never refused (it bypasses the breaker); failed or
        # cancelled, the discharge may still be running.
        return replace(
            state,
            pending=pending,
            actuator=Actuator.UNKNOWN,
            actuator_error=why if outcome is Outcome.FAILED else state.actuator_error,
            stop_failed=why if outcome is Outcome.FAILED else "stop cancelled",
            hold_until=now + settings.retry_after_s,
            last_action=f"{text}: {outcome.value}" + (f": {why}" if reason else ""),
        )
    if outcome is Outcome.OK:
        return replace(
            state,
            pending=pending,
            actuator=Actuator.ON,
            power_w=action.power_w,
            actuator_error=None,
            last_action=f"{text}: verified",
        )
    if outcome is Outcome.REFUSED:
        # Nothing was called: the actuator is as it was.
        return replace(state, pending=pending, last_action=f"{text}: refused (breaker open)")
    if outcome is Outcome.CANCELLED:
        if action.kind is ActionKind.SET_POWER and state.actuator is Actuator.ON:
            # It may or may not have landed: assume the higher of the two.
            power = max(state.power_w, action.power_w)
            return replace(state, pending=pending, power_w=power, last_action=f"{text}: cancelled")
        return replace(
            state, pending=pending, actuator=Actuator.UNKNOWN, last_action=f"{text}: cancelled"
        )
    # FAILED: a start may have half-happened, a power change may not have:
    # either way the discharge is no longer under control, so it is stopped.
    return replace(
        state,
        pending=pending,
        actuator=Actuator.UNKNOWN,
        actuator_error=why,
        hold_until=now + settings.retry_after_s,
        last_action=f"{text}: failed: {why}",
    )


# --- internals ----------------------------------------------------------------


def _expire_request(state: GuardState, now: float) -> GuardState:
    request = state.request
    if request is not None and request.until is not None and now >= request.until:
        return replace(state, request=None, last_stop_reason="duration elapsed")
    return state


def _stop(state: GuardState, reason: str) -> Decision:
    seq = state.seq + 1
    action = Action(ActionKind.STOP, seq, reason=reason)
    return Decision(replace(state, seq=seq, pending=action), (action,))


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
    soc, energy_room, power_room = ev.soc_pct, ev.energy_headroom_kwh, ev.power_headroom_w
    if soc is None or energy_room is None or power_room is None:
        # Cannot happen when every check is OK; fail safe if it ever does.
        return "readings incomplete", False
    if soc <= settings.min_soc_pct:
        return f"SoC {soc:g} % at minimum {settings.min_soc_pct:g} %", True
    if energy_room <= 0:
        return "daily export cap reached", False
    if breaker.state is BreakerState.OPEN:
        return "circuit breaker open", False
    if _target(state, power_room, settings) < settings.min_discharge_w:
        return "no export headroom", False
    return None, False


def _names(checks: tuple[object, ...]) -> str:
    return ", ".join(str(getattr(c, "name", c)) for c in checks)


def _target(state: GuardState, power_room: float, settings: GuardSettings) -> float:
    """Discharge power that fills the headroom, within the request and max.

    The headroom was measured with ``power_basis_w`` flowing from the
    battery, so the target is that basis plus the headroom, whatever power
    was commanded since.
    """
    wanted = settings.max_discharge_w
    if state.request is not None and state.request.power_w is not None:
        wanted = min(wanted, state.request.power_w)
    return math.floor(discharge_target_w(state.power_basis_w, power_room, wanted))


def _follow(
    state: GuardState, ev: Evaluation, breaker: BreakerSnapshot, settings: GuardSettings
) -> Decision:
    """While discharging: lower power at once, raise it only by a deadband step."""
    if ev.power_headroom_w is None:  # excluded by _stop_reason; fail safe anyway
        return _stop(state, "readings incomplete")
    target = _target(state, ev.power_headroom_w, settings)
    lower = target < state.power_w
    raise_ = target - state.power_w >= max(settings.deadband_w, 1.0)
    if lower or (raise_ and breaker.can_attempt):
        seq = state.seq + 1
        reason = "export near limit" if lower else "headroom available"
        action = Action(ActionKind.SET_POWER, seq, power_w=target, reason=reason)
        return Decision(replace(state, seq=seq, pending=action), (action,))
    return Decision(state)


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
    soc, energy_room, power_room = ev.soc_pct, ev.energy_headroom_kwh, ev.power_headroom_w
    if soc is None or energy_room is None or power_room is None:
        return Decision(state)
    if soc < settings.min_soc_pct + settings.soc_hysteresis_pct or energy_room <= 0:
        return Decision(state)
    target = _target(state, power_room, settings)
    if target < settings.min_discharge_w:
        return Decision(state)
    seq = state.seq + 1
    duration = None if request.until is None else max((request.until - now) / 60.0, 0.0)
    action = Action(
        ActionKind.START,
        seq,
        power_w=target,
        reason="requested",
        cutoff_soc_pct=settings.min_soc_pct,
        duration_min=duration,
    )
    return Decision(replace(state, seq=seq, pending=action), (action,))
