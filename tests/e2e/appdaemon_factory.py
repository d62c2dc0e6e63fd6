"""Starts AppDaemon instances for tests and stops every one it started."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.e2e.appdaemon_proc import AppDaemon, AppDaemonConfig
from tests.e2e.ha import HomeAssistant


class AppDaemonFactory:
    """Starts AppDaemon instances against the session's HA; stops them all.

    Args:
        ha: The Home Assistant to connect to.
        base_dir: Parent of each instance's config directory.
        on_started: Called with each instance's start-up time in seconds.
    """

    def __init__(
        self,
        ha: HomeAssistant,
        base_dir: Path,
        on_started: Callable[[float], object] | None = None,
    ) -> None:
        self._ha = ha
        self._base_dir = base_dir
        self._on_started = on_started
        self.instances: list[AppDaemon] = []

    async def __call__(
        self,
        apps: Mapping[str, Mapping[str, Any]],
        test_apps: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AppDaemon:
        """Start AppDaemon from async code (the blocking wait runs in a thread).

        Args and Returns: as ``start``.
        """
        return await asyncio.to_thread(self.start, apps, test_apps, **options)

    def start(
        self,
        apps: Mapping[str, Mapping[str, Any]],
        test_apps: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AppDaemon:
        """Start AppDaemon with these apps and wait until it tried them all.

        Args:
            apps: apps.yaml content.
            test_apps: Extra app modules (file name -> source) for this run.
            **options: Further ``AppDaemonConfig`` fields.

        Returns:
            The running instance.
        """
        config_dir = self._base_dir / f"appdaemon{len(self.instances)}"
        instance = AppDaemon(
            config_dir,
            AppDaemonConfig(
                ha_url=self._ha.url,
                token=self._ha.token,
                apps=apps,
                test_apps=test_apps or {},
                **options,
            ),
        )
        self.instances.append(instance)
        instance.start()
        if instance.start_seconds is not None and self._on_started is not None:
            self._on_started(instance.start_seconds)
        return instance

    def failure_logs(self) -> list[tuple[str, str]]:
        """Log tails of every instance, for a failed test's report."""
        return [
            (f"{title} [{n}]", text)
            for n, instance in enumerate(self.instances)
            for title, text in instance.failure_logs()
        ]

    def stop_all(self) -> None:
        """Stop every instance started (each stop is safe to repeat)."""
        for instance in self.instances:
            instance.stop()
