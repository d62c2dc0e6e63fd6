"""Builders shared by the guard's decision tests."""

from __future__ import annotations

from dataclasses import replace

from gridwatch.guard.decisions import Action, Actuator, GuardSettings, GuardState, evaluate_for
from gridwatch.guard.readings import GridSign, Readings, Sample
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState

NOW = 1000.0
SETTINGS = GuardSettings(
    export_limit_w=3000.0,
    deadband_w=100.0,
    daily_cap_kwh=10.0,
    margin_kwh=0.5,
    min_soc_pct=20.0,
    soc_hysteresis_pct=2.0,
    max_discharge_w=5000.0,
    min_discharge_w=100.0,
    retry_after_s=5.0,
    # The helpers' readings are written export positive.
    grid_sign=GridSign.EXPORT_POSITIVE,
    # Unbounded steps and no debounce unless a test is about them.
    max_raise_step_w=5000.0,
    request_debounce_s=0.0,
    settle_s=5.0,
)
CLOSED = BreakerSnapshot(BreakerState.CLOSED, 0, None, None, can_attempt=True)
OPEN = BreakerSnapshot(BreakerState.OPEN, 5, NOW - 1, "boom", can_attempt=False)
HALF_OPEN = BreakerSnapshot(BreakerState.HALF_OPEN, 5, NOW - 61, "boom", can_attempt=True)


_SAME = object()  # "received at ``at``" (None means never received)


def readings(grid=0.0, soc=80.0, exported=1.0, *, at=NOW, grid_at=_SAME, soc_at=_SAME):
    return Readings(
        grid_power=Sample(grid, at if grid_at is _SAME else grid_at),
        soc=Sample(soc, at if soc_at is _SAME else soc_at),
        export_today=Sample(exported, at),
    )


def ev(grid=0.0, soc=80.0, exported=1.0, *, now=NOW, settings=SETTINGS, **kw):
    return evaluate_for(readings(grid, soc, exported, **kw), settings, now)


def idle(**kw) -> GuardState:
    return GuardState(actuator=Actuator.OFF, **kw)


def discharging(power=2000.0, **kw) -> GuardState:
    from gridwatch.guard.decisions import DischargeRequest

    return GuardState(actuator=Actuator.ON, power_w=power, request=DischargeRequest(), **kw)


def with_pending(state: GuardState, action: Action) -> GuardState:
    return replace(state, pending=action, seq=action.seq)
