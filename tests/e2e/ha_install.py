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

Every install is keyed by the recipe that made it: the directory's name
carries a digest of the HA version, the Python it runs on (the host's, or a
Debian root's own recipe digest), the integrations the tests and the demo
load (``RECIPE_DOMAINS``) and this module's code, which derives the package
list from HA's own manifests and imports. A changed recipe builds a new
install beside the old one; a cache can never outlive the recipe that made
it. A complete install holds ``.gridwatch-recipe.json`` (written last): the
recipe, the packages and when it was built.

``python -m tests.e2e.ha_install [VERSION ...]`` does the same from a shell
(``./run``) and says per version whether it built or reused which recipe;
``--plan`` prints where each version runs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.debian_root import DebianRoot, root_recipe_digest
from tests.e2e.ha_config import DOMAINS_WITH_DEMO
from tests.e2e.ha_matrix import (
    OLDEST_HA,
    TESTED_HA,
    Runtime,
    choose_runtime,
    host_packages,
    parse_version,
)
from tests.e2e.progress import run_with_progress

DEFAULT_HA_VERSION = OLDEST_HA
# A fresh install downloads ~100 packages; generous, but bounded.
INSTALL_TIMEOUT_S = 1200
# Every integration a config of the suite loads: the tests' and the demo's
# (DOMAINS_WITH_DEMO), plus what tests add at run time (the MQTT discovery
# test configures the MQTT integration through the config flow API, which is
# the ``config`` integration). A test config that loads another integration
# adds it here: that changes the recipe, and the next run builds anew.
RECIPE_DOMAINS: tuple[str, ...] = (*DOMAINS_WITH_DEMO, "config", "mqtt")
RECIPE_FILE = ".gridwatch-recipe.json"


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
    recipe: str = ""

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
        """Written last by a complete install: what built it (JSON)."""
        return self.host_venv / RECIPE_FILE

    def built_by(self) -> dict[str, object] | None:
        """The recipe record of a complete install, or None if there is none."""
        try:
            record = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

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
        cache = cache_dir()
    host = host_python or host_python_version()
    runtime: Runtime = choose_runtime(version, host)
    if runtime.suite is not None:
        root_recipe = root_recipe_digest(runtime.suite)
        root = DebianRoot(cache / f"{runtime.suite}-root-{root_recipe}", runtime.suite)
        recipe = recipe_digest(version, f"debian {runtime.suite} root {root_recipe}")
        return HaInstall(Path(f"/opt/ha-{version}-{recipe}"), version, root, recipe)
    recipe = recipe_digest(version, "host python " + ".".join(map(str, host[:2])))
    return HaInstall(cache / f"ha-{version}-{recipe}", version, None, recipe)


def cache_dir() -> Path:
    """``$GRIDWATCH_CACHE``, or ~/.cache/gridwatch."""
    return Path(os.environ.get("GRIDWATCH_CACHE", Path.home() / ".cache" / "gridwatch"))


def recipe_digest(version: str, python: str) -> str:
    """The key of one HA install: what made it, digested (12 hex digits).

    Args:
        version: The HA release.
        python: Which Python the venv is made of (host minor version, or a
            Debian root with its own recipe digest).

    Returns:
        A digest of the version, the Python, ``RECIPE_DOMAINS`` and the code
        of this module (which derives the package list from HA's manifests).
    """
    recipe = hashlib.sha256()
    for part in (version, python, " ".join(RECIPE_DOMAINS)):
        recipe.update(part.encode() + b"\0")
    recipe.update(Path(__file__).read_bytes())
    return recipe.hexdigest()[:12]


def install_from_env() -> HaInstall:
    """The install named by ``$GRIDWATCH_HA_VERSION`` (default: the oldest tested).

    Returns:
        The install (not yet checked on disk).
    """
    version = os.environ.get("GRIDWATCH_HA_VERSION") or DEFAULT_HA_VERSION
    return install_for(version)


@dataclass(frozen=True)
class InstallOutcome:
    """What :func:`ensure_installed` did, for the run's log."""

    install: HaInstall
    built: bool
    seconds: float
    record: dict[str, object]

    def describe(self) -> str:
        """One line: built or reused, which recipe, how many packages."""
        packages = self.record.get("requirements", [])
        count = len(packages) if isinstance(packages, list) else 0
        if self.built:
            what = f"built now in {self.seconds:.0f} s"
        else:
            what = f"reused (built {self.record.get('built_at', '?')})"
        return (
            f"{self.install.describe()}: {what}; recipe {self.install.recipe}, "
            f"{count} integration packages"
        )


def ensure_installed(install: HaInstall, domains: Iterable[str] = ()) -> InstallOutcome:
    """Build this install from its recipe unless a complete one is cached.

    Args:
        install: Where HA goes (from :func:`install_for`).
        domains: Integrations the caller's config loads; each must be in
            ``RECIPE_DOMAINS`` (the one list every install is built for).

    Returns:
        Whether it was built now or reused, and the recipe record.

    Raises:
        ValueError: a domain the recipe does not install.
        subprocess.CalledProcessError: pip or debootstrap failed.
        subprocess.TimeoutExpired: pip took longer than INSTALL_TIMEOUT_S.
        RuntimeError: the built install cannot import what the configs load.
    """
    missing = sorted(set(domains) - set(RECIPE_DOMAINS))
    if missing:
        raise ValueError(
            f"integrations {missing} are not in ha_install.RECIPE_DOMAINS: add them there "
            "(a new recipe: the next run builds HA anew with their requirements)"
        )
    began = time.monotonic()
    record = install.built_by()
    if record is not None and record.get("recipe") == install.recipe:
        return InstallOutcome(install, False, time.monotonic() - began, record)
    # Two processes (a leg and the background install, two test runs) must
    # not build the same install at once: the second waits, then reuses.
    with _install_lock(install):
        return _build(install, began)


@contextlib.contextmanager
def _install_lock(install: HaInstall) -> Iterator[None]:
    lock_path = cache_dir() / f".lock-ha-{install.version}"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{install.describe()}: another process is installing it; waiting", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(install: HaInstall, began: float) -> InstallOutcome:
    if install.root is not None:
        install.root.ensure()
    record = install.built_by()
    if record is not None and record.get("recipe") == install.recipe:
        return InstallOutcome(install, False, time.monotonic() - began, record)
    others = _other_recipes(install)
    if others:
        print(
            f"{install.describe()}: the recipe changed since {', '.join(others)}; "
            "building anew beside it",
            flush=True,
        )
    _install_core(install)
    wanted = recipe_requirements(install)
    if wanted:
        _pip(install, f"{len(wanted)} integration packages", *wanted)
    check_imports(install)
    record = {
        "recipe": install.recipe,
        "version": install.version,
        "domains": list(RECIPE_DOMAINS),
        "requirements": wanted,
        "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    install.stamp.write_text(json.dumps(record, indent=1) + "\n")
    return InstallOutcome(install, True, time.monotonic() - began, record)


def recipe_requirements(install: HaInstall) -> list[str]:
    """The packages this install's recipe puts in, derived from HA itself.

    The requirements of every integration a config loads, of the ones HA
    sets up by itself, and of everything they depend on or import at module
    level (so MQTT's camera platform brings stream's numpy); on HA 2025+ also
    of the base platforms HA imports to describe its services.
    """
    components = _components_dir(install)
    loaded = ha_domains(install)
    requirements = set(
        integration_requirements(components, [*RECIPE_DOMAINS, *loaded.auto], follow_imports=True)
    )
    if parse_version(install.version)[:2] >= BASE_IMPORTS_SINCE:
        # Imported as modules, so what they import after HA's own manifest
        # ("after_dependencies": conversation, tts ...) must import too.
        requirements |= set(
            integration_requirements(components, loaded.base, after_dependencies=True)
        )
    return sorted(requirements)


def _other_recipes(install: HaInstall) -> list[str]:
    pattern = f"ha-{install.version}*"
    parent = install.host_venv.parent
    return sorted(
        path.name
        for path in parent.glob(pattern)
        if path != install.host_venv and (path / RECIPE_FILE).is_file()
    )


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
    _pip(install, "pip", "--upgrade", "pip")
    _pip(install, f"Home Assistant {install.version}", f"homeassistant=={install.version}")


def _pip(install: HaInstall, what: str, *args: str) -> None:
    argv = [str(install.python), "-m", "pip", "install", "-q", *args]
    if install.root is not None:
        command, env = install.command(argv, env=install.root.pip_env()), None
    else:
        command, env = argv, {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run_with_progress(
        command,
        f"pip: installing {what} into {install.venv}",
        timeout=INSTALL_TIMEOUT_S,
        env=env,
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
# Run in HA's Python after installing (argv: the modules to import): every
# integration a config loads and each of its entity platform modules (the
# MQTT entry sets up camera, image ... after a restart), then, where HA has
# it, what HA imports to describe its services. HA's own import order first
# (bootstrap), or its integrations import each other in a circle.
_CHECK_PY = r"""
import importlib, json, sys
import homeassistant.bootstrap
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = f"{type(err).__name__}: {err}"
from homeassistant.helpers import service as s
try:
    getattr(s, "_base_components", lambda: None)()
except Exception as err:
    failed["get_services base platforms"] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


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


def _run_in_ha(install: HaInstall, code: str, *args: str) -> str:
    return subprocess.run(
        install.command([str(install.python), "-c", code, *args]),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    ).stdout


def check_imports(install: HaInstall) -> None:
    """Fail now, clearly, if HA cannot import what the suite's configs load.

    Raises:
        RuntimeError: naming each module that does not import and why.
    """
    modules = recipe_modules(_components_dir(install), [*RECIPE_DOMAINS, *ha_domains(install).auto])
    try:
        out = _run_in_ha(install, _CHECK_PY, *modules)
    except subprocess.CalledProcessError as err:
        last = (err.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{install.describe()}: HA itself does not import: {last[0]}") from err
    failed: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    if failed:
        listing = "; ".join(f"{name}: {why}" for name, why in sorted(failed.items()))
        raise RuntimeError(
            f"{install.describe()}: HA cannot import what the tests' configs load ({listing}). "
            "A package is missing from the recipe (tests/e2e/ha_install.py): HA would fail "
            "to set these up, and without the base platforms the websocket get_services "
            "fails and AppDaemon knows no services."
        )


def recipe_modules(components: Path, domains: Iterable[str]) -> list[str]:
    """The modules HA imports to set ``domains`` up: each integration and its
    entity platform modules (``mqtt.camera`` ...), as dotted names."""
    platforms = _entity_platforms(components)
    modules: list[str] = []
    for domain in sorted(set(domains)):
        package = components / domain
        if not package.is_dir():
            continue
        modules.append(f"homeassistant.components.{domain}")
        modules.extend(
            f"homeassistant.components.{domain}.{path.stem}"
            for path in sorted(package.glob("*.py"))
            if path.stem in platforms
        )
    return modules


def _entity_platforms(components: Path) -> set[str]:
    # The entity platforms (sensor, camera ...): the integrations whose
    # manifest says so; the same on every HA version (its Platform enum moved).
    found: set[str] = set()
    for manifest in components.glob("*/manifest.json"):
        if json.loads(manifest.read_text()).get("integration_type") == "entity":
            found.add(manifest.parent.name)
    return found


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


# A module-level import of another integration (``from
# homeassistant.components.stream import ...``, ``from homeassistant.components
# import camera, sensor``, ``from ..stream import``): what importing this
# integration imports too, whatever its manifest says.
_COMPONENT_IMPORT = re.compile(
    r"^(?:from\s+homeassistant\.components\.(?P<dotted>\w+)"
    r"|import\s+homeassistant\.components\.(?P<plain>\w+)"
    r"|from\s+\.\.(?P<relative>\w+)\s+import"
    r"|from\s+homeassistant\.components\s+import\s+\(?(?P<names>[\w,\s]+)\)?)",
    re.M,
)


def imported_integrations(package: Path) -> set[str]:
    """Integrations an integration's modules import at module level."""
    found: set[str] = set()
    for path in package.glob("*.py"):
        for match in _COMPONENT_IMPORT.finditer(path.read_text(errors="replace")):
            names = match["names"] or ""
            found.update(n.strip() for n in names.replace("\n", ",").split(",") if n.strip())
            found.update(filter(None, (match["dotted"], match["plain"], match["relative"])))
    return found


def integration_requirements(
    components: Path,
    domains: Iterable[str],
    *,
    after_dependencies: bool = False,
    follow_imports: bool = False,
) -> list[str]:
    """Collect the pip requirements of integrations and their dependencies.

    Args:
        components: HA's ``homeassistant/components`` directory.
        domains: Integrations to start from.
        after_dependencies: Follow ``after_dependencies`` too (for modules
            that are imported, not set up).
        follow_imports: Follow the integrations each one imports at module
            level (its platforms: MQTT's camera imports stream, numpy).

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
        if follow_imports:
            todo.extend(imported_integrations(manifest_path.parent))
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
        try:
            outcome = ensure_installed(install)
        except (RuntimeError, subprocess.SubprocessError) as err:
            # One clear sentence, not a traceback: the cause is the host's.
            raise SystemExit(f"Home Assistant {version}: {err}") from None
        print(outcome.describe(), flush=True)


if __name__ == "__main__":
    main()
