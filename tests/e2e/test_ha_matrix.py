"""Which Python runs which HA version, for every kind of host (no machine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.debian_root import DebianRoot, parse_pip_cert, root_recipe_digest
from tests.e2e.ha_install import RECIPE_FILE, HaInstall, install_for
from tests.e2e.ha_matrix import (
    NEWEST_HA,
    OLDEST_HA,
    NoPythonForHa,
    Runtime,
    choose_runtime,
    host_packages,
    parse_version,
    python_range,
)

DEBIAN_12 = (3, 11, 2)
DEBIAN_13 = (3, 13, 5)


@pytest.mark.parametrize(
    ("host", "ha", "suite"),
    [
        # Debian 12: its 3.11 runs 2024.1; 2026.2 needs trixie's 3.13.
        (DEBIAN_12, OLDEST_HA, None),
        (DEBIAN_12, NEWEST_HA, "trixie"),
        # Debian 13: the other way round (2024.1 cannot install on 3.13).
        (DEBIAN_13, OLDEST_HA, "bookworm"),
        (DEBIAN_13, NEWEST_HA, None),
        # This machine's pyenv 3.11.7, and the add-on's 3.12.
        ((3, 11, 7), NEWEST_HA, "trixie"),
        ((3, 12, 1), OLDEST_HA, None),
        ((3, 12, 1), NEWEST_HA, "trixie"),
        # 3.13.0/3.13.1 are too old for 2025.5+ (>= 3.13.2).
        ((3, 13, 0), NEWEST_HA, "trixie"),
        ((3, 13, 2), NEWEST_HA, None),
        # A 3.14 host fits neither: both run in roots.
        ((3, 14, 0), OLDEST_HA, "bookworm"),
        ((3, 14, 0), NEWEST_HA, "trixie"),
    ],
)
def test_each_ha_version_gets_a_python_that_fits_it(
    host: tuple[int, ...], ha: str, suite: str | None
) -> None:
    runtime = choose_runtime(ha, host)

    assert runtime == Runtime(ha, suite)
    python = host if suite is None else {"trixie": DEBIAN_13, "bookworm": DEBIAN_12}[suite]
    assert python in python_range(ha)


def test_an_ha_that_needs_python_3_14_has_no_home_here() -> None:
    with pytest.raises(NoPythonForHa, match=r"2026\.3\.0 needs Python >= 3\.14\.2"):
        choose_runtime("2026.3.0", DEBIAN_12)


def test_an_ha_older_than_the_oldest_supported_is_refused() -> None:
    with pytest.raises(ValueError, match="older than the oldest supported"):
        python_range("2023.12.4")


@pytest.mark.parametrize(
    ("ha", "low"),
    [
        ("2024.3.3", (3, 11)),
        ("2024.4.0", (3, 12)),
        ("2025.2.1", (3, 13, 0)),
        ("2025.5.0", (3, 13, 2)),
    ],
)
def test_python_floor_follows_the_ha_release(ha: str, low: tuple[int, ...]) -> None:
    assert python_range(ha).low == low


def test_install_paths_on_a_debian_12_host(tmp_path: Path) -> None:
    old = install_for(OLDEST_HA, tmp_path, DEBIAN_12)
    new = install_for(NEWEST_HA, tmp_path, DEBIAN_12)

    # Each install's directory carries the digest of the recipe that made it.
    assert old == HaInstall(tmp_path / f"ha-{OLDEST_HA}-{old.recipe}", OLDEST_HA, None, old.recipe)
    assert len(old.recipe) == 12
    assert old.command(["/x/hass", "-c", "/cfg"]) == ["/x/hass", "-c", "/cfg"]
    root_recipe = root_recipe_digest("trixie")
    assert new.root == DebianRoot(tmp_path / f"trixie-root-{root_recipe}", "trixie")
    assert new.venv == Path(f"/opt/ha-{NEWEST_HA}-{new.recipe}")
    # Stamps and the components dir are read on the host side of the root.
    assert new.stamp == new.root.path / "opt" / f"ha-{NEWEST_HA}-{new.recipe}" / RECIPE_FILE


def test_install_paths_on_a_debian_13_host(tmp_path: Path) -> None:
    old = install_for(OLDEST_HA, tmp_path, DEBIAN_13)
    new = install_for(NEWEST_HA, tmp_path, DEBIAN_13)

    root_recipe = root_recipe_digest("bookworm")
    assert old.root == DebianRoot(tmp_path / f"bookworm-root-{root_recipe}", "bookworm")
    assert old.host_venv == old.root.path / "opt" / f"ha-{OLDEST_HA}-{old.recipe}"
    assert new == HaInstall(tmp_path / f"ha-{NEWEST_HA}-{new.recipe}", NEWEST_HA, None, new.recipe)


def test_the_same_version_on_another_python_is_another_install(tmp_path: Path) -> None:
    on_311 = install_for(OLDEST_HA, tmp_path, (3, 11, 2))
    on_312 = install_for(OLDEST_HA, tmp_path, (3, 12, 1))

    assert on_311.recipe != on_312.recipe
    assert on_311.host_venv != on_312.host_venv


def test_a_command_in_the_root_binds_dirs_and_execs_the_program(tmp_path: Path) -> None:
    root = DebianRoot(tmp_path / "trixie-root", "trixie")

    argv = root.command(["/opt/ha/bin/hass", "-c", str(tmp_path)], [tmp_path], ["A=1"])

    # A private mount namespace: its mounts die with the process.
    assert argv[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    separator = argv.index("--", 5)
    assert argv[separator - 2 : separator] == [str(root.path), str(tmp_path.resolve())]
    assert argv[separator + 1 :] == ["A=1", "/opt/ha/bin/hass", "-c", str(tmp_path)]


def test_the_pip_cert_is_read_from_pip_config_list() -> None:
    listing = (
        ":env:.default-timeout='180'\n"
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.find-links='/opt/wheels'\n"
    )

    assert parse_pip_cert(listing) == "/etc/ssl/certs/ca-certificates.crt"
    assert parse_pip_cert("global.index-url='https://pypi.org/simple'\n") is None


def test_versions_parse_as_tuples() -> None:
    assert parse_version("3.13.5\n") == (3, 13, 5)
    assert parse_version(NEWEST_HA) == (2026, 2, 3)


@pytest.mark.parametrize(
    ("host", "ha", "packages"),
    [
        # Debian 12: nothing for 2024.1 on the host, debootstrap for 2026.2.
        (DEBIAN_12, OLDEST_HA, ()),
        (DEBIAN_12, NEWEST_HA, ("debootstrap",)),
        # Debian 13: debootstrap for 2024.1; 2026.2 on the host needs what
        # the root would bring (C++ for sdists, headers, libturbojpeg).
        (DEBIAN_13, OLDEST_HA, ("debootstrap",)),
        (DEBIAN_13, NEWEST_HA, ("g++", "python3-dev", "libturbojpeg0")),
    ],
)
def test_the_host_gets_the_debian_packages_its_legs_need(
    host: tuple[int, ...], ha: str, packages: tuple[str, ...]
) -> None:
    assert host_packages(choose_runtime(ha, host)) == packages
