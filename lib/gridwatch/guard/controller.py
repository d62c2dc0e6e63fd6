"""The export guard's loop: readings in, decisions out, actions performed.

Each action runs in a background task (breaker + verified call), so readings
keep being judged while an actuator is slow, and a stop or a lower setpoint
cancels a start or raise in flight. Reacts to every reading and actuator
change, plus a safety tick that notices silence and compares the belief
with the actuator entities.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final

from gridwatch.guard import decisions as guard
from gridwatch.guard import discharge_requests as guard_requests
from gridwatch.guard import supervisor
from gridwatch.guard.actuators import ActuatorSet, GuardActuators, read_past_cache
from gridwatch.guard.cap_estimate import UnmeteredExport
from gridwatch.guard.config import GuardConfig
from gridwatch.guard.decisions import (
    Action,
    ActionKind,
    Decision,
    GuardState,
    Outcome,
)
from gridwatch.guard.discharge_requests import (
    Command,
    RequestError,
    StartCommand,
    standing_request,
)
from gridwatch.guard.oversight import limits_of, oversee
from gridwatch.guard.publisher import GuardPublisher
from gridwatch.guard.quiet_readings import RECHECK_SHARE, is_quiet, redate
from gridwatch.guard.readings import Evaluation, GridSign, Readings, Sample, sample_since
from gridwatch.guard.reconcile import reconcile
from gridwatch.guard.runner import ActionRunner
from gridwatch.hass.ports import EntityState, HassPort
from gridwatch.hass.states import parse_bool, parse_float
from gridwatch.notices.client import NoticeClient
from gridwatch.safety.breaker import CircuitBreaker
from gridwatch.safety.verified_call import VerifyPolicy

# How long a superseded action may take to unwind before the next goes ahead.
_CANCEL_WAIT_S: Final = 2.0
# A reconciliation read past AppDaemon's cache: HA answers in milliseconds;
# a tick must not wait longer than this on a stuck HA.
READ_PAST_CACHE_TIMEOUT_S: Final = 5.0
# The stop on terminate must finish well inside AppDaemon's patience; one
# quick attempt, read back for up to 2 s.
_TERMINATE_POLICY: Final = VerifyPolicy(call_timeout_s=3.0, verify_within_s=2.0, attempts=1)
_TERMINATE_BUDGET_S: Final = 6.0
# A timer set for "when the settle time ends" fires just after it.
_AFTER_S: Final = 0.05


class GuardController:
    """Runs the export guard on the HA port.

    Args:
        config: the validated options.
        hass: the HA port.
        notices: the app's notice client.
        name: the app's name (entity prefix).
        logger: the app's logger.
    """

    def __init__(
        self,
        config: GuardConfig,
        hass: HassPort,
        notices: NoticeClient,
        name: str,
        logger: logging.Logger,
    ) -> None:
        self._cfg, self._hass, self._log = config, hass, logger
        breaker = CircuitBreaker(config.breaker_threshold, config.breaker_reset_s, hass.monotonic)
        acts = ActuatorSet(config.enable, config.power, config.cutoff_soc, config.duration)
        self._acts = acts
        # Verify windows run on the real clock: they time I/O, not the guard.
        self._runner = ActionRunner(
            breaker, GuardActuators(hass, acts, config.verify), dry_run=config.dry_run
        )
        self._publisher = GuardPublisher(
            hass,
            notices,
            name,
            config.entities,
            dry_run=config.dry_run,
            logger=logger,
            heartbeat_s=config.heartbeat_s,
        )
        self._state = GuardState()  # actuator unknown: the first decision is a verified stop
        self._lock = asyncio.Lock()  # one decision at a time
        self._in_flight: tuple[Action, asyncio.Task[None]] | None = None
        self._names = {e: n for n, e in config.entities.items() if n in _READINGS}
        self._samples: dict[str, Sample] = {}
        self._unmetered = UnmeteredExport()
        self._recheck_at: dict[str, float] = {}  # quiet readings HA had nothing newer of
        self._ha_lacks_report_times = False
        self._closing = False
        self._wake: float | None = None
        self._limits = limits_of(config.guard)
        self._watch = supervisor.Watch()
        self._enable_on: bool | None = None  # the enable entity, as last seen

    @property
    def state(self) -> GuardState:
        """The guard's state now (for tests and benches)."""
        return self._state

    async def wait_idle(self, timeout_s: float = 2.0) -> None:
        """Wait until no action is in flight and every entity is written."""
        async with asyncio.timeout(timeout_s):
            while True:
                current = self._in_flight
                if current is not None and not current[1].done():
                    await asyncio.wait({current[1]})
                    continue
                await asyncio.sleep(0)
                await self._publisher.wait_idle()
                if not self._in_flight_busy():
                    return

    async def start(self) -> None:
        """Listen, read the current states, resume a standing request, decide."""
        hass, cfg = self._hass, self._cfg
        for entity, name in self._names.items():
            await hass.listen_state(entity, self._on_reading)
            now, current = hass.monotonic(), await hass.get_state(entity)
            raw, changed = (None, None) if current is None else (current.raw, current.last_changed)
            self._samples[name] = sample_since(raw, changed, now, hass.now())
        for entity in (cfg.enable.entity, cfg.power.entity):
            await hass.listen_state(entity, self._on_actuator)
        await hass.listen_event(cfg.event, self._on_event)
        if cfg.request_entity is not None:
            await hass.listen_state(cfg.request_entity, self._on_request_entity)
            # A request standing "on" across a restart is honoured.
            current = await hass.get_state(cfg.request_entity)
            await self._on_request_entity(cfg.request_entity, None, current)
        else:
            await self._resume_event_request()
        await self._refresh_quiet_readings()
        await hass.run_every(self._tick, cfg.tick_s)
        await self._cycle()

    async def stop(self) -> None:
        """Terminate: stop the discharge (verified, bounded) and stop publishing.

        A restarted guard resumes a standing request; a guard that is not
        coming back (removed, AppDaemon stopping) must not leave the battery
        discharging with nothing watching it.
        """
        self._closing = True
        async with self._lock:
            await self._cancel_in_flight()
            if not self._cfg.dry_run:
                actuators = GuardActuators(self._hass, self._acts, _TERMINATE_POLICY)
                stop = Action(ActionKind.STOP, self._state.seq + 1, reason="guard stopping")
                try:
                    async with asyncio.timeout(_TERMINATE_BUDGET_S):
                        done = await actuators.perform(stop)
                except TimeoutError:
                    self._log.error("could not stop the discharge on terminate: no answer")
                else:
                    log = self._log.info if done.result.ok else self._log.error
                    log(
                        "stop on terminate: %s",
                        "verified" if done.result.ok else done.result.reason,
                    )
        await self._publisher.close()

    # --- callbacks (each hands its input to the logic) ---------------------------

    async def _on_reading(
        self, entity: str, _old: EntityState | None, new: EntityState | None
    ) -> None:
        self._take_reading(self._names[entity], Sample(new and new.raw, self._hass.monotonic()))
        await self._cycle()

    def _take_reading(self, name: str, sample: Sample) -> None:
        before = self._samples.get(name)
        self._samples[name] = sample
        now = self._hass.monotonic()
        if name == "grid_power":
            self._unmetered = self._unmetered.on_export(self._export_of(sample.raw), now)
        elif name == "export_today":
            old = parse_float(None if before is None else before.raw).value
            new = parse_float(sample.raw).value
            increase = None if old is None or new is None else new - old
            self._unmetered = self._unmetered.on_counter(increase, now)

    async def _refresh_quiet_readings(self) -> None:
        """Re-date readings HA received unchanged (see quiet_readings)."""
        specs = self._cfg.guard.specs
        for entity, name in self._names.items():
            if self._ha_lacks_report_times:
                return
            sample, now = self._samples.get(name), self._hass.monotonic()
            max_age_s = getattr(specs, name).max_age_s
            if not is_quiet(sample, max_age_s, now) or now < self._recheck_at.get(entity, now):
                continue
            state = await read_past_cache(self._hass, entity, READ_PAST_CACHE_TIMEOUT_S)
            if state is not None and state.raw is not None and state.last_reported is None:
                # HA before 2024.4: only a change dates a reading.
                self._ha_lacks_report_times = True
                return
            fresh = redate(state, sample, now_mono=now, now_wall=self._hass.now())
            if fresh is None:
                self._recheck_at[entity] = now + max_age_s * RECHECK_SHARE
            elif sample is not None and fresh.raw == sample.raw:
                # The same value, reported again: only its age changes (the
                # export integral runs on; the counter has not moved).
                self._samples[name] = fresh
            else:
                # A value AppDaemon's cache missed (it lost the entity).
                self._take_reading(name, fresh)

    async def _on_actuator(
        self, entity: str, _o: EntityState | None, new: EntityState | None
    ) -> None:
        if entity == self._cfg.enable.entity:
            self._enable_on = parse_bool(new and new.raw)
        await self._cycle(reconcile_first=True)

    async def _on_event(self, _event: str, data: Mapping[str, Any]) -> None:
        try:
            command = guard_requests.parse_event(data, max_duration_min=self._cfg.max_request_min)
        except RequestError as err:
            self._log.warning("ignoring %s event: %s", self._cfg.event, err)
            return
        await self._command(command)

    async def _on_request_entity(
        self, _e: str, _o: EntityState | None, new: EntityState | None
    ) -> None:
        command = guard_requests.parse_request_state(new and new.raw)
        if command is not None:
            await self._command(command)

    async def _tick(self) -> None:
        await self._refresh_quiet_readings()
        await self._cycle(reconcile_first=True)

    # --- the loop ------------------------------------------------------------------

    async def _command(self, command: Command) -> None:
        self._log.info("request: %s", command)
        async with self._lock:
            now = self._hass.monotonic()
            if isinstance(command, StartCommand):
                self._state = guard.request_start(
                    self._state, command.power_w, command.duration_min, now, self._hass.now()
                )
            else:
                self._state = guard.request_stop(self._state)
            # The request is a fact before it is acted on: a guard restarted
            # after this point resumes exactly it (or nothing, after a stop).
            await self._publisher.write_request(self._state.request)
            await self._decide_and_act()

    async def _cycle(self, *, reconcile_first: bool = False) -> None:
        current = self._in_flight
        if self._closing or (current is not None and current[1] is asyncio.current_task()):
            # Called back from inside the action's own service call (its
            # entity changed): the action's outcome triggers the decision.
            return
        if reconcile_first:
            await self._reconcile()
        async with self._lock:
            await self._decide_and_act()

    async def _reconcile(self) -> None:
        if self._cfg.dry_run or self._in_flight_busy():
            return
        enable = await self._read(self._cfg.enable.entity)
        power = await self._read(self._cfg.power.entity)
        self._enable_on = parse_bool(enable)
        async with self._lock:
            if self._in_flight_busy():
                return
            self._state, problem = reconcile(
                self._state,
                parse_bool(enable),
                parse_float(power).value,
                tolerance_w=max(self._cfg.power.tolerance, 1.0),
                settings=self._cfg.guard,
                now=self._hass.monotonic(),
            )
        if problem is not None:
            self._log.warning("actuators do not match the guard: %s", problem)
            self._runner.record_failure(problem)

    async def _read(self, entity: str) -> str | None:
        state = await self._hass.get_state(entity)
        if state is None:
            state = await read_past_cache(self._hass, entity, READ_PAST_CACHE_TIMEOUT_S)
        return None if state is None else state.raw

    def _in_flight_busy(self) -> bool:
        return self._in_flight is not None and not self._in_flight[1].done()

    async def _decide_and_act(self) -> None:
        """Decide, launch the action, publish. Called with the lock held."""
        now, s, settings = self._hass.monotonic(), self._samples, self._cfg.guard
        readings = Readings(
            s["grid_power"], s["soc"], s["export_today"], s.get("pv_power"), s.get("battery_power")
        )
        ev = guard.evaluate_for(readings, settings, now, self._unmetered.value(now))
        before = self._state
        decision = guard.decide(before, ev, self._runner.breaker.snapshot(), settings, now)
        decision = self._supervise(before, decision, ev, now)
        self._state = decision.state
        for failure in decision.failures:
            self._log.error("%s", failure)
            if not self._cfg.dry_run:
                self._runner.record_failure(failure)
        for action in decision.actions:
            dry = "dry run, not performed: " if self._cfg.dry_run else ""
            self._log.info("%s%s", dry, action.describe())
            superseded = await self._cancel_in_flight()
            if superseded is not None:
                self._apply(superseded, Outcome.CANCELLED, None, None)
            self._in_flight = (action, asyncio.create_task(self._run(action)))
            # Yield once: the action's service call then leaves before this
            # callback returns to AppDaemon's own post-callback work (~2 ms).
            await asyncio.sleep(0)
        if decision.actions and self._state.stop_failed is None:
            # Published when the action is done (HA serves its call first);
            # that decision also sets the next timer. A failed stop is
            # published at once: it is critical from its first failure.
            return
        snapshot = self._runner.breaker.snapshot()
        self._publisher.submit(self._state, ev, snapshot, now, self._hass.now())
        await self._wake_at(guard.next_due(self._state, settings, now), now)

    def _supervise(
        self, before: GuardState, decision: Decision, ev: Evaluation, now: float
    ) -> Decision:
        """The supervisor's word on the controller's decision (see
        :mod:`gridwatch.guard.oversight`)."""
        seen = oversee(
            before,
            decision,
            ev,
            self._watch,
            enable_on=self._enable_on,
            limits=self._limits,
            settings=self._cfg.guard,
            now=now,
        )
        self._watch = seen.watch
        if seen.order is not None:
            self._log.warning("%s", seen.order.reason)
        return seen.decision

    async def _wake_at(self, due: float | None, now: float) -> None:
        """Decide again when a time-gated rule falls due (one timer per time)."""
        if due is None or due == self._wake or self._closing:
            return
        self._wake = due
        await self._hass.run_in(self._cycle, due - now + _AFTER_S)

    async def _cancel_in_flight(self) -> Action | None:
        current, self._in_flight = self._in_flight, None
        if current is None or current[1].done():
            return None
        current[1].cancel()
        # It unwinds at once (nothing in it holds off cancellation); bounded anyway.
        await asyncio.wait({current[1]}, timeout=_CANCEL_WAIT_S)
        return current[0]

    async def _run(self, action: Action) -> None:
        outcome, reason, read_w = await self._runner.run(action)
        async with self._lock:
            if self._in_flight is not None and self._in_flight[1] is asyncio.current_task():
                self._in_flight = None
            self._apply(action, outcome, reason, read_w)
            await self._decide_and_act()

    def _apply(
        self, action: Action, outcome: Outcome, reason: str | None, read_w: float | None
    ) -> None:
        now = self._hass.monotonic()
        self._state = guard.apply_result(
            self._state, action, outcome, reason, self._cfg.guard, now, read_w
        )
        log = self._log.error if outcome is Outcome.FAILED else self._log.info
        log("%s", self._state.last_action)

    def _export_of(self, raw: object) -> float | None:
        value = parse_float(raw).value
        if value is None:
            return None
        return value if self._cfg.guard.grid_sign is GridSign.EXPORT_POSITIVE else -value

    async def _resume_event_request(self) -> None:
        """A request made by event survives a restart through the guard's
        request entity: resumed only if it still stands, and only until its
        wall-clock end."""
        with contextlib.suppress(Exception):  # nothing to resume is the safe answer
            fact = await self._hass.get_state(self._publisher.request_entity)
            resumed = standing_request(fact, self._hass.now())
            if resumed is None:
                return
            power, minutes = resumed
            now = self._hass.monotonic()
            self._state = guard.request_start(self._state, power, minutes, now, self._hass.now())
            self._log.info(
                "resuming the standing request (power %s W, minutes left %s)", power, minutes
            )


_READINGS: Final = frozenset({"grid_power", "soc", "export_today", "pv_power", "battery_power"})
