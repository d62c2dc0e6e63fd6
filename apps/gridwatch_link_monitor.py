"""Link monitor app: device links -> HA entities, availability and outage notices.

Wiring only: the run loop is :class:`gridwatch.links.runner.LinkMonitorRunner`
and each configured link is built by :mod:`gridwatch.runtime.link_factory`.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.hass.ports import HassPort
from gridwatch.links.entities import link_entity_ids
from gridwatch.links.runner import LinkMonitorRunner
from gridwatch.notices.client import NoticeClient
from gridwatch.runtime.app_base import GridwatchApp
from gridwatch.runtime.entity_backend import sub_device
from gridwatch.runtime.link_factory import link_setups
from gridwatch.runtime.mqtt_discovery import DiscoveryDevice


class LinkMonitorApp(GridwatchApp[LinkMonitorConfig]):
    """The AppDaemon app (``module: gridwatch_link_monitor``, ``class: LinkMonitorApp``)."""

    schema = LinkMonitorSchema
    runner: LinkMonitorRunner | None = None

    async def setup(self, config: LinkMonitorConfig, hass: HassPort, notices: NoticeClient) -> None:
        """Start every link (see :class:`GridwatchApp`)."""
        log = self.get_main_log()
        setups = link_setups(config, clock=hass.monotonic, logger=log)
        self.runner = LinkMonitorRunner(setups, config.tick_interval_s, hass, notices, log)
        await self.runner.start()

    def entity_devices(self, config: LinkMonitorConfig) -> Mapping[str, DiscoveryDevice]:
        """One device per link (MQTT entity backend)."""
        devices: dict[str, DiscoveryDevice] = {}
        for link in config.links:
            device = sub_device(self.name, link.name, f"{link.transport} link")
            for entity_id in link_entity_ids(link.name, [v.name for v in link.values]):
                devices[entity_id] = device
        return devices

    async def teardown(self) -> None:
        """Disconnect and await every link."""
        if self.runner is not None:
            await self.runner.stop()
