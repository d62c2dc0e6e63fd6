"""Performs the export guard's actions on HA actuators, each step through
one verified call (act, read back, retry).

Knows HA only through the ports (:mod:`gridwatch.hass.ports`): a service call to
act, a state read to verify.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gridwatch.guard.decisions import Action, ActionKind
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import EntityState, FreshStateReader, ServiceCaller, StateReader
from gridwatch.hass.states import parse_bool, parse_float
from gridwatch.safety.verified_call import CallResult, VerifyPolicy, verified_call


@dataclass(frozen=True)
class SwitchActuator:
    """An on/off actuator (discharge enable).

    Attributes:
        entity: the entity turned on/off and read back.
        on_service: ``domain/service`` that turns it on.
        off_service: ``domain/service`` that turns it off.
    """

    entity: str
    on_service: str
    off_service: str


@dataclass(frozen=True)
class ValueActuator:
    """A numeric actuator (power, cutoff SoC, duration).

    Attributes:
        entity: the entity set and read back.
        service: ``domain/service`` called with ``{"entity_id", "value"}``.
        tolerance: a read-back this close counts as set (devices round).
    """

    entity: str
    service: str
    tolerance: float = 1.0


class TimerCounts(StrEnum):
    """How the inverter's discharge timer counts its minutes."""

    # The remaining time restarts at each write (most remote-control timeouts).
    FROM_WRITE = "write"
    # The minutes count from when the discharge started.
    FROM_START = "start"


@dataclass(frozen=True)
class DurationActuator(ValueActuator):
    """The discharge duration control (minutes): carries the dead-man lease.

    Attributes:
        counts_from: whether the inverter counts its minutes from each write
            or from the start of the discharge (the lease is written so
            that a guard that dies leaves at most one lease either way).
    """

    counts_from: TimerCounts = TimerCounts.FROM_WRITE


class ActuatorPort(ServiceCaller, StateReader, FreshStateReader, Protocol):
    """What the actuators need of HA."""


@dataclass(frozen=True)
class Performed:
    """The result of an action.

    Attributes:
        result: of the last step run.
        power_w: the discharge power read back (W), if the action set it.
    """

    result: CallResult
    power_w: float | None = None


@dataclass(frozen=True)
class ActuatorSet:
    """The guard's actuators; cutoff SoC and duration are optional."""

    enable: SwitchActuator
    power: ValueActuator
    cutoff_soc: ValueActuator | None = None
    duration: ValueActuator | None = None


class GuardActuators:
    """Drives the actuators for one :class:`Action` at a time.

    Args:
        hass: service calls and state reads.
        actuators: which entities and services.
        policy: timing of each verified call (default: 5 s / 3 s / 3 attempts).
        clock: monotonic clock for the verify window.
        sleep: sleep between polls and retries.
    """

    def __init__(
        self,
        hass: ActuatorPort,
        actuators: ActuatorSet,
        policy: VerifyPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._hass = hass
        self._act = actuators
        self._policy = policy or VerifyPolicy()
        self._clock = clock
        self._sleep = sleep

    async def perform(self, action: Action) -> Performed:
        """Carry out ``action``; every step verified, the first failure ends it.

        A start sets power (and cutoff SoC and duration if configured)
        before it turns discharge on, so the battery never runs at a stale
        power. A stop only turns discharge off: the one step that must work.
        A renewal only sets the duration (the dead-man lease).

        Returns:
            The result of the last step run, and the power read back.
        """
        acts = self._act
        if action.kind is ActionKind.STOP:
            return Performed(await self._switch(acts.enable, on=False))
        if action.kind is ActionKind.RENEW:
            if acts.duration is None or action.duration_min is None:
                return Performed(CallResult(True, 0, None))
            minutes = math.ceil(action.duration_min)
            return Performed(await self._value(acts.duration, minutes))
        result = await self._value(acts.power, action.power_w)
        # Quantised inverters round: record what they show, not what was asked.
        power = parse_float(result.last_read).value if result.ok else None
        steps: list[Callable[[], Awaitable[CallResult]]] = []
        if action.kind is ActionKind.START:
            cutoff, duration = acts.cutoff_soc, acts.duration
            if cutoff is not None and action.cutoff_soc_pct is not None:
                soc = action.cutoff_soc_pct
                steps.append(lambda: self._value(cutoff, soc))
            if duration is not None and action.duration_min is not None:
                minutes = max(math.ceil(action.duration_min), 1)
                steps.append(lambda: self._value(duration, minutes))
            steps.append(lambda: self._switch(acts.enable, on=True))
        for step in steps:
            if not result.ok:
                break
            result = await step()
        return Performed(result, power)

    async def _switch(self, switch: SwitchActuator, *, on: bool) -> CallResult:
        service = switch.on_service if on else switch.off_service

        def shows(raw: str | None) -> bool:
            return parse_bool(raw) is on

        return await self._verified(
            service,
            {"entity_id": switch.entity},
            switch.entity,
            shows,
            f"{service} {switch.entity}",
        )

    async def _value(self, actuator: ValueActuator, value: float) -> CallResult:
        def shows(raw: str | None) -> bool:
            number = parse_float(raw).value
            return number is not None and abs(number - value) <= actuator.tolerance

        data = {"entity_id": actuator.entity, "value": value}
        what = f"{actuator.service} {actuator.entity}={value:g}"
        return await self._verified(actuator.service, data, actuator.entity, shows, what)

    async def _verified(
        self,
        service: str,
        data: dict[str, object],
        entity: str,
        shows: Callable[[str | None], bool],
        what: str,
    ) -> CallResult:
        timeout = self._policy.call_timeout_s

        async def act() -> object:
            return await self._hass.call_service(service, data, timeout_s=timeout)

        async def read() -> str | None:
            # The state text only: it is what reasons and logs quote.
            state = await self._hass.get_state(entity)
            if state is None:
                # AppDaemon's cache lost the entity (a reloaded integration):
                # ask HA itself, so a stop that worked is seen as working.
                state = await read_past_cache(self._hass, entity, read_timeout)
            return None if state is None else state.raw

        read_timeout = self._policy.read_timeout_s

        return await verified_call(
            act, read, shows, what=what, policy=self._policy, clock=self._clock, sleep=self._sleep
        )


async def read_past_cache(
    hass: FreshStateReader, entity_id: str, timeout_s: float
) -> EntityState | None:
    """Read an entity from HA itself, when AppDaemon's cache has lost it.

    A failed or slow read is no answer (``None``): the caller reads again.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await hass.read_state(entity_id)
    except (HassError, TimeoutError):
        return None
