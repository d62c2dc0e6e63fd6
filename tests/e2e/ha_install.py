"""Home Assistant's own venv: install it once, outside the clone, and reuse it.

HA's pins clash with AppDaemon's, so HA lives in a separate venv cached under
``$GRIDWATCH_CACHE``. The suite is tested against two HA versions
(``ha_matrix.TESTED_HA``); each gets a venv of a Python that fits it: the
host's python3 where it does (``$GRIDWATCH_CACHE/ha-<version>``), else one in
a Debian root (``$GRIDWATCH_CACHE/<suite>-root``, HA in ``/opt/ha-<version>``
inside; see ``debian_root``).

The plain ``pip install homeassistant`` does not bring the requirements of
integrations (recorder needs SQLAlchemy, person needs Pillow ...): HA would
pip-install them at boot, slowly and from the network, so the harness
installs the requirements of the integrations its config loads, of the ones
HA sets up by itself, and of their dependencies, once, and boots HA with
``--skip-pip``.

``python -m tests.e2e.ha_install [VERSION ...]`` does the same from a shell
(``./run``); ``--plan`` prints where each version runs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.debian_root import DebianRoot
from tests.e2e.ha_config import DOMAINS_WITH_DEMO
from tests.e2e.ha_matrix import (
    OLDEST_HA,
    TESTED_HA,
    Runtime,
    choose_runtime,
    host_packages,
    parse_version,
)

DEFAULT_HA_VERSION = OLDEST_HA
# A fresh install downloads ~100 packages; generous, but bounded.
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class HaInstall:
    """Where one Home Assistant version is installed.

    Attributes:
        venv: The venv directory, as HA's own Python sees it (inside the
            root when there is one).
        version: The Home Assistant version pinned there.
        root: The Debian root HA runs in, or None for the host.
    """

    venv: Path
    version: str
    root: DebianRoot | None = None

    @property
    def host_venv(self) -> Path:
        """The venv directory as the host sees it."""
        return self.venv if self.root is None else self.root.host_path(self.venv)

    @property
    def hass(self) -> Path:
        """The ``hass`` executable (HA's view)."""
        return self.venv / "bin" / "hass"

    @property
    def python(self) -> Path:
        """The venv's interpreter (HA's view)."""
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        """Written last by a complete install (shared with ``./run``)."""
        return self.host_venv / ".installed"

    def describe(self) -> str:
        """One line for logs: version and where it runs."""
        where = "host" if self.root is None else f"Debian {self.root.suite} root {self.root.path}"
        return f"Home Assistant {self.version} in {self.venv} ({where})"

    def command(
        self, argv: Sequence[str], binds: Iterable[Path] = (), env: Sequence[str] = ()
    ) -> list[str]:
        """The host command line that runs ``argv`` where HA lives.

        Args:
            argv: The command (paths as HA sees them).
            binds: Host directories HA must see at the same path (its config).
            env: ``KEY=value`` pairs for a command run in the root.
        """
        if self.root is None:
            return list(argv)
        return self.root.command(argv, binds, env)


@functools.cache
def host_python_version() -> tuple[int, ...]:
    """Version of the host's ``python3`` (the one a host HA venv is made from)."""
    python = shutil.which("python3") or sys.executable
    out = subprocess.run(
        [python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return parse_version(out)


def install_for(
    version: str, cache: Path | None = None, host_python: tuple[int, ...] | None = None
) -> HaInstall:
    """Describe where ``version`` is (or will be) installed.

    Args:
        version: HA release.
        cache: Cache directory (default ``$GRIDWATCH_CACHE`` or ~/.cache/gridwatch).
        host_python: The host python3's version (default: ask it).

    Returns:
        The install (not yet checked on disk).
    """
    if cache is None:
        cache = Path(os.environ.get("GRIDWATCH_CACHE", Path.home() / ".cache" / "gridwatch"))
    runtime: Runtime = choose_runtime(version, host_python or host_python_version())
    if runtime.suite is not None:
        root = DebianRoot(cache / f"{runtime.suite}-root", runtime.suite)
        return HaInstall(venv=Path(f"/opt/ha-{version}"), version=version, root=root)
    return HaInstall(venv=cache / f"ha-{version}", version=version)


def install_from_env() -> HaInstall:
    """The install named by ``$GRIDWATCH_HA_VERSION`` (default: the oldest tested).

    Returns:
        The install (not yet checked on disk).
    """
    version = os.environ.get("GRIDWATCH_HA_VERSION") or DEFAULT_HA_VERSION
    return install_for(version)


def ensure_installed(install: HaInstall, domains: Iterable[str]) -> None:
    """Install HA and the requirements of ``domains`` unless already there.

    Args:
        install: Where HA goes.
        domains: Integrations the test config loads; their requirements, those
            of the integrations HA sets up by itself and of every dependency
            are installed.

    Raises:
        subprocess.CalledProcessError: pip or debootstrap failed.
        subprocess.TimeoutExpired: pip took longer than INSTALL_TIMEOUT_S.
    """
    if install.root is not None:
        install.root.ensure()
    if not install.stamp.is_file():
        _install_core(install)
    components = _components_dir(install)
    loaded = ha_domains(install)
    requirements = set(integration_requirements(components, [*domains, *loaded.auto]))
    imports_base = parse_version(install.version)[:2] >= BASE_IMPORTS_SINCE
    if imports_base:
        # Imported as modules, so what they import after HA's own manifest
        # ("after_dependencies": conversation, tts ...) must import too.
        requirements |= set(
            integration_requirements(components, loaded.base, after_dependencies=True)
        )
    wanted = sorted(requirements)
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    stamp = install.host_venv / f".gridwatch-requirements-{digest}"
    if wanted and not stamp.is_file():
        _pip(install, *wanted)
        if imports_base:
            check_service_imports(install)
        stamp.touch()


def _install_core(install: HaInstall) -> None:
    # Same steps for host and root; ./run calls this module for both.
    shutil.rmtree(install.host_venv, ignore_errors=True)
    install.host_venv.parent.mkdir(parents=True, exist_ok=True)
    if install.root is None:
        python = shutil.which("python3") or sys.executable
    else:
        python = "/usr/bin/python3"
    subprocess.run(
        install.command([python, "-m", "venv", str(install.venv)]),
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    _pip(install, "--upgrade", "pip")
    _pip(install, f"homeassistant=={install.version}")
    install.stamp.touch()


def _pip(install: HaInstall, *args: str) -> None:
    argv = [str(install.python), "-m", "pip", "install", "-q", *args]
    if install.root is not None:
        command, env = install.command(argv, env=install.root.pip_env()), None
    else:
        command, env = argv, {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        command, check=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL, env=env
    )


# What this HA version loads without being configured, read from HA itself
# so a new version brings its own lists:
# - "auto": set up whatever configuration.yaml says: the core, and from
#   2024.4 on the "default integrations" (frontend, backup, automation ...);
# - "base": the entity platforms HA 2025+ imports to describe services
#   (helpers/service.py ``_base_components``: camera, conversation via
#   ai_task ...). The websocket ``get_services`` (which AppDaemon calls to
#   learn every service) fails if one of them cannot be imported.
_PROBE_PY = r"""
import inspect, json, re
from homeassistant import bootstrap as b
from homeassistant.helpers import service as s
auto = set(b.CORE_INTEGRATIONS) | set(getattr(b, "DEFAULT_INTEGRATIONS", ()))
base = set()
fn = getattr(s, "_base_components", None)
if fn is not None:
    m = re.search(r"from homeassistant\.components import \((.*?)\)", inspect.getsource(fn), re.S)
    for line in m.group(1).splitlines():
        name = line.split("#")[0].strip().rstrip(",")
        if name:
            base.add(name)
print(json.dumps({"auto": sorted(auto), "base": sorted(base)}))
"""
# From this release on (checked: 2026.2.3, not 2024.1.6) answering
# get_services imports the "base" platforms with this test config. 2024.1
# imports them only for a services.yaml feature filter of a loaded domain
# (none here), and its calendar module needs python-dateutil, which no
# manifest declares: installing them there would not even make them import.
BASE_IMPORTS_SINCE = (2025, 1)
# Imports HA needs before it can answer get_services; run after installing.
_CHECK_PY = (
    "from homeassistant.helpers import service as s; getattr(s, '_base_components', lambda: None)()"
)


@dataclass(frozen=True)
class HaDomains:
    """Integrations an HA version loads without being configured (see _PROBE_PY)."""

    auto: tuple[str, ...]
    base: tuple[str, ...]


def ha_domains(install: HaInstall) -> HaDomains:
    """Ask this HA's Python which integrations it loads by itself (cached).

    Raises:
        subprocess.CalledProcessError: HA's Python could not report them.
    """
    cached = install.host_venv / ".gridwatch-ha-domains.json"
    if cached.is_file():
        raw = json.loads(cached.read_text())
    else:
        out = _run_in_ha(install, _PROBE_PY)
        raw = json.loads(out.strip().splitlines()[-1])
        cached.write_text(json.dumps(raw))
    return HaDomains(auto=tuple(raw["auto"]), base=tuple(raw["base"]))


def _run_in_ha(install: HaInstall, code: str) -> str:
    return subprocess.run(
        install.command([str(install.python), "-c", code]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    ).stdout


def check_service_imports(install: HaInstall) -> None:
    """Fail now, clearly, if HA could not describe its services.

    Raises:
        RuntimeError: an import HA needs for ``get_services`` fails.
    """
    try:
        _run_in_ha(install, _CHECK_PY)
    except subprocess.CalledProcessError as err:
        last = (err.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(
            f"{install.describe()}: the modules HA imports to describe its services do "
            f"not import ({last[0]}); the websocket get_services would fail and AppDaemon "
            "would know no services. A requirement is missing from ha_install's list."
        ) from err


def _components_dir(install: HaInstall) -> Path:
    found = sorted(install.host_venv.glob("lib/python3*/site-packages/homeassistant/components"))
    if not found:
        raise FileNotFoundError(f"no homeassistant package in {install.host_venv}")
    return found[-1]


# Packages an integration needs that no manifest names. HA's MQTT integration
# sets up every entity platform (light, cover, ...); their services make HA's
# get_services import the calendar component, which imports dateutil (a real
# install has it through other packages; a bare venv does not, and then every
# AppDaemon service call fails).
IMPLIED_REQUIREMENTS: dict[str, tuple[str, ...]] = {"mqtt": ("python-dateutil",)}


def integration_requirements(
    components: Path, domains: Iterable[str], *, after_dependencies: bool = False
) -> list[str]:
    """Collect the pip requirements of integrations and their dependencies.

    Args:
        components: HA's ``homeassistant/components`` directory.
        domains: Integrations to start from.
        after_dependencies: Follow ``after_dependencies`` too (for modules
            that are imported, not set up).

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
        if after_dependencies:
            todo.extend(manifest.get("after_dependencies", []))
    return sorted(requirements)


def main(argv: list[str] | None = None) -> None:
    """Install the HA versions asked for (default: every tested one) if missing."""
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.ha_install")
    parser.add_argument("versions", nargs="*", metavar="VERSION", help=f"default: {TESTED_HA}")
    parser.add_argument(
        "--plan", action="store_true", help="print where each version runs; install nothing"
    )
    parser.add_argument(
        "--apt",
        action="store_true",
        help="print the Debian packages the host needs for these versions; install nothing",
    )
    args = parser.parse_args(argv)
    versions = args.versions or list(TESTED_HA)
    if args.apt:
        host = host_python_version()
        needed = {p for v in versions for p in host_packages(choose_runtime(v, host))}
        print(" ".join(sorted(needed)))
        return
    for version in versions:
        install = install_for(version)
        if args.plan:
            print(install.describe())
            continue
        began = time.monotonic()
        ensure_installed(install, DOMAINS_WITH_DEMO)
        print(f"ready in {time.monotonic() - began:.0f} s: {install.describe()}", flush=True)


if __name__ == "__main__":
    main()
