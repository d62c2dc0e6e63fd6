"""The energy tally's run loop: one app instance's cycles, performed through
the HA port.

Each cycle (at start, every ``interval_s``, on the ``refresh_event`` and after
HA restarts) sends the ``today`` query of
:mod:`gridwatch.energy.recorder_statistics` and the pages the kept month
(:mod:`gridwatch.energy.month_cache`) asks for: a meter's whole month on its
first read (and after the refresh event, HA starting, or history that
arrived later), the days since the last read on a new day, the recheck once
an hour, the probe of meters without history. Every request is split so its
answer stays under AppDaemon's message cap. Days are counted in HA's time
zone, read from HA's ``get_config`` (:mod:`gridwatch.energy.ha_zone`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from gridwatch.energy.cycle import (
    NOTICE_CONDITION,
    NOTICE_TITLE,
    CycleState,
    after_failure,
    after_success,
    notice_message,
    notice_steps,
)
from gridwatch.energy.entities import (
    registry_entity,
    removed_entities,
    status_entities,
    tally_entities,
)
from gridwatch.energy.ha_zone import ZoneMismatchError, choose_zone, read_ha_time_zone
from gridwatch.energy.month_cache import (
    HISTORY_CHANGED,
    MAX_PAGES_PER_CYCLE,
    MonthLedger,
    Page,
    PageKind,
)
from gridwatch.energy.periods import TallyPeriods, tally_periods, zone_of
from gridwatch.energy.recorder_statistics import (
    StatisticsFormatError,
    StatRow,
    month_request,
    parse_statistics,
    probe_request,
    split_for_answer,
    today_request,
    today_rows_per_meter,
)
from gridwatch.energy.settings import EnergyTallyConfig
from gridwatch.energy.tally import (
    NO_SUM,
    LiveReading,
    Tally,
    compute_tally_from,
    live_reading,
    scale_of,
)
from gridwatch.energy.units import unit_change_problem
from gridwatch.hass.entity_update import ChangedOnlyWriter
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import Handle, HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NoticeClient

# HA's websocket command for statistics metadata (unit, has_sum), since 2022.
METADATA_COMMAND = "recorder/get_statistics_metadata"


class TallyRunner:
    """Runs the cycles of one app instance and publishes the results."""

    def __init__(
        self,
        config: EnergyTallyConfig,
        hass: HassPort,
        notices: NoticeClient,
        app_name: str,
        logger: logging.Logger,
    ) -> None:
        self.config, self.hass, self.notices, self.log = config, hass, notices, logger
        self.app_name = app_name
        self.app_slug = slugify(app_name)
        self.state = CycleState()
        # Until HA's zone is read (start), the configured or AppDaemon's zone.
        zone = ZoneInfo(config.time_zone) if config.time_zone else zone_of(hass.now().tzinfo)
        self.zone = zone or ZoneInfo("UTC")
        self.zone_from_ha = False
        self._new_zone: ZoneInfo | None = None
        self._lock = asyncio.Lock()
        self._again = False
        self._handles: list[Handle] = []
        # Unchanged entities are not rewritten: 500 meters would mean 1000
        # writes per cycle.
        self._writer = ChangedOnlyWriter(hass, logger, clock=hass.monotonic)
        self.month = self._new_ledger()
        self.requests_sent = 0  # statistics requests of the last cycle
        self._scales = {m.statistic_id: scale_of(m, config.request_units) for m in config.meters}
        self._warned_no_sum: set[str] = set()
        # The unit each statistic had when first seen this month (HA's
        # metadata, asked once an hour), and what changed since.
        self._units: dict[str, object] = {}
        self._units_key: tuple[object, object] | None = None
        self._unit_problems: dict[str, str] = {}

    def _new_ledger(self) -> MonthLedger:
        return MonthLedger(
            self.zone,
            self.config.recheck_days,
            tolerance_kwh=self.config.reset_tolerance_kwh,
            max_pages=MAX_PAGES_PER_CYCLE,
        )

    async def start(self) -> None:
        """Read HA's zone, retire entities of removed meters, run the first
        cycle, then on the timer, the refresh event and HA starts.

        Raises:
            ZoneMismatchError: ``time_zone`` differs from HA's (days would not
                match the recorder's); the app reports it as a config error.
        """
        await self._resolve_zone(strict=True)
        await self._retire_removed()
        await self.run_cycle()
        self._handles += [
            await self.hass.run_every(self.run_cycle, self.config.interval_s),
            await self.hass.listen_event(self.config.refresh_event, self._on_refresh),
            await self.hass.listen_ha_started(self._on_ha_started),
        ]

    async def stop(self) -> None:
        """Cancel the timer and listeners."""
        for handle in self._handles:
            await handle.cancel()
        self._handles.clear()

    async def _resolve_zone(self, *, strict: bool = False) -> None:
        """Count days in HA's zone; a differing ``time_zone`` is a config error.

        Args:
            strict: raise :class:`ZoneMismatchError` (at start, so the app
                refuses to run); later, log it and follow HA.
        """
        try:
            ha_zone = await read_ha_time_zone(self.hass, self.config.query_timeout_s)
        except HassError as err:
            self.log.warning(
                "could not read Home Assistant's time zone (%s); counting days in %s "
                "until HA answers",
                err,
                self.zone.key,
            )
            return
        try:
            choice = choose_zone(ha_zone, self.config.time_zone)
        except ZoneMismatchError as err:
            if strict:
                raise
            self.log.error("time_zone: %s; counting days in %s", err, ha_zone)
            choice = choose_zone(ha_zone, None)
        self.zone_from_ha = True
        if choice.zone.key != self.zone.key:
            # Applied by the next cycle, never under one that is running.
            self._new_zone = choice.zone

    async def _retire_removed(self) -> None:
        """Mark the entities of meters (or roles) no longer configured unavailable."""
        entity_id = registry_entity(self.app_slug, ()).entity_id
        try:
            previous = await self.hass.get_state(entity_id)
        except HassError as err:
            self.log.warning("could not read %s: %s", entity_id, err)
            return
        updates = removed_entities(previous, self.config.meters, self.app_slug)
        for update in updates:
            self.log.info("%s is no longer configured: marking it unavailable", update.entity_id)
        await self._writer.write_all(updates)

    async def _on_refresh(self, _event: str, _data: Mapping[str, Any]) -> None:
        self.month.refetch()  # e.g. statistics were imported for earlier days
        await self.run_cycle()

    async def _on_ha_started(self) -> None:
        if not self.zone_from_ha:
            await self._resolve_zone()
        self.month.refetch(settle_from=self.hass.now())
        await self.run_cycle()

    async def run_cycle(self) -> None:
        """Run a cycle; a trigger during one makes exactly one more afterwards."""
        if self._lock.locked():
            # A slow recorder must not stack cycles, but a refresh asked for
            # during one must not be lost either: coalesce into one rerun.
            self._again = True
            return
        async with self._lock:
            self._again = True
            while self._again:
                self._again = False
                await self._cycle()

    async def _cycle(self) -> None:
        """One cycle: query, compute, publish; a failure keeps the last values."""
        started = self.hass.monotonic()
        if self._new_zone is not None:
            # Kept days were counted in the old zone: start afresh.
            self.zone, self._new_zone = self._new_zone, None
            self.month = self._new_ledger()
        periods = tally_periods(self.hass.now(), self.zone)
        try:
            tally = await self._query(periods)
        except (HassError, StatisticsFormatError) as err:
            outcome = after_failure(self.state, str(err), self.config.failure_threshold)
        else:
            outcome = after_success(self.state, tally, self.hass.now())
        self.state = outcome.state
        for level, message in outcome.logs:
            self.log.log(level, message)
        try:
            if outcome.raise_notice:
                message = notice_message(self.state)
                await self.notices.raise_notice(
                    NOTICE_CONDITION,
                    "warning",
                    NOTICE_TITLE,
                    message,
                    notice_steps(self.config.refresh_event),
                )
            if outcome.resolve_notice:
                await self.notices.resolve(NOTICE_CONDITION)
            await self._publish((self.hass.monotonic() - started) * 1000.0)
        except HassError as err:
            # HA went away mid-cycle; the next cycle (or HA start) publishes.
            self.log.warning("could not publish the energy tally: %s", err)

    async def _send(self, command: Mapping[str, Any], ids: list[str]) -> Any:
        self.requests_sent += 1
        answer = await self.hass.websocket_command(command, timeout_s=self.config.query_timeout_s)
        return parse_statistics(answer, ids)

    async def _query(self, periods: TallyPeriods) -> Tally:
        ids = [m.statistic_id for m in self.config.meters]
        units = self.config.request_units
        plan = self.month.plan(periods, ids)
        self.requests_sent = 0
        hourly: dict[str, tuple[StatRow, ...]] = {}
        types = ("sum", "state")
        for chunk in split_for_answer(ids, today_rows_per_meter(periods), types):
            command = today_request(chunk, periods, request_units=units)
            hourly |= await self._send(command, list(chunk))
        waiting = dict(plan.waiting)
        changed: list[str] = []
        for page in plan.pages:
            wanted = list(page.ids)
            if page.kind is PageKind.PROBE:
                command = probe_request(wanted, periods, request_units=units)
                changed += self.month.store_probe(page, await self._send(command, wanted), periods)
            else:
                await self._read(page, periods)
        budget = self.month.max_pages - len(plan.pages)
        for page in self.month.reread_pages(periods, changed, budget):
            await self._read(page, periods)
        for sid in changed:
            self.log.info("meter %s: history arrived after its last read", sid)
            if self.month.is_due_again(sid):
                waiting[sid] = HISTORY_CHANGED  # read on the next cycle; marked until then
        await self._check_units(periods, ids)
        live: dict[str, LiveReading] = {}
        for sid in ids:
            # External statistics (domain:x) have no entity to read live.
            reading = live_reading(await self.hass.get_state(sid)) if "." in sid else None
            if reading is not None:
                live[sid] = reading
        tally = compute_tally_from(
            self.config.meters,
            hourly,
            self.month.meters,
            live,
            periods,
            units_requested=units,
            tolerance_kwh=self.config.reset_tolerance_kwh,
            waiting=waiting,
            problems=self._unit_problems,
        )
        for result in tally.meters:
            sid = result.meter.statistic_id
            if result.problem == NO_SUM and sid not in self._warned_no_sum:
                self._warned_no_sum.add(sid)
                self.log.warning("meter %s (%s): %s", result.meter.name, sid, NO_SUM)
        return tally

    async def _check_units(self, periods: TallyPeriods, ids: list[str]) -> None:
        """Once an hour, compare each statistic's unit with the first seen this month.

        A change is a warning and the meter's ``problem``; the figure stays
        published. Failures are a warning only (the month is still right
        without this check).
        """
        if self._units_key == (periods.month_start, periods.hour_start):
            return
        if self._units_key is None or self._units_key[0] != periods.month_start:
            self._units, self._unit_problems = {}, {}
        command = {"type": METADATA_COMMAND, "statistic_ids": sorted(set(ids))}
        self._units_key = (periods.month_start, periods.hour_start)  # failed: next hour
        try:
            answer = await self.hass.websocket_command(
                command, timeout_s=self.config.query_timeout_s
            )
        except HassError as err:
            self.log.warning("could not read the statistics' units: %s", err)
            return
        for item in answer if isinstance(answer, list) else ():
            if not isinstance(item, Mapping):
                continue
            sid, unit = item.get("statistic_id"), item.get("statistics_unit_of_measurement")
            if not isinstance(sid, str):
                continue
            before = self._units.setdefault(sid, unit)
            if before != unit and sid not in self._unit_problems:
                problem = unit_change_problem(str(before), str(unit))
                self._unit_problems[sid] = problem
                self.log.warning("meter %s: %s", sid, problem)

    async def _read(self, page: Page, periods: TallyPeriods) -> None:
        wanted = list(page.ids)
        units = self.config.request_units
        command = month_request(wanted, page.window_start, periods, request_units=units)
        self.month.store(page, await self._send(command, wanted), periods, self._scales)

    async def _publish(self, cycle_ms: float) -> None:
        state = self.state
        updates = []
        if state.last_good is not None:
            stale = state.failures > 0
            updates = tally_entities(state.last_good, self.app_slug, self.zone, stale=stale)
        updates.append(registry_entity(self.app_slug, self.config.meters))
        # Health last: once it shows this cycle, every value of it is in HA.
        updates += status_entities(
            self.app_slug,
            state,
            meters=len(self.config.meters),
            failure_threshold=self.config.failure_threshold,
            cycle_ms=cycle_ms,
            requests_sent=self.requests_sent,
        )
        if not await self._writer.write_all(updates):
            # HA went away mid-cycle; the next cycle (or HA start) publishes.
            self.log.warning("could not publish the energy tally; the next cycle retries")
