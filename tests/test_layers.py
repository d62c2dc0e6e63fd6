"""The house rules of DESIGN.md ("Layout"), read from the code's imports.

Folders of ``lib/gridwatch`` sit on floors; an import may point only to a
lower floor or stay inside its own folder, so no import runs up and no two
folders import each other. Only ``runtime/`` imports AppDaemon.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lib" / "gridwatch"

# Bottom up. Folders on one floor are ordered too (config builds the guard's,
# energy's and links' settings; guard and links raise notices; the verified
# call reuses the transports' backoff), so the floor number is strict.
FLOORS: dict[str, int] = {
    "hass": 0,
    "transport": 1,
    "safety": 2,
    "notices": 3,
    "energy": 4,
    "guard": 4,
    "links": 4,
    "config": 5,
    "runtime": 6,
    "apps": 7,
}


def _folder_of(path: Path) -> str:
    if path.parent == REPO / "apps":
        return "apps"
    return path.relative_to(PACKAGE).parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def _sources() -> list[Path]:
    files = [p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE]
    return sorted(files + list((REPO / "apps").glob("*.py")))


SOURCES = _sources()


def test_every_folder_has_a_floor():
    assert {_folder_of(p) for p in SOURCES} == set(FLOORS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down(path: Path):
    folder = _folder_of(path)
    upward = []
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] == "appdaemon" and folder not in ("runtime",):
            upward.append(f"line {line}: {module} (only runtime/ imports AppDaemon)")
        if parts[0] != "gridwatch" or len(parts) < 2:
            continue
        target = parts[1]
        if target != folder and FLOORS[target] >= FLOORS[folder]:
            upward.append(f"line {line}: {module} ({target} is not below {folder})")
    assert upward == []
