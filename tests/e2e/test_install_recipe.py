"""Every cached install is keyed by the recipe that built it.

The unit tests (no HA needed) show what the recipe derives and what changes
its key; the e2e one checks the HA install this leg uses: built by today's
recipe, holding exactly the packages today's recipe derives from that HA's
own manifests, and able to import every integration and platform module the
suite's configs load (the MQTT entry's camera -> stream -> numpy included).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e import ha_install
from tests.e2e.debian_root import check_private_mounts, root_recipe_digest
from tests.e2e.ha_install import (
    RECIPE_DOMAINS,
    check_imports,
    ensure_installed,
    install_for,
    install_from_env,
    integration_requirements,
    recipe_digest,
    recipe_modules,
    recipe_requirements,
)

DEBIAN_12 = (3, 11, 2)


def _integration(
    components: Path,
    domain: str,
    requirements: list[str],
    modules: dict[str, str] | None = None,
    dependencies: list[str] | None = None,
    integration_type: str = "hub",
) -> None:
    package = components / domain
    package.mkdir(parents=True)
    manifest = {
        "domain": domain,
        "requirements": requirements,
        "dependencies": dependencies or [],
        "integration_type": integration_type,
    }
    (package / "manifest.json").write_text(json.dumps(manifest))
    (package / "__init__.py").write_text("")
    for name, source in (modules or {}).items():
        (package / f"{name}.py").write_text(source)


@pytest.fixture
def components(tmp_path: Path) -> Path:
    """A miniature ``homeassistant/components`` shaped like MQTT's camera chain."""
    components = tmp_path / "homeassistant" / "components"
    components.mkdir(parents=True)
    _integration(
        components,
        "mqtt",
        ["paho-mqtt==1.6.1"],
        {
            "camera": "from homeassistant.components import camera, image\n",
            "sensor": "from homeassistant.components.sensor import SensorEntity\n",
            "util": "def later():\n    from homeassistant.components import cast\n",
        },
    )
    _integration(
        components,
        "camera",
        ["PyTurboJPEG==1.7.1"],
        {"img": "from ..stream import x\n"},
        [],
        "entity",
    )
    _integration(components, "stream", ["numpy==1.26.0", "ha-av==10.1.1"])
    _integration(components, "image", [], dependencies=["http"])
    _integration(components, "http", ["aiohttp_cors==0.7.0"])
    _integration(components, "sensor", [], integration_type="entity")
    _integration(components, "cast", ["PyChromecast==13.0.8"])
    return components


def test_a_platform_module_brings_what_it_imports(components: Path) -> None:
    by_manifest = integration_requirements(components, ["mqtt"])
    followed = integration_requirements(components, ["mqtt"], follow_imports=True)

    # The manifest alone misses what the MQTT entry's camera platform imports.
    assert "paho-mqtt==1.6.1" in by_manifest
    assert "numpy==1.26.0" not in by_manifest
    assert "numpy==1.26.0" in followed
    assert {"PyTurboJPEG==1.7.1", "ha-av==10.1.1", "aiohttp_cors==0.7.0"} <= set(followed)
    # An import inside a function runs only if called: not followed.
    assert "PyChromecast==13.0.8" not in followed


def test_the_import_check_covers_each_entity_platform_module(components: Path) -> None:
    modules = recipe_modules(components, ["mqtt", "no_such_integration"])

    assert modules == [
        "homeassistant.components.mqtt",
        "homeassistant.components.mqtt.camera",
        "homeassistant.components.mqtt.sensor",
    ]


def test_the_recipe_key_follows_what_makes_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    today = recipe_digest("2024.1.6", "host python 3.11")

    assert recipe_digest("2024.1.6", "host python 3.11") == today
    assert recipe_digest("2024.1.7", "host python 3.11") != today
    assert recipe_digest("2024.1.6", "host python 3.12") != today
    monkeypatch.setattr(ha_install, "RECIPE_DOMAINS", (*RECIPE_DOMAINS, "camera"))
    assert recipe_digest("2024.1.6", "host python 3.11") != today


def test_a_new_root_recipe_is_a_new_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = install_for("2026.2.3", tmp_path, DEBIAN_12)
    root_recipe_digest.cache_clear()
    monkeypatch.setattr("tests.e2e.debian_root.INCLUDE", ("python3", "libfoo0"))
    try:
        after = install_for("2026.2.3", tmp_path, DEBIAN_12)
    finally:
        root_recipe_digest.cache_clear()

    assert before.root is not None
    assert after.root is not None
    assert after.root.path != before.root.path
    # HA's venv is keyed by the root it lives in, so it is built anew too.
    assert after.recipe != before.recipe


def test_a_config_outside_the_recipe_is_refused(tmp_path: Path) -> None:
    install = install_for("2024.1.6", tmp_path, DEBIAN_12)

    with pytest.raises(ValueError, match="RECIPE_DOMAINS"):
        ensure_installed(install, ["recorder", "zwave_js"])
    assert not install.host_venv.exists()


@pytest.mark.e2e
def test_the_ha_in_use_was_built_by_todays_recipe() -> None:
    install = install_from_env()
    ensure_installed(install, RECIPE_DOMAINS)
    record = install.built_by()

    assert record is not None
    assert record["recipe"] == install.recipe
    assert record["version"] == install.version
    assert record["requirements"] == recipe_requirements(install)
    # Raises, naming each module, if anything the configs load cannot import.
    check_imports(install)


def test_a_host_without_private_mounts_gets_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("GRIDWATCH_CACHE", str(tmp_path))
    # A container whose "/" is no mount point: unshare's own complaint.
    refused = subprocess.CompletedProcess(
        ["unshare"], 1, "", "unshare: cannot change root filesystem propagation: Invalid argument\n"
    )
    check_private_mounts.cache_clear()
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: refused)
    monkeypatch.setattr(ha_install, "host_python_version", lambda: DEBIAN_12)
    try:
        with pytest.raises(SystemExit) as stopped:
            ha_install.main(["2026.2.3"])
    finally:
        check_private_mounts.cache_clear()

    message = str(stopped.value.code)
    assert "Home Assistant 2026.2.3" in message
    assert "private mount namespace" in message
    assert "Invalid argument" in message
    assert "Traceback" not in capsys.readouterr().err
