"""The README's configuration examples must be accepted by the apps they
configure: a copied example that fails validation is a broken promise."""

import re
from pathlib import Path

import pytest
import yaml

from demo.config_files import check_apps

README = Path(__file__).resolve().parent.parent / "README.md"


def _app_blocks() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    apps = [yaml.safe_load(block) for block in blocks]
    return [
        a
        for a in apps
        if isinstance(a, dict) and any("module" in v for v in a.values() if isinstance(v, dict))
    ]


def test_readme_has_an_app_example():
    assert _app_blocks()


@pytest.mark.parametrize("apps", _app_blocks())
def test_every_readme_app_example_validates(apps):
    assert check_apps(apps) == []


def test_the_readme_names_every_run_subcommand_that_exists():
    run = (README.parent / "run").read_text()
    for command in re.findall(r"^\./run (\w+)", README.read_text(), flags=re.M):
        assert f"  {command})" in run, f"./run {command} is documented but not implemented"
