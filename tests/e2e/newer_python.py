"""The tests whose libraries need a newer Python than the host's, on one.

Some device libraries need Python >= 3.12 (aiobmsble, renogy-ble's current
line): on a Debian 12 host (3.11) their tests skip in the main leg, and a
skipped test is no tested profile. This module runs the tests marked
``needs_py312`` on a Python that fits: the host's own where it is new enough
(Debian 13: the main leg already ran them, nothing to do), else the Debian
root the suite builds for HA 2026.2 (trixie, Python 3.13). There it keeps a
venv of the suite's requirements, keyed by its recipe like every cached
install, and runs pytest with the checkout bound at the same path.

``python -m tests.e2e.newer_python [pytest args]``; exit code: pytest's.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.e2e.debian_root import DebianRoot, root_recipe_digest
from tests.e2e.ha_install import INSTALL_TIMEOUT_S, RECIPE_FILE, cache_dir, host_python_version
from tests.e2e.progress import run_with_progress

MARKER = "needs_py312"
NEEDED_PYTHON = (3, 12)
# The root whose python3 is new enough (Debian 13, Python 3.13).
SUITE = "trixie"
CHECKOUT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")


def venv_recipe(root: DebianRoot) -> str:
    """Digest of what makes the root's suite venv (12 hex digits)."""
    recipe = hashlib.sha256(root.path.name.encode())
    for name in REQUIREMENTS:
        recipe.update((CHECKOUT / name).read_bytes())
    recipe.update(Path(__file__).read_bytes())
    return recipe.hexdigest()[:12]


def ensure_venv(root: DebianRoot) -> Path:
    """The suite's venv in the root (built from its recipe unless cached).

    Returns:
        The venv's path as the root sees it.
    """
    root.ensure()
    recipe = venv_recipe(root)
    venv = Path(f"/opt/suite-{recipe}")
    stamp = root.host_path(venv) / RECIPE_FILE
    if stamp.is_file():
        print(f"suite venv {venv} in {root.path}: reused (recipe {recipe})", flush=True)
        return venv
    run_with_progress(
        root.command(["/usr/bin/python3", "-m", "venv", "--clear", str(venv)]),
        f"creating the suite's venv {venv} in the Debian {root.suite} root",
        timeout=120,
    )
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run_with_progress(
        root.command(
            [*pip, *(f for name in REQUIREMENTS for f in ("-r", str(CHECKOUT / name)))],
            binds=[CHECKOUT],
            env=root.pip_env(),
        ),
        f"pip: installing the suite's requirements into {venv} (Python 3.13)",
        timeout=INSTALL_TIMEOUT_S,
    )
    stamp.write_text(json.dumps({"recipe": recipe}) + "\n")
    print(f"suite venv {venv} in {root.path}: built now (recipe {recipe})", flush=True)
    return venv


def main(argv: list[str]) -> int:
    """Run the ``needs_py312`` tests on a Python that fits; pytest's exit code.

    ``--prepare`` only builds the venv (``./run test`` does it in the
    background while the first leg runs).
    """
    if host_python_version()[:2] >= NEEDED_PYTHON:
        print(f"the host's Python runs the {MARKER} tests in the main leg already", flush=True)
        return 0
    root = DebianRoot(cache_dir() / f"{SUITE}-root-{root_recipe_digest(SUITE)}", SUITE)
    venv = ensure_venv(root)
    if argv[:1] == ["--prepare"]:
        return 0
    pytest = [
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        MARKER,
        *argv,
    ]
    # The root's environment is minimal: the working directory is set inside.
    in_checkout = ["/bin/sh", "-c", f'cd {shlex.quote(str(CHECKOUT))} && exec "$@"', "pytest"]
    command = root.command([*in_checkout, *pytest], binds=[CHECKOUT], env=["CI=true"])
    return subprocess.run(command, check=False, stdin=subprocess.DEVNULL).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
