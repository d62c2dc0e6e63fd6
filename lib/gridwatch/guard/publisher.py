"""Publishes the export guard's entities and keeps its notices in step with
its conditions: raised while a condition holds, resolved when it clears.

:meth:`GuardPublisher.submit` never waits for HA: a background task writes
the latest submitted snapshot (older ones still waiting are skipped), so a
slow entity write never delays the guard's next reaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime

from gridwatch.guard.decisions import DischargeRequest, GuardState
from gridwatch.guard.entities import entity_ids, render, render_request
from gridwatch.guard.readings import Evaluation
from gridwatch.guard.status import Condition, Status, notice_text, status
from gridwatch.hass.entity_update import ChangedOnlyWriter
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import EntityWriter
from gridwatch.hass.states import slugify as slug
from gridwatch.notices.client import NoticeClient
from gridwatch.safety.breaker import BreakerSnapshot

_LOGGER = logging.getLogger(__name__)


class GuardPublisher:
    """Writes what changed, and raises/resolves notices.

    Args:
        hass: entity writes.
        notices: the app's notice client (dedupes unchanged raises).
        app_name: the app's name (notice texts; slugged, the entity prefix).
        entities: reading name / ``enable`` -> entity id, named in notices.
        dry_run: published as the health when all is well.
        logger: where to log failed writes.
    """

    def __init__(
        self,
        hass: EntityWriter,
        notices: NoticeClient,
        app_name: str,
        entities: Mapping[str, str],
        *,
        dry_run: bool,
        logger: logging.Logger | None = None,
        heartbeat_s: float = 30.0,
    ) -> None:
        self._hass = hass
        self._notices = notices
        self._app = app_name
        self._prefix = slug(app_name)
        self._entities = entities
        self._dry_run = dry_run
        self._heartbeat_s = heartbeat_s
        self._logger = logger or _LOGGER
        self._writer = ChangedOnlyWriter(hass, self._logger)
        self._latest: tuple[GuardState, Evaluation, BreakerSnapshot, float, datetime] | None = None
        self._task: asyncio.Task[None] | None = None
        self._resolved: set[Condition] = set()  # resolved since last raised

    @property
    def health_entity(self) -> str:
        """The health entity's id (it also carries the standing request)."""
        return entity_ids(self._prefix)["health"]

    @property
    def request_entity(self) -> str:
        """The entity carrying the standing request (a restart resumes it)."""
        return entity_ids(self._prefix)["request"]

    async def write_request(self, request: DischargeRequest | None) -> None:
        """Write the standing request now (awaited, bounded by the writer's
        timeout): a request change is published before the guard acts on
        it. A failed write is logged; the next publish retries it."""
        await self._writer.write(render_request(self._prefix, request))

    def submit(
        self,
        state: GuardState,
        ev: Evaluation,
        breaker: BreakerSnapshot,
        now_mono: float,
        now_wall: datetime,
    ) -> None:
        """Queue a snapshot for publishing (replacing one not yet written);
        returns at once. Call on the event loop."""
        self._latest = (state, ev, breaker, now_mono, now_wall)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"{self._prefix}-publish")

    async def wait_idle(self) -> None:
        """Wait until every submitted snapshot is written."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def close(self) -> None:
        """Stop publishing (a write in progress is cancelled)."""
        task, self._task = self._task, None
        self._latest = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self) -> None:
        while self._latest is not None:
            snapshot, self._latest = self._latest, None
            try:
                await self.publish(*snapshot)
            except Exception:  # a bug here must not end publishing for good
                self._logger.exception("publishing %s failed", self._prefix)

    async def publish(
        self,
        state: GuardState,
        ev: Evaluation,
        breaker: BreakerSnapshot,
        now_mono: float,
        now_wall: datetime,
    ) -> Status:
        """Publish the entities that changed and sync the notices.

        Returns:
            The status published.
        """
        st = status(state, ev, breaker, dry_run=self._dry_run)
        for item in render(
            self._prefix,
            state,
            ev,
            breaker,
            st,
            dry_run=self._dry_run,
            now_mono=now_mono,
            now_wall=now_wall,
            heartbeat_s=self._heartbeat_s,
        ):
            await self._writer.write(item)
        for condition in Condition:
            try:
                if condition in st.conditions:
                    text = notice_text(condition, self._app, state, ev, breaker, self._entities)
                    self._resolved.discard(condition)
                    await self._notices.raise_notice(
                        condition.value, text.severity, text.title, text.message, text.steps
                    )
                elif condition not in self._resolved:
                    # Once resolved, not asked again each reading (the
                    # notice client would answer "already" at a cost).
                    await self._notices.resolve(condition.value)
                    self._resolved.add(condition)
            except HassError as err:
                self._logger.warning("could not update notice %s: %s", condition.value, err)
        return st
