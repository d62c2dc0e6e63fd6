"""Energy tally app: energy today / this month per meter from batched statistics.

Wiring only: the run loop is :class:`gridwatch.energy.runner.TallyRunner` and
the arithmetic is in :mod:`gridwatch.energy`.

Entities: ``sensor.<meter name slug>_energy_today`` / ``_energy_this_month``
per meter (the slug of the configured ``name``: ``Grid import`` ->
``grid_import``), ``sensor.<app>_<role>_today`` / ``_this_month`` per role,
``sensor.<app>_health`` and ``sensor.<app>_last_update``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridwatch.config.base import ConfigError, ConfigProblem
from gridwatch.config.energy_tally_schema import EnergyTallyConfig, EnergyTallySchema
from gridwatch.energy.entities import meter_entity_ids, role_entity_ids
from gridwatch.energy.ha_zone import ZoneMismatchError
from gridwatch.energy.runner import TallyRunner
from gridwatch.hass.ports import HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NoticeClient
from gridwatch.runtime.app_base import GridwatchApp, report_config_error


class EnergyTally(GridwatchApp[EnergyTallyConfig]):
    """The AppDaemon app (``module: gridwatch_energy_tally``, ``class: EnergyTally``)."""

    schema = EnergyTallySchema
    runner: TallyRunner | None = None

    async def setup(self, config: EnergyTallyConfig, hass: HassPort, notices: NoticeClient) -> None:
        """Start the tally (see :class:`GridwatchApp`)."""
        runner = TallyRunner(config, hass, notices, self.name, self.get_main_log())
        try:
            await runner.start()
        except ZoneMismatchError as err:
            # Known only once HA answers, so reported like a schema error: the
            # app does not run with days HA's recorder does not count.
            await runner.stop()
            error = ConfigError(
                self.name, [ConfigProblem("time_zone", str(err), f"time_zone: {err.ha_zone}")]
            )
            self.logger.error("%s", error)
            await report_config_error(hass, self.name, error, self.logger)
            return
        self.runner = runner

    def expected_entities(self, config: EnergyTallyConfig) -> Iterable[str]:
        """The energy sensors appear after the first good cycle: kept until then."""
        roles = {m.role for m in config.meters if m.role is not None}
        for meter in config.meters:
            yield from meter_entity_ids(meter)
        for role in roles:
            yield from role_entity_ids(slugify(self.name), role)

    async def teardown(self) -> None:
        """Stop the tally's timer and listeners."""
        if self.runner is not None:
            await self.runner.stop()
