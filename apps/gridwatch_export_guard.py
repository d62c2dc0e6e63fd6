"""Gridwatch export guard: battery discharge under an export limit, fail-safe.

Wiring only: decisions are :mod:`gridwatch.guard.decisions`'s. Each action runs in a
background task (breaker + verified call), so readings keep being judged
while an actuator is slow and a stop can cancel a start in flight. Reacts to
every reading change, plus a safety tick that notices silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from gridwatch.config.export_guard_schema import ExportGuardConfig, ExportGuardSchema
from gridwatch.guard import decisions as guard
from gridwatch.guard import discharge_requests as guard_requests
from gridwatch.guard.actuators import ActuatorSet, GuardActuators
from gridwatch.guard.decisions import Action, GuardState, Outcome
from gridwatch.guard.discharge_requests import Command, RequestError, StartCommand
from gridwatch.guard.entities import entity_ids
from gridwatch.guard.publisher import GuardPublisher
from gridwatch.guard.readings import Readings, Sample, sample_since
from gridwatch.guard.runner import ActionRunner
from gridwatch.hass.ports import EntityState, HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NoticeClient
from gridwatch.runtime.app_base import GridwatchApp
from gridwatch.safety.breaker import CircuitBreaker

# How long a superseded action may take to unwind before the stop goes ahead.
_CANCEL_WAIT_S = 2.0


class ExportGuard(GridwatchApp[ExportGuardConfig]):
    """Starts, follows and stops a battery discharge within the export limits."""

    schema = ExportGuardSchema

    async def setup(self, config: ExportGuardConfig, hass: HassPort, notices: NoticeClient) -> None:
        self._cfg, self._hass = config, hass
        breaker = CircuitBreaker(config.breaker_threshold, config.breaker_reset_s, hass.monotonic)
        acts = ActuatorSet(config.enable, config.power, config.cutoff_soc, config.duration)
        # Verify windows run on the real clock: they time I/O, not the guard.
        actuators = GuardActuators(hass, acts, config.verify)
        self._runner = ActionRunner(breaker, actuators, dry_run=config.dry_run)
        self._publisher = GuardPublisher(
            hass, notices, self.name, config.entities, dry_run=config.dry_run, logger=self.logger
        )
        self._state = GuardState()  # actuator unknown: the first decision is a verified stop
        self._lock = asyncio.Lock()  # one decision at a time
        self._in_flight: tuple[Action, asyncio.Task[None]] | None = None
        self._names = {e: n for n, e in config.entities.items() if n != "enable"}
        self._samples: dict[str, Sample] = {}
        for entity, name in self._names.items():
            await hass.listen_state(entity, self._on_reading)
            now, current = hass.monotonic(), await hass.get_state(entity)
            raw, changed = (None, None) if current is None else (current.raw, current.last_changed)
            self._samples[name] = sample_since(raw, changed, now, hass.now())
        await hass.listen_event(config.event, self._on_event)
        if config.request_entity is not None:
            await hass.listen_state(config.request_entity, self._on_request_entity)
            # A request standing "on" across a restart is honoured.
            current = await hass.get_state(config.request_entity)
            await self._on_request_entity(config.request_entity, None, current)
        await hass.run_every(self._cycle, config.tick_s)
        await self._cycle()

    def expected_entities(self, config: ExportGuardConfig) -> Iterable[str]:
        """Written by the publisher's task, maybe after setup returned: kept."""
        return entity_ids(slugify(self.name)).values()

    async def teardown(self) -> None:
        # The actuator stays as it is; a restarted guard stops it first.
        await self._cancel_in_flight()
        await self._publisher.close()

    async def _on_reading(
        self, entity: str, _old: EntityState | None, new: EntityState | None
    ) -> None:
        name = self._names[entity]
        self._samples[name] = Sample(new and new.raw, self._hass.monotonic())
        if name == "grid_power":
            self._state = guard.note_grid_sample(self._state)
        await self._cycle()

    async def _on_event(self, _event: str, data: Mapping[str, Any]) -> None:
        try:
            await self._command(guard_requests.parse_event(data))
        except RequestError as err:
            self.logger.warning("ignoring %s event: %s", self._cfg.event, err)

    async def _on_request_entity(
        self, _e: str, _o: EntityState | None, new: EntityState | None
    ) -> None:
        command = guard_requests.parse_request_state(new and new.raw)
        if command is not None:
            await self._command(command)

    async def _command(self, command: Command) -> None:
        self.logger.info("request: %s", command)
        async with self._lock:
            if isinstance(command, StartCommand):
                now = self._hass.monotonic()
                self._state = guard.request_start(
                    self._state, command.power_w, command.duration_min, now
                )
            else:
                self._state = guard.request_stop(self._state)
            await self._decide_and_act()

    async def _cycle(self) -> None:
        async with self._lock:
            await self._decide_and_act()

    async def _decide_and_act(self) -> None:
        """Decide, launch the action, publish. Called with the lock held."""
        now, s, settings = self._hass.monotonic(), self._samples, self._cfg.guard
        readings = Readings(s["grid_power"], s["soc"], s["export_today"], s.get("pv_power"))
        ev = guard.evaluate_for(readings, settings, now)
        decision = guard.decide(self._state, ev, self._runner.breaker.snapshot(), settings, now)
        self._state = decision.state
        for action in decision.actions:
            dry = "dry run, not performed: " if self._cfg.dry_run else ""
            self.logger.info("%s%s", dry, action.describe())
            superseded = await self._cancel_in_flight()
            if superseded is not None:
                self._apply(superseded, Outcome.CANCELLED, None)
            self._in_flight = (action, asyncio.create_task(self._run(action)))
            # Yield once: the action's service call then leaves before this
            # callback returns to AppDaemon's own post-callback work (~2 ms).
            await asyncio.sleep(0)
        if decision.actions:
            return  # published when the action is done: HA serves its call first
        snapshot = self._runner.breaker.snapshot()
        self._publisher.submit(self._state, ev, snapshot, now, self._hass.now())

    async def _cancel_in_flight(self) -> Action | None:
        current, self._in_flight = self._in_flight, None
        if current is None or current[1].done():
            return None
        current[1].cancel()
        # It unwinds at once (nothing in it holds off cancellation); bounded anyway.
        await asyncio.wait({current[1]}, timeout=_CANCEL_WAIT_S)
        return current[0]

    async def _run(self, action: Action) -> None:
        outcome, reason = await self._runner.run(action)
        async with self._lock:
            if self._in_flight is not None and self._in_flight[1] is asyncio.current_task():
                self._in_flight = None
            self._apply(action, outcome, reason)
            await self._decide_and_act()

    def _apply(self, action: Action, outcome: Outcome, reason: str | None) -> None:
        now = self._hass.monotonic()
        self._state = guard.apply_result(self._state, action, outcome, reason, self._cfg.guard, now)
        log = self.logger.error if outcome is Outcome.FAILED else self.logger.info
        log("%s", self._state.last_action)
