"""No module or package of the suite can shadow another name on AppDaemon's path.

With ``import_method: legacy`` AppDaemon puts every folder of the app_dir at
the front of ``sys.path``, so each of our file and folder names becomes a
top-level name there. None may be a standard-library module, a top-level
module of an installed distribution, or one of the app modules users commonly
name (the crowded app_dir e2e test runs the real thing).
"""

import importlib.metadata
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMON_APP_MODULES = {"notifier", "link_monitor", "energy_tally", "export_guard", "lib", "utils"}


def _our_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for root in (REPO / "lib" / "gridwatch", REPO / "apps"):
        for path in [root, *root.rglob("*")]:
            if "__pycache__" in path.parts:
                continue
            if path.is_dir():
                names[path.name] = path
            elif path.suffix == ".py" and path.stem != "__init__":
                names[path.stem] = path
    return names


OUR_NAMES = _our_names()
INSTALLED_TOP_LEVEL = set(importlib.metadata.packages_distributions())


def test_the_tree_was_read():
    assert {"gridwatch", "gridwatch_export_guard", "mqtt_link", "recorder_statistics"} <= set(
        OUR_NAMES
    )


@pytest.mark.parametrize("name", sorted(OUR_NAMES))
def test_name_shadows_nothing(name):
    where = OUR_NAMES[name].relative_to(REPO)
    assert name not in sys.stdlib_module_names, f"{where} shadows the standard library"
    assert name not in INSTALLED_TOP_LEVEL, f"{where} shadows an installed package"
    assert name not in COMMON_APP_MODULES, f"{where} collides with a common app module"
