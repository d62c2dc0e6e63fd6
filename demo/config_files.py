"""The demo's apps.yaml and the secrets that fill it in.

The sandbox's addresses reach ``apps.yaml`` through AppDaemon's
``secrets.yaml`` (kept in AppDaemon's config dir, outside the app dir), so
the apps.yaml a user copies is the very file the demo runs.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

REPO = Path(__file__).resolve().parent.parent
# The user-facing apps.yaml at the repository root: the demo runs it as it is.
DEMO_APPS_YAML = REPO / "apps.yaml"
DASHBOARD_DIR = REPO / "dashboards"
# The panel's file is dashboards/<name>.dash; AppDaemon serves it at /<name>.
DASHBOARD_NAME = "gridwatch"
# The simulated battery monitor plugged into bleak in place of a radio.
BLE_BACKEND = "demo.ble_battery:BACKEND"
# The device profiles' simulated devices (the device_monitor app).
JBD_BACKEND = "demo.ble_jbd:BACKEND"
VICTRON_SCANNER = "demo.ble_victron:ADVERTISER"


@dataclass(frozen=True)
class Addresses:
    """Where the demo's parts listen (all on loopback)."""

    ha_url: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    controller_url: str
    controller_username: str
    controller_password: str


def secrets(addresses: Addresses) -> dict[str, Any]:
    """The values ``!secret`` names in apps.yaml."""
    return {
        "mqtt_host": "127.0.0.1",
        "mqtt_port": addresses.mqtt_port,
        "mqtt_username": addresses.mqtt_username,
        "mqtt_password": addresses.mqtt_password,
        "controller_url": addresses.controller_url,
        "controller_username": addresses.controller_username,
        "controller_password": addresses.controller_password,
        "ble_backend": BLE_BACKEND,
        "jbd_backend": JBD_BACKEND,
        "victron_scanner": VICTRON_SCANNER,
        "victron_key": "5e5d7a3c9b1f40e2a6c88d0f13b7e294",  # demo.ble_victron.KEY
        # aiobmsble (the JBD BMS) installs on Python >= 3.12 only.
        "bms_link_disabled": importlib.util.find_spec("aiobmsble") is None,
    }


class _SecretLoader(yaml.SafeLoader):  # type: ignore[misc] # PyYAML has no type hints
    """A SafeLoader with ``!secret`` resolved from a mapping (as AppDaemon does)."""

    secrets: ClassVar[dict[str, Any]] = {}


def _secret(loader: _SecretLoader, node: Any) -> Any:
    name = loader.construct_scalar(node)
    if name not in loader.secrets:
        raise KeyError(f"!secret {name} is not in secrets.yaml")
    return loader.secrets[name]


def load_apps_yaml(path: Path, secret_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Read an apps.yaml the way AppDaemon does, ``!secret`` included.

    Args:
        path: the apps.yaml.
        secret_values: the secrets.yaml content.

    Returns:
        App name -> the app's entry.
    """
    # A class per call: add_constructor registers on the class, and PyYAML's
    # SafeLoader itself must stay untouched.
    loader: Any = type("Loader", (_SecretLoader,), {"secrets": secret_values})
    loader.add_constructor("!secret", _secret)
    with path.open() as fh:
        data = yaml.load(fh, Loader=loader)
    if not isinstance(data, dict):
        raise TypeError(f"{path} does not hold a mapping of apps")
    return data


def check_apps(apps: dict[str, dict[str, Any]]) -> list[str]:
    """Validate every app entry with its app's own schema, as the app will.

    Args:
        apps: apps.yaml's content (secrets resolved).

    Returns:
        One message per refused app (empty: all good).
    """
    import importlib
    import sys

    from gridwatch.config.base import ConfigError
    from gridwatch.config.entities_schema import load_app_config

    if str(REPO / "apps") not in sys.path:
        sys.path.insert(0, str(REPO / "apps"))  # AppDaemon imports apps by bare name
    problems: list[str] = []
    for name, entry in apps.items():
        try:
            app_class = getattr(importlib.import_module(entry["module"]), entry["class"])
            load_app_config(app_class.schema, {**entry, "name": name}, app_name=name)
        except ConfigError as err:
            problems.append(str(err))
        except (ImportError, AttributeError, KeyError) as err:
            problems.append(f"{name}: cannot find its app: {err!r}")
    return problems


# The line of apps.yaml's shared entities: block that picks the backend.
_BACKEND_LINE = re.compile(r"^(\s+backend:\s*)rest\b", re.M)


def with_entity_backend(apps_yaml: Path, backend: str, out: Path) -> Path:
    """A copy of ``apps_yaml`` whose shared ``entities:`` block says ``backend``.

    Only the first ``backend: rest`` line changes (the notifier's anchored
    block, which the other apps repeat), so comments and ``!secret`` stay.

    Returns:
        ``out``, or ``apps_yaml`` itself for ``rest``.

    Raises:
        ValueError: the file has no ``backend: rest`` line to change.
    """
    if backend == "rest":
        return apps_yaml
    text, changed = _BACKEND_LINE.subn(rf"\g<1>{backend}", apps_yaml.read_text(), count=1)
    if not changed:
        raise ValueError(f"{apps_yaml} has no 'backend: rest' line to switch to {backend}")
    out.write_text(text)
    return out
