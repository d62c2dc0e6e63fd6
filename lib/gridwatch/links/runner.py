"""The link monitor's run loop: every link of one app instance, its messages
and its periodic evaluation, performed through the HA port.

Each link is handled on its own: one that fails to build, connect or publish
never holds up the others. Messages update the value sensors at once; a tick
every ``tick_interval_s`` (and after HA restarts) evaluates grace, staleness
and outages for every link.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridwatch.hass.entity_update import ChangedOnlyWriter
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import Handle, HassPort
from gridwatch.links.availability import Fatal, FatalKind
from gridwatch.links.monitor import NOT_BUILT_HEALTH, LinkMonitor, LinkPlan, fatal_of
from gridwatch.links.publisher import HEARTBEAT_ATTRIBUTES, send_notice
from gridwatch.notices.client import NoticeClient
from gridwatch.transport.link import Link, Message


@dataclass(frozen=True)
class LinkSetup:
    """One configured link, ready to run.

    Attributes:
        plan: the monitor's view of the link (no credentials in it).
        build: makes the transport link; may raise (a bad link is reported,
            the others run).
        subscribe_options: passed to ``link.subscribe`` for each of its keys.
    """

    plan: LinkPlan
    build: Callable[[], Link]
    subscribe_options: Mapping[str, Any]


# Link.disconnect() bounds itself (close 5 s + supervisor 5 s); this is the net.
DISCONNECT_TIMEOUT_S = 15.0


class LinkMonitorRunner:
    """Runs every link of one app instance and publishes their entities."""

    def __init__(
        self,
        setups: Sequence[LinkSetup],
        tick_interval_s: float,
        hass: HassPort,
        notices: NoticeClient,
        logger: logging.Logger,
    ) -> None:
        self.setups, self.tick_interval_s = setups, tick_interval_s
        self.hass, self.notices, self.log = hass, notices, logger
        self.publisher = ChangedOnlyWriter(
            hass, logger, clock=hass.monotonic, heartbeat_attributes=HEARTBEAT_ATTRIBUTES
        )
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
        for setup in self.setups:
            name = setup.plan.name
            monitor = self.monitors[name] = LinkMonitor(setup.plan, now, self.log)
            try:
                link = setup.build()
                for key in monitor.plan.sources():
                    callback = functools.partial(self._on_message, name, key)
                    await link.subscribe(key, callback, **setup.subscribe_options)
            except Exception as err:  # a bad link must not stop the others
                self.log.error("link %s cannot start: %s", name, err)
                self._broken[name] = Fatal(FatalKind.START, f"cannot start: {err}")
                continue
            self.links[name] = link
            link.start()
        await self.evaluate()
        self._handles += [
            await self.hass.run_every(self.evaluate, self.tick_interval_s),
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
        problems = None if link is None else link.source_problems
        result = self.monitors[name].evaluate(health, now, wall, fatal, problems)
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
