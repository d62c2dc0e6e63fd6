"""A real AppDaemon 4.5 process, pointed at the test Home Assistant.

AppDaemon reads every .yaml/.toml under its app_dir as app configuration, so
the app_dir is built fresh per run from copies of the suite's ``apps/`` and
``lib/`` (never the repository root), optional test apps, and one generated
``apps.yaml``. Start-up is read from AppDaemon's main log, each app's outcome
from its admin API (the log does not record a successful initialize()).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

from tests.e2e.ha_config import ELEVATION, LATITUDE, LONGITUDE, TIME_ZONE
from tests.e2e.process import ManagedProcess, free_port, tail, wait_until

REPO = Path(__file__).resolve().parents[2]
# AppDaemon imports its modules, connects, then waits for HA's started
# event: 1-4 s measured on the 2-core box. Generous so a loaded box does not
# flake.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")

# Logged by AppDaemon 4.5.13 (hassplugin.py, app_management.py): the HASS
# plugin got in, and every app of the first load was tried.
HA_AUTHENTICATED = "Authenticated to Home Assistant"
ALL_APPS_READY = "App initialization complete"


# Admin states of an app (appdaemon/app_management.py).
_STARTED = frozenset({"idle", "running"})
_REFUSED = frozenset({"initialize_error", "compile_error"})


class AppRefused(RuntimeError):
    """An app's initialize() raised: AppDaemon did not start it."""


@dataclass(frozen=True)
class AppDaemonConfig:
    """What the generated config directory holds.

    Attributes:
        ha_url: Base URL of Home Assistant.
        token: Long-lived access token.
        apps: apps.yaml content: app name -> its entry (module, class, args).
        test_apps: Extra app modules: file name -> source text, written
            into a ``test_apps/`` directory of the app_dir.
        extra_app_dirs: Directories copied into the app_dir beside apps/.
        dashboard_dir: HADashboard dashboards directory, or None for none.
        retry_secs: Seconds between reconnect attempts to HA; short so a
            restarted HA is picked up quickly.
    """

    ha_url: str
    token: str
    apps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    test_apps: Mapping[str, str] = field(default_factory=dict)
    extra_app_dirs: tuple[Path, ...] = ()
    dashboard_dir: Path | None = None
    retry_secs: int = 1


class AppDaemon:
    """One AppDaemon instance with its own config dir and HTTP port.

    Args:
        config_dir: Directory for appdaemon.yaml, app_dir and logs.
        config: What to generate there.
    """

    def __init__(self, config_dir: Path, config: AppDaemonConfig) -> None:
        self.config_dir = config_dir
        self.config = config
        self.app_dir = config_dir / "app_dir"
        self.log_path = config_dir / "appdaemon.log"
        self.error_log_path = config_dir / "error.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_seconds: float | None = None
        self.process = ManagedProcess(
            "appdaemon",
            [sys.executable, "-m", "appdaemon", "-c", str(config_dir)],
            config_dir / "appdaemon-console.log",
            cwd=config_dir,
        )

    def write(self) -> None:
        """Generate appdaemon.yaml and the app_dir."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if self.app_dir.exists():
            shutil.rmtree(self.app_dir)
        self.app_dir.mkdir()
        shutil.copytree(REPO / "apps", self.app_dir / "apps", ignore=_COPY_IGNORE)
        shutil.copytree(REPO / "lib", self.app_dir / "lib", ignore=_COPY_IGNORE)
        for extra in self.config.extra_app_dirs:
            shutil.copytree(extra, self.app_dir / extra.name, ignore=_COPY_IGNORE)
        if self.config.test_apps:
            # No __init__.py: AppDaemon then puts the directory itself on
            # sys.path and imports each module by its bare name.
            test_dir = self.app_dir / "test_apps"
            test_dir.mkdir()
            for name, source in self.config.test_apps.items():
                (test_dir / name).write_text(source)
        (self.app_dir / "apps.yaml").write_text(
            yaml.safe_dump({k: dict(v) for k, v in self.config.apps.items()}, sort_keys=False)
        )
        (self.config_dir / "appdaemon.yaml").write_text(
            yaml.safe_dump(self._appdaemon_yaml(), sort_keys=False)
        )

    def _appdaemon_yaml(self) -> dict[str, Any]:
        def log(path: Path) -> dict[str, Any]:
            return {"filename": str(path)}

        config: dict[str, Any] = {
            "appdaemon": {
                "time_zone": TIME_ZONE,
                "latitude": LATITUDE,
                "longitude": LONGITUDE,
                "elevation": ELEVATION,
                "app_dir": str(self.app_dir),
                "plugins": {
                    "HASS": {
                        "type": "hass",
                        "ha_url": self.config.ha_url,
                        "token": self.config.token,
                        "retry_secs": self.config.retry_secs,
                    }
                },
            },
            "http": {"url": self.url},
            "admin": {},
            "api": {},
            "logs": {
                "main_log": log(self.log_path),
                "error_log": log(self.error_log_path),
                "access_log": log(self.config_dir / "access.log"),
                "diag_log": log(self.config_dir / "diag.log"),
            },
        }
        if self.config.dashboard_dir is not None:
            config["hadashboard"] = {"dashboard_dir": str(self.config.dashboard_dir)}
        return config

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Write the config, start AppDaemon, wait until every app was tried.

        Waits until AppDaemon authenticated to HA and logged "App
        initialization complete", which comes after initialize() of each app
        was called (whether it succeeded or not: ``wait_app`` tells).

        Raises:
            TimeoutError: AppDaemon did not get there in time.
            ProcessDied: AppDaemon exited.
        """
        self.write()
        began = time.monotonic()
        self.process.start()

        def ready() -> bool:
            text = self.log_text()
            return HA_AUTHENTICATED in text and ALL_APPS_READY in text

        try:
            wait_until(ready, timeout, what="AppDaemon start-up", alive=self.process.check_alive)
        except TimeoutError as err:
            raise TimeoutError(f"{err}; main log tail:\n{tail(self.log_path)}") from err
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop AppDaemon (SIGTERM, then SIGKILL after STOP_TIMEOUT_S)."""
        self.process.stop(STOP_TIMEOUT_S)

    def log_text(self) -> str:
        """Return the main log so far ('' before it exists)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def error_log_text(self) -> str:
        """Return the error log (tracebacks of apps) so far."""
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0, since: int = 0
    ) -> str:
        """Wait until the main log (from offset ``since``) matches ``pattern``.

        Args:
            pattern: Plain substring or compiled regex.
            timeout: Seconds to wait.
            since: Character offset to search from (``len(log_text())`` taken
                before an action makes the wait about that action only).

        Returns:
            The matching line.

        Raises:
            TimeoutError: No match in time.
        """
        found: list[str] = []

        def matches() -> bool:
            for line in self.log_text()[since:].splitlines():
                hit = pattern.search(line) if isinstance(pattern, re.Pattern) else pattern in line
                if hit:
                    found.append(line)
                    return True
            return False

        wait_until(matches, timeout, what=f"AppDaemon log line {pattern!r}")
        return found[0]

    def app_state(self, app: str) -> str | None:
        """Return AppDaemon's admin state of an app, or None if unknown yet.

        ``idle`` means initialize() returned, ``initialize_error`` that it
        raised, ``compile_error`` that the app object could not be created;
        ``initializing`` / ``terminated`` / ``created`` are on the way.
        """
        url = f"{self.url}/api/appdaemon/state/admin/app.{app}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError):
            return None  # not up yet, or no such app yet
        state = (body.get("state") or {}).get("state") if isinstance(body, dict) else None
        return state if isinstance(state, str) else None

    def wait_app(self, app: str, timeout: float = 20.0) -> None:
        """Wait until ``app`` has been initialized, or raise if it refused.

        Reads the app's state from AppDaemon's admin API, which (unlike its
        log) also tells a successful initialize() apart.

        Args:
            app: The app's name in apps.yaml.
            timeout: Seconds to wait.

        Raises:
            AppRefused: initialize() raised or the app could not be created;
                the message holds AppDaemon's error log.
            TimeoutError: The app did not settle in time.
        """
        seen: list[str | None] = []

        def settled() -> bool:
            seen.append(self.app_state(app))
            return seen[-1] in _STARTED | _REFUSED

        try:
            wait_until(
                settled, timeout, what=f"app {app} to initialize", alive=self.process.check_alive
            )
        except TimeoutError as err:
            raise TimeoutError(
                f"{err} (last state {seen[-1] if seen else None!r}); error log:\n"
                f"{tail(self.error_log_path)}"
            ) from err
        if seen[-1] in _REFUSED:
            raise AppRefused(
                f"app {app} failed to start ({seen[-1]}); error log:\n{self.error_log_text()}"
            )

    def app_refused(self, app: str, timeout: float = 20.0) -> bool:
        """Return True if ``app`` failed to start, False if it started.

        Raises:
            TimeoutError: The app did not settle in time.
        """
        try:
            self.wait_app(app, timeout)
        except AppRefused:
            return True
        return False

    def failure_logs(self) -> list[tuple[str, str]]:
        """Titled log tails to attach to a failed test's report."""
        return [
            ("appdaemon main log (tail)", tail(self.log_path)),
            ("appdaemon error log (tail)", tail(self.error_log_path)),
            ("appdaemon console (tail)", self.process.log_tail(30)),
        ]
