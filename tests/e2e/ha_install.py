"""Home Assistant's own venv: install it once, outside the clone, and reuse it.

HA's pins clash with AppDaemon's, so HA lives in a separate venv cached under
``$GRIDWATCH_CACHE`` (``./run`` normally creates it first). The plain
``pip install homeassistant`` does not bring the requirements of integrations
(recorder needs SQLAlchemy, person needs Pillow ...): HA would pip-install them
at boot, slowly and from the network, so the harness installs exactly the
requirements of the integrations its config loads, once, and then boots HA
with ``--skip-pip``.

``python -m tests.e2e.ha_install`` does the same from a shell (for ``./run``
or a demo that boots the same HA).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.ha_config import DOMAINS

DEFAULT_HA_VERSION = "2024.1.6"
# A fresh install downloads ~100 packages; generous, but bounded.
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class HaInstall:
    """Where Home Assistant is installed.

    Attributes:
        venv: The venv directory.
        version: The Home Assistant version pinned there.
    """

    venv: Path
    version: str

    @property
    def hass(self) -> Path:
        """The ``hass`` executable."""
        return self.venv / "bin" / "hass"

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """Written last by a complete install (shared with ``./run``)."""
        return self.venv / ".installed"


def install_from_env() -> HaInstall:
    """Describe the install named by the environment, with ``./run``'s defaults.

    Returns:
        The install (not yet checked on disk).
    """
    version = os.environ.get("GRIDWATCH_HA_VERSION", DEFAULT_HA_VERSION)
    cache = Path(os.environ.get("GRIDWATCH_CACHE", Path.home() / ".cache" / "gridwatch"))
    venv = Path(os.environ.get("GRIDWATCH_HA_VENV", cache / f"ha-{version}"))
    return HaInstall(venv=venv, version=version)


def ensure_installed(install: HaInstall, domains: Iterable[str]) -> None:
    """Install HA and the requirements of ``domains`` unless already there.

    Args:
        install: Where HA goes.
        domains: Integrations the test config loads; their requirements and
            those of their dependencies are installed.

    Raises:
        subprocess.CalledProcessError: pip failed.
        subprocess.TimeoutExpired: pip took longer than INSTALL_TIMEOUT_S.
    """
    if not install.stamp.is_file():
        _install_core(install)
    requirements = integration_requirements(_components_dir(install), domains)
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    stamp = install.venv / f".gridwatch-requirements-{digest}"
    if requirements and not stamp.is_file():
        _pip(install, *requirements)
        stamp.touch()


def _install_core(install: HaInstall) -> None:
    # Same steps as ./run's ha_install, for a test run started without ./run.
    shutil.rmtree(install.venv, ignore_errors=True)
    install.venv.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(install.venv)], check=True, timeout=120)
    _pip(install, "--upgrade", "pip")
    _pip(install, f"homeassistant=={install.version}")
    install.stamp.touch()


def _pip(install: HaInstall, *args: str) -> None:
    subprocess.run(
        [str(install.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )


def _components_dir(install: HaInstall) -> Path:
    found = sorted(install.venv.glob("lib/python3*/site-packages/homeassistant/components"))
    if not found:
        raise FileNotFoundError(f"no homeassistant package in {install.venv}")
    return found[-1]


# Packages an integration needs that no manifest names. HA's MQTT integration
# sets up every entity platform (light, cover, ...); their services make HA's
# get_services import the calendar component, which imports dateutil (a real
# install has it through other packages; a bare venv does not, and then every
# AppDaemon service call fails).
IMPLIED_REQUIREMENTS: dict[str, tuple[str, ...]] = {"mqtt": ("python-dateutil",)}


def integration_requirements(components: Path, domains: Iterable[str]) -> list[str]:
    """Collect the pip requirements of integrations and their dependencies.

    Args:
        components: HA's ``homeassistant/components`` directory.
        domains: Integrations to start from.

    Returns:
        Sorted, de-duplicated requirement specifiers.
    """
    seen: set[str] = set()
    todo = list(domains)
    requirements: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest_path = components / domain / "manifest.json"
        if not manifest_path.is_file():
            continue  # 'homeassistant' core config and the like: no manifest
        manifest = json.loads(manifest_path.read_text())
        requirements.update(manifest.get("requirements", []))
        requirements.update(IMPLIED_REQUIREMENTS.get(domain, ()))
        todo.extend(manifest.get("dependencies", []))
    return sorted(requirements)


def main() -> None:
    """Install HA and the test config's integration requirements if missing."""
    install = install_from_env()
    ensure_installed(install, DOMAINS)
    print(f"Home Assistant {install.version} ready in {install.venv}")


if __name__ == "__main__":
    main()
