"""The energy tally's run loop: one app instance's cycles, performed through
the HA port.

Each cycle (at start, every ``interval_s``, on the ``refresh_event`` and after
HA restarts) sends at most the two ``recorder/statistics_during_period``
commands built by :func:`gridwatch.energy.recorder_statistics.build_requests`,
whatever the number of meters: ``today`` always, ``month`` only when the kept
complete days of the month (:mod:`gridwatch.energy.month_cache`) do not serve
the cycle (first cycle, new local day, refresh event, HA start).
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
from gridwatch.energy.entities import status_entities, tally_entities
from gridwatch.energy.month_cache import MonthCacheHolder
from gridwatch.energy.periods import TallyPeriods, tally_periods, zone_of
from gridwatch.energy.recorder_statistics import (
    StatisticsFormatError,
    build_requests,
    parse_statistics,
)
from gridwatch.energy.settings import EnergyTallyConfig
from gridwatch.energy.tally import LiveReading, Tally, compute_tally_from, live_reading
from gridwatch.hass.entity_update import ChangedOnlyWriter
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import Handle, HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NoticeClient


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
        self.app_slug = slugify(app_name)
        self.state = CycleState()
        zone = ZoneInfo(config.time_zone) if config.time_zone else zone_of(hass.now().tzinfo)
        if zone is None:
            logger.warning("cannot name AppDaemon's time zone; counting days in UTC")
        self.zone = zone or ZoneInfo("UTC")
        self._lock = asyncio.Lock()
        self._again = False
        self._handles: list[Handle] = []
        # Unchanged entities are not rewritten: 500 meters would mean 1000
        # writes per cycle.
        self._writer = ChangedOnlyWriter(hass, logger, clock=hass.monotonic)
        self.month = MonthCacheHolder()
        self.requests_sent = 0  # statistics requests of the last cycle

    async def start(self) -> None:
        """Run the first cycle, then on the timer, the refresh event and HA starts."""
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

    async def _on_refresh(self, _event: str, _data: Mapping[str, Any]) -> None:
        self.month.refetch()  # e.g. statistics were imported for earlier days
        await self.run_cycle()

    async def _on_ha_started(self) -> None:
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

    async def _query(self, periods: TallyPeriods) -> Tally:
        ids = [m.statistic_id for m in self.config.meters]
        requests = build_requests(ids, periods, request_units=self.config.request_units)
        timeout = self.config.query_timeout_s
        units = self.config.request_units
        before = self.month.lookup(periods, ids)
        self.requests_sent = 1
        hourly = await self.hass.websocket_command(requests.today, timeout_s=timeout)
        if before is None:
            self.requests_sent = 2
            daily = await self.hass.websocket_command(requests.month, timeout_s=timeout)
            before = self.month.store(
                self.config.meters, parse_statistics(daily, ids), periods, units_requested=units
            )
        live: dict[str, LiveReading] = {}
        for sid in ids:
            # External statistics (domain:x) have no entity to read live.
            reading = live_reading(await self.hass.get_state(sid)) if "." in sid else None
            if reading is not None:
                live[sid] = reading
        return compute_tally_from(
            self.config.meters,
            parse_statistics(hourly, ids),
            before,
            live,
            periods,
            units_requested=units,
        )

    async def _publish(self, cycle_ms: float) -> None:
        state = self.state
        updates = []
        if state.last_good is not None:
            stale = state.failures > 0
            updates = tally_entities(state.last_good, self.app_slug, self.zone, stale=stale)
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
