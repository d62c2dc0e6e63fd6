"""Link monitor app: device links -> HA entities, availability and outage notices.

Wiring only; the decisions are in :mod:`gridwatch.links`. Each configured link is
built by :func:`gridwatch.runtime.link_factory.build_link` and started in the background;
its messages update the value sensors at once, and a tick every
``tick_interval_s`` (and after HA restarts) evaluates grace, staleness and
outages for every link. Each link is handled on its own: one that fails to
build, connect or publish never holds up the others.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime

from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import Handle, HassPort
from gridwatch.links.availability import Fatal, FatalKind
from gridwatch.links.monitor import NOT_BUILT_HEALTH, LinkMonitor, fatal_of
from gridwatch.links.publisher import EntityPublisher, send_notice
from gridwatch.notices.client import NoticeClient
from gridwatch.runtime.app_base import GridwatchApp
from gridwatch.runtime.link_factory import LinkBuilder, build_link, plan_for, subscribe_options
from gridwatch.transport.link import Link, Message

# Link.disconnect() bounds itself (close 5 s + supervisor 5 s); this is the net.
DISCONNECT_TIMEOUT_S = 15.0


class LinkMonitorRunner:
    """Runs every link of one app instance and publishes their entities."""

    def __init__(
        self,
        config: LinkMonitorConfig,
        hass: HassPort,
        notices: NoticeClient,
        logger: logging.Logger,
        build: LinkBuilder | None = None,
    ) -> None:
        self.config, self.hass, self.notices, self.log = config, hass, notices, logger
        self.build = build or functools.partial(build_link, clock=hass.monotonic, logger=logger)
        self.publisher = EntityPublisher(hass, logger, clock=hass.monotonic)
        self.links: dict[str, Link] = {}
        self.monitors: dict[str, LinkMonitor] = {}
        self._broken: dict[str, Fatal] = {}  # link -> why it could not be built
        self._dirty: dict[str, set[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._handles: list[Handle] = []

    async def start(self) -> None:
        """Build, subscribe and start every link; publish; start the tick."""
        now = self.hass.monotonic()
        for cfg in self.config.links:
            monitor = self.monitors[cfg.name] = LinkMonitor(plan_for(cfg), now, self.log)
            try:
                link = self.build(cfg)
                for key in monitor.plan.sources():
                    callback = functools.partial(self._on_message, cfg.name, key)
                    await link.subscribe(key, callback, **subscribe_options(cfg))
            except Exception as err:  # a bad link must not stop the others
                self.log.error("link %s cannot start: %s", cfg.name, err)
                self._broken[cfg.name] = Fatal(FatalKind.START, f"cannot start: {err}")
                continue
            self.links[cfg.name] = link
            link.start()
        await self.evaluate()
        self._handles += [
            await self.hass.run_every(self.evaluate, self.config.tick_interval_s),
            await self.hass.listen_ha_started(self.evaluate),
        ]

    def _on_message(self, name: str, key: str, message: Message) -> None:
        fresh = self.monitors[name].on_message(key, message)
        if fresh:
            self._dirty.setdefault(name, set()).update(fresh)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self.flush())
                self._flusher.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        # A background task: nobody awaits it, so its failure is logged here.
        if not task.cancelled() and task.exception() is not None:
            self.log.error("publishing link values failed", exc_info=task.exception())

    async def flush(self) -> None:
        """Publish the value sensors that got new readings since the last flush."""
        async with self._lock:  # an evaluation's older renders must not land last
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                now, wall = self.hass.monotonic(), self.hass.now()
                for name, values in dirty.items():
                    monitor = self.monitors[name]
                    if monitor.view is None or monitor.view.outage_since is not None:
                        # Data flows again before the tick noticed: evaluate
                        # now, or the values would say "offline" until the tick.
                        await self._evaluate_link(name, now, wall)
                        continue
                    for value in sorted(values):
                        await self.publisher.write(monitor.render_value(value, now, wall))

    async def evaluate(self) -> None:
        """Evaluate every link: publish its entities, raise or resolve its notice."""
        async with self._lock:
            now, wall = self.hass.monotonic(), self.hass.now()
            for name in self.monitors:
                await self._evaluate_link(name, now, wall)

    async def _evaluate_link(self, name: str, now: float, wall: datetime) -> None:
        link = self.links.get(name)
        fatal = self._broken.get(name) if link is None else fatal_of(link.fatal_error)
        health = NOT_BUILT_HEALTH if link is None else link.health
        result = self.monitors[name].evaluate(health, now, wall, fatal)
        for update in result.updates:
            await self.publisher.write(update)
        for op in result.notices:
            try:
                await send_notice(op, self.notices, self.hass)
            except HassError as err:
                self.log.warning("link %s: could not send its notice: %s", name, err)

    async def stop(self) -> None:
        """Stop the tick, disconnect (and await) every link, publish them stopped."""
        for handle in self._handles:
            await handle.cancel()
        self._handles.clear()
        links = list(self.links.items())
        results = await asyncio.gather(
            *(asyncio.wait_for(link.disconnect(), DISCONNECT_TIMEOUT_S) for _, link in links),
            return_exceptions=True,
        )
        # After the disconnects: no message can start another flush now.
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.wait({self._flusher})
        for (name, _), result in zip(links, results, strict=True):
            if isinstance(result, BaseException):
                self.log.warning("link %s: disconnect failed: %r", name, result)
        now, wall = self.hass.monotonic(), self.hass.now()
        for name, monitor in self.monitors.items():
            link = self.links.get(name)
            health = NOT_BUILT_HEALTH if link is None else link.health
            for update in monitor.shutdown_updates(health, now, wall):
                await self.publisher.write(update)


class LinkMonitorApp(GridwatchApp[LinkMonitorConfig]):
    """The AppDaemon app (``module: gridwatch_link_monitor``, ``class: LinkMonitorApp``)."""

    schema = LinkMonitorSchema
    runner: LinkMonitorRunner | None = None

    async def setup(self, config: LinkMonitorConfig, hass: HassPort, notices: NoticeClient) -> None:
        """Start every link (see :class:`GridwatchApp`)."""
        self.runner = LinkMonitorRunner(config, hass, notices, self.get_main_log())
        await self.runner.start()

    async def teardown(self) -> None:
        """Disconnect and await every link."""
        if self.runner is not None:
            await self.runner.stop()
