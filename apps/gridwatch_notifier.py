"""Gridwatch notifier: the one place that raises and resolves notifications.

Apps fire ``gridwatch_notice`` events (see :mod:`gridwatch.notices.client`); this app
turns them into persistent notifications (``notification_id`` = notice id),
pushes critical ones to the configured ``notify.*`` services until resolved,
re-raises everything after HA restarts, and publishes
``sensor.<app>_active_notices``. The decisions live in
:mod:`gridwatch.notices.registry`; this module only performs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gridwatch.config.notifier_schema import NotifierConfig, NotifierSchema
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import HassPort
from gridwatch.hass.states import slugify as slug
from gridwatch.notices.client import (
    NOTICE_EVENT,
    RESYNC_EVENT,
    Action,
    Notice,
    NoticeClient,
    NoticeError,
    parse_notice_event,
)
from gridwatch.notices.registry import Action as Step
from gridwatch.notices.registry import Dismiss, NoticeRegistry, NotifierPolicy, Post, Push
from gridwatch.notices.render import notification_text, push_text, summary_attributes
from gridwatch.notices.store import load_notices, save_notices
from gridwatch.runtime.app_base import GridwatchApp

# A hostile or buggy event must not flood the log: its data is cut to this.
_MAX_LOGGED_DATA = 300


class Notifier(GridwatchApp[NotifierConfig]):
    """Raises, dedupes, rate-limits, pushes and resolves Gridwatch notices."""

    schema = NotifierSchema

    async def setup(self, config: NotifierConfig, hass: HassPort, notices: NoticeClient) -> None:
        self._cfg, self._hass = config, hass
        policy = NotifierPolicy(config.min_repost_s, config.repeat_s, bool(config.push_services))
        self._registry = NoticeRegistry(policy)
        self._lock = asyncio.Lock()  # AppDaemon may run two event callbacks at once
        self._sensor = f"sensor.{slug(self.name)}_active_notices"
        self._store = Path(config.state_file or self._default_store())
        restored = await asyncio.to_thread(load_notices, self._store, self.logger)
        await self._apply(lambda now: self._registry.restore(restored, now))
        await self._publish(self._registry.active)
        await hass.listen_event(NOTICE_EVENT, self._on_notice)
        await hass.listen_ha_started(self._on_ha_started)
        await hass.run_every(self._on_tick, config.tick_s)
        # Apps that kept notices while this app was away send them again.
        await hass.fire_event(RESYNC_EVENT, {})

    def _default_store(self) -> Path:
        # Beside appdaemon.yaml, not in app_dir (AppDaemon scans app_dir).
        return Path(str(self.config_dir)) / f"gridwatch_{slug(self.name)}_notices.json"

    async def _on_notice(self, _event: str, data: Mapping[str, Any]) -> None:
        try:
            request = parse_notice_event(data)
        except NoticeError as err:
            self.logger.warning(
                "dropping bad %s event: %s (data: %.*r)", NOTICE_EVENT, err, _MAX_LOGGED_DATA, data
            )
            return
        if request.action is Action.RAISE and request.notice is not None:
            notice = request.notice
            await self._apply(lambda now: self._registry.raise_notice(notice, now))
        else:
            await self._apply(lambda now: self._registry.resolve(request.notice_id, now))

    async def _on_tick(self) -> None:
        await self._apply(self._registry.tick)

    async def _on_ha_started(self) -> None:
        self.logger.info(
            "Home Assistant restarted: re-raising %d notices", len(self._registry.active)
        )
        await self._apply(self._registry.ha_restarted)

    async def _apply(self, decide: Callable[[float], list[Step]]) -> None:
        """Run one registry decision under the lock, perform it, keep state."""
        async with self._lock:
            before = self._registry.active
            steps = decide(self._hass.monotonic())
            for step in steps:
                await self._perform(step)
            after = self._registry.active
            if after != before:
                await self._save(after)
            if after != before or steps:
                await self._publish(after)

    async def _perform(self, step: Step) -> None:
        timeout = self._cfg.service_timeout_s
        try:
            if isinstance(step, Post):
                data = {
                    "notification_id": step.notice.notice_id,
                    "title": step.notice.title,
                    "message": notification_text(step.notice),
                }
                await self._hass.call_service(
                    "persistent_notification/create", data, timeout_s=timeout
                )
            elif isinstance(step, Dismiss):
                data = {"notification_id": step.notice_id}
                await self._hass.call_service(
                    "persistent_notification/dismiss", data, timeout_s=timeout
                )
            elif isinstance(step, Push):
                await self._push(step)
        except HassError as err:
            # HA is likely restarting: the restart hook posts everything again.
            what = step.notice_id if isinstance(step, Dismiss) else step.notice.notice_id
            self.logger.warning("%s of %s failed: %s", type(step).__name__, what, err)

    async def _push(self, push: Push) -> None:
        title, message = push_text(push.notice, resolved=push.resolved)
        for service in self._cfg.push_services:
            try:
                data = {"title": title, "message": message}
                await self._hass.call_service(service, data, timeout_s=self._cfg.service_timeout_s)
            except HassError as err:
                self.logger.warning(
                    "push of %s to %s failed: %s", push.notice.notice_id, service, err
                )

    async def _save(self, active: Mapping[str, Notice]) -> None:
        try:
            await asyncio.to_thread(save_notices, self._store, list(active.values()))
        except OSError as err:
            self.logger.warning("could not keep notices in %s: %s", self._store, err)

    async def _publish(self, active: Mapping[str, Notice]) -> None:
        try:
            await self._hass.set_entity(self._sensor, len(active), summary_attributes(active))
        except HassError as err:
            self.logger.warning("could not publish %s: %s", self._sensor, err)
