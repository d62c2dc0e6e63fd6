"""The export guard's vocabulary: its settings, its memory between
decisions, the actions it hands out and their outcomes.

Pure data; :mod:`gridwatch.guard.decisions` holds the rules and
:mod:`gridwatch.guard.outcomes` folds outcomes back in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gridwatch.guard.estimate import Estimate, Expectation
from gridwatch.guard.readings import Evaluation, GridSign, Readings, ReadingSpecs, evaluate
from gridwatch.guard.supervisor import Supervision

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
        power_tolerance_w: the power read-back's tolerance: the inverter may
            run this much above what was set, so the target keeps at least
            this far below the limit (whatever the deadband).
        timer_from_start: the inverter's duration timer counts from the
            start of the discharge (else from each write of it).
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
    timer_from_start: bool = False
    power_tolerance_w: float = 0.0
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
            "power_tolerance_w": self.power_tolerance_w,
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
        until_wall: the same end on the wall clock: what is published, so
            a restarted guard resumes it only until then.
    """

    power_w: float | None = None
    until: float | None = None
    since: float = -math.inf
    until_wall: datetime | None = None


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
        wrong_way: that change moved the grid reading against it (the grid
            sensor's sign is the likely cause).
        strikes: changes in a row the plant did not visibly follow.
        stop_failed: why the last stop failed; cleared by a verified stop.
        switched_back_at: when the discharge last came back on right after
            a verified stop (a late-landing command, a stop that did not hold).
        last_action: text of the last action and its outcome.
        last_stop_reason: why the guard last stopped.
        supervision: what the safety supervisor found (published with the
            guard's own conditions; the supervisor keeps its own memory).
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
    wrong_way: bool = False
    strikes: int = 0
    stop_failed: str | None = None
    switched_back_at: float = -math.inf
    last_action: str = "none"
    last_stop_reason: str | None = None
    supervision: Supervision = field(default_factory=Supervision)

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
