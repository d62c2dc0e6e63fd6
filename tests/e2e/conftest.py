"""Fixtures for the end-to-end tests: one real HA per session, AppDaemon per use.

- ``ha``: Home Assistant, booted once per session (restart it only in the
  tests that need it; ``ha.restart_async()``). Tests share it, so each test
  uses its own entity ids.
- ``ha_client``: an async REST/websocket client, owner-authenticated.
- ``appdaemon_factory`` / ``appdaemon_module_factory``: start AppDaemon with a
  given apps.yaml and test apps; stopped at the end of the test / module.

Every test here that boots HA is marked ``e2e``. When one fails, the tails of
the HA and AppDaemon logs are attached to its report.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient
from tests.e2e.ha_config import DOMAINS_WITH_DEMO, HaConfig
from tests.e2e.ha_install import ensure_installed, install_from_env
from tests.e2e.process import free_port

_HERE = Path(__file__).parent
# Start-up figures of this session, printed in the terminal summary.
_TIMINGS: dict[str, list[float]] = {"ha_boot_s": [], "appdaemon_start_s": []}
# How many of each this process has attached to a test report already.
_REPORTED: dict[str, int] = dict.fromkeys(_TIMINGS, 0)
_TIMING_PREFIX = "gridwatch_startup_"
# The first line of the error that kept the session's HA from starting.
_HA_FAILED: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # "e2e" means "boots a real HA": every test that uses the ha fixture,
    # directly or through another fixture (fixturenames is the closure).
    # A hook in a sub-directory conftest still sees the whole session's items.
    for item in items:
        if _HERE in item.path.parents and "ha" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Start-up figures ride on the reports: under pytest-xdist the workers
    # measure them and only reports reach the process that prints the summary.
    for name, values in _TIMINGS.items():
        fresh = values[_REPORTED[name] :]
        if fresh:
            report.user_properties.append((f"{_TIMING_PREFIX}{name}", list(fresh)))
            _REPORTED[name] = len(values)
    if report.failed and _HERE in item.path.parents:
        # An AppDaemon can be reachable twice (itself and through its
        # factory): attach each log once.
        attached: set[str] = set()
        for value in getattr(item, "funcargs", {}).values():
            failure_logs = getattr(value, "failure_logs", None)
            if callable(failure_logs):
                for title, text in failure_logs():
                    if text not in attached:
                        attached.add(text)
                        report.sections.append((title, text))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    gathered: dict[str, list[float]] = {name: [] for name in _TIMINGS}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, values in getattr(report, "user_properties", ()):
                if isinstance(key, str) and key.startswith(_TIMING_PREFIX):
                    gathered.setdefault(key.removeprefix(_TIMING_PREFIX), []).extend(values)
    lines = [
        f"{name}: " + ", ".join(f"{v:.1f}" for v in values)
        for name, values in gathered.items()
        if values
    ]
    if lines:
        terminalreporter.section("e2e start-up times (seconds)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    """The session's Home Assistant, running and onboarded."""
    if _HA_FAILED:
        # pytest sets a failed session fixture up again for every test: fail
        # each at once with the first error, not with one install+boot each.
        pytest.fail(f"Home Assistant could not be set up (see the first error): {_HA_FAILED[0]}")
    try:
        install = install_from_env()
        ensure_installed(install, DOMAINS_WITH_DEMO)
        instance = HomeAssistant(
            install, tmp_path_factory.mktemp("ha_config"), HaConfig(port=free_port())
        )
    except Exception as err:
        _HA_FAILED.append(str(err).splitlines()[0])
        raise
    try:
        try:
            instance.start()
        except Exception as err:
            _HA_FAILED.append(str(err).splitlines()[0])
            raise
        yield instance
    finally:
        instance.stop()
        _TIMINGS["ha_boot_s"].extend(instance.boot_seconds)


@pytest.fixture
async def ha_client(ha: HomeAssistant) -> AsyncIterator[HaClient]:
    """An owner-authenticated client of the session's HA."""
    if not ha.process.running:
        # An earlier test's failed restart must not fail every later test.
        await asyncio.to_thread(ha.start)
    async with HaClient(ha.url, ha.token) as client:
        yield client


@pytest.fixture
def appdaemon_factory(ha: HomeAssistant, tmp_path: Path) -> Iterator[AppDaemonFactory]:
    """Start AppDaemon per test: ``ad = await appdaemon_factory(apps={...})``."""
    factory = AppDaemonFactory(ha, tmp_path, _TIMINGS["appdaemon_start_s"].append)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def appdaemon_module_factory(
    ha: HomeAssistant, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDaemonFactory]:
    """Like ``appdaemon_factory``, but instances live for the whole module."""
    factory = AppDaemonFactory(
        ha, tmp_path_factory.mktemp("appdaemon"), _TIMINGS["appdaemon_start_s"].append
    )
    try:
        yield factory
    finally:
        factory.stop_all()
