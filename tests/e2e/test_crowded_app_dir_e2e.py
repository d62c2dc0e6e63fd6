"""The suite installed the README way into an app_dir it shares with another app.

The other app has its own ``lib`` package and a module named ``notifier.py``,
and imports the standard library's ``statistics`` and ``http``. With both of
AppDaemon's import methods, all four Gridwatch apps and the other app must
run, and each must import its own modules: nothing of Gridwatch may shadow
the other app's names or the standard library's.
"""

from __future__ import annotations

import re
import shutil
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.e2e.appdaemon_proc import REPO, AppDaemon, AppDaemonConfig
from tests.e2e.ha import HomeAssistant
from tests.e2e.process import wait_until

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")

# Minimal entries, as a user would start: the guard in dry run, one MQTT link
# to a broker that is not there (the app runs; its link keeps retrying).
GRIDWATCH_APPS: dict[str, dict[str, Any]] = {
    "notifier": {"module": "gridwatch_notifier", "class": "Notifier", "priority": 10},
    "link_monitor": {
        "module": "gridwatch_link_monitor",
        "class": "LinkMonitorApp",
        "priority": 20,
        "links": [
            {
                "name": "crowd_gateway",
                "mqtt": {"host": "127.0.0.1", "port": 9},
                "values": [{"name": "power", "source": "crowd/power"}],
            }
        ],
    },
    "energy_tally": {
        "module": "gridwatch_energy_tally",
        "class": "EnergyTally",
        "priority": 30,
        "meters": [{"statistic_id": "sensor.crowd_import", "name": "Crowd import"}],
    },
    "export_guard": {
        "module": "gridwatch_export_guard",
        "class": "ExportGuard",
        "priority": 40,
        "dry_run": True,
        "export_limit_w": 5000,
        "daily_export_cap_kwh": 30,
        "max_discharge_w": 5000,
        "readings": {
            "grid_power": {"entity": "sensor.crowd_grid_power"},
            "soc": {"entity": "sensor.crowd_soc"},
            "export_today": {"entity": "sensor.crowd_export_today"},
        },
        "actuators": {
            "enable": {"entity": "switch.crowd_discharge"},
            "power": {"entity": "number.crowd_discharge_power"},
        },
        "request_entity": "input_boolean.crowd_request",
    },
}

OTHER_LIB_INIT = 'GREETING = "from-the-other-lib"\n'
OTHER_NOTIFIER = textwrap.dedent(
    """
    import http
    import statistics

    from appdaemon.plugins.hass.hassapi import Hass

    from lib import GREETING


    class Notifier(Hass):
        def initialize(self):
            self.log(
                "OTHER-APP lib=%s statistics=%s http=%s mean=%s",
                GREETING, statistics.__file__, http.__file__, statistics.mean([1, 3]),
            )
    """
)


class CrowdedAppDaemon(AppDaemon):
    """AppDaemon whose app_dir holds the suite the README way, beside another app.

    ``app_dir/gridwatch/{apps,lib,apps.yaml}`` as the README's install section
    says, and ``app_dir/other/{lib/__init__.py,notifier.py,other.yaml}``.
    """

    def __init__(self, config_dir: Path, config: AppDaemonConfig, import_method: str) -> None:
        super().__init__(config_dir, config)
        self.import_method = import_method

    def write(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if self.app_dir.exists():
            shutil.rmtree(self.app_dir)
        suite = self.app_dir / "gridwatch"
        shutil.copytree(REPO / "apps", suite / "apps", ignore=_IGNORE)
        shutil.copytree(REPO / "lib", suite / "lib", ignore=_IGNORE)
        (suite / "apps.yaml").write_text(yaml.safe_dump(GRIDWATCH_APPS, sort_keys=False))
        other = self.app_dir / "other"
        (other / "lib").mkdir(parents=True)
        (other / "lib" / "__init__.py").write_text(OTHER_LIB_INIT)
        (other / "notifier.py").write_text(OTHER_NOTIFIER)
        (other / "other.yaml").write_text(
            yaml.safe_dump({"other_notifier": {"module": "notifier", "class": "Notifier"}})
        )
        (self.config_dir / "appdaemon.yaml").write_text(
            yaml.safe_dump(self._appdaemon_yaml(), sort_keys=False)
        )

    def _appdaemon_yaml(self) -> dict[str, Any]:
        config = super()._appdaemon_yaml()
        config["appdaemon"]["import_method"] = self.import_method
        return config


@pytest.fixture(params=["default", "legacy"])
def crowded(
    request: pytest.FixtureRequest, ha: HomeAssistant, tmp_path: Path
) -> Iterator[CrowdedAppDaemon]:
    instance = CrowdedAppDaemon(
        tmp_path / "appdaemon",
        AppDaemonConfig(ha_url=ha.url, token=ha.token),
        import_method=request.param,
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def test_the_suite_and_another_app_share_an_app_dir(crowded: CrowdedAppDaemon) -> None:
    for app in [*GRIDWATCH_APPS, "other_notifier"]:
        crowded.wait_app(app)

    wait_until(lambda: "OTHER-APP" in crowded.log_text(), 20.0, what="the other app's line")
    line = next(li for li in crowded.log_text().splitlines() if "OTHER-APP" in li)
    found = re.search(r"lib=(\S+) statistics=(\S+) http=(\S+) mean=(\S+)", line)
    assert found, line
    greeting, statistics_file, http_file, mean = found.groups()
    assert greeting == "from-the-other-lib"  # its own lib, not Gridwatch's
    assert Path(statistics_file).resolve().parent == _stdlib_dir()
    assert Path(http_file).resolve().parent.parent == _stdlib_dir()  # http/__init__.py
    assert mean == "2"
    assert "Traceback" not in crowded.error_log_text()
