"""Gridwatch export guard: battery discharge under an export limit, fail-safe.

Wiring only: the loop is :class:`gridwatch.guard.controller.GuardController`
and the decisions are :mod:`gridwatch.guard.decisions`'s. On terminate
(reload, removal, AppDaemon stopping) the guard stops the discharge; a
restarted guard resumes a standing request.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridwatch.config.export_guard_schema import ExportGuardConfig, ExportGuardSchema
from gridwatch.guard.controller import GuardController
from gridwatch.guard.entities import entity_ids
from gridwatch.hass.ports import HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NoticeClient
from gridwatch.runtime.app_base import GridwatchApp
from gridwatch.runtime.chart_route import ExportChartRoute


class ExportGuard(GridwatchApp[ExportGuardConfig]):
    """Starts, follows and stops a battery discharge within the export limits."""

    schema = ExportGuardSchema
    controller: GuardController | None = None

    async def setup(self, config: ExportGuardConfig, hass: HassPort, notices: NoticeClient) -> None:
        self.controller = GuardController(config, hass, notices, self.name, self.logger)
        await self.controller.start()
        # The panel's chart of export against the limit: /app/<name>_chart.
        await ExportChartRoute(self, config, slugify(self.name), self.logger).register(self.name)

    def expected_entities(self, config: ExportGuardConfig) -> Iterable[str]:
        """Written by the publisher's task, maybe after setup returned: kept."""
        return entity_ids(slugify(self.name)).values()

    async def teardown(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
