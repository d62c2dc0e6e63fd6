"""The export guard's validated options (built by
:mod:`gridwatch.config.export_guard_schema`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gridwatch.guard.actuators import SwitchActuator, ValueActuator
from gridwatch.guard.decisions import GuardSettings
from gridwatch.safety.verified_call import VerifyPolicy

DEFAULT_EVENT: Final = "gridwatch_export_guard"


@dataclass(frozen=True)
class GuardConfig:
    """The export guard's validated options.

    Attributes:
        guard: limits and behaviour for the decision logic.
        entities: reading name (grid_power, soc, export_today, pv_power,
            battery_power) -> entity id, and ``enable`` -> the enable entity.
        enable: the discharge on/off actuator.
        power: the discharge power actuator (W).
        cutoff_soc: the battery's cutoff SoC actuator (%), if any.
        duration: the discharge duration actuator (minutes), if any: it
            carries the dead-man lease.
        request_entity: an on/off entity whose on/off requests start/stop.
        event: HA event type carrying start/stop requests.
        tick_s: period of the safety tick.
        dry_run: compute, publish and log; never touch an actuator.
        verify: timing of each verified actuator call.
        breaker_threshold: failures in a row that open the breaker.
        breaker_reset_s: seconds open before one probe is allowed.
        heartbeat_s: the heartbeat entity advances this often.
        max_request_min: longest duration a request may ask for.
    """

    guard: GuardSettings
    entities: Mapping[str, str]
    enable: SwitchActuator
    power: ValueActuator
    cutoff_soc: ValueActuator | None = None
    duration: ValueActuator | None = None
    request_entity: str | None = None
    event: str = DEFAULT_EVENT
    tick_s: float = 5.0
    dry_run: bool = False
    verify: VerifyPolicy = field(default_factory=VerifyPolicy)
    breaker_threshold: int = 5
    breaker_reset_s: float = 60.0
    heartbeat_s: float = 30.0
    max_request_min: float = 1440.0
