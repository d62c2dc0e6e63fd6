"""Benchmarks: they print figures, they never pass or fail.

Run from the repository root with the venv::

    .venv/bin/python -m bench            # every bench, in name order
    .venv/bin/python -m bench mqtt guard # only bench_mqtt.py and bench_guard.py

Convention for a new bench (say ``bench/bench_energy.py``):

- The module is named ``bench_<name>.py`` and defines
  ``async def run() -> list[Row]``. It starts whatever real services it needs
  and always stops them (``try``/``finally``), and finishes in a couple of
  minutes on a loaded two-core machine.
- A :class:`Row` is one figure: ``metric`` (what was measured, with its
  conditions), ``value`` (a number or short text), ``unit``, and optionally
  ``goal`` (the target as text, e.g. ``">= 0.8"``; shown, never asserted) and
  ``note`` (context such as a sample count). Build rows with :func:`row`.
- Keep imports of heavy or optional packages inside ``run()`` so listing and
  running other benches never fails because of one bench's needs.
- Progress goes to stderr (``progress()``); only the table goes to stdout.

``python -m bench`` imports each selected module, awaits ``run()`` in a
fresh event loop, and prints one table per bench. A bench that raises is
reported as an error row and the others still run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NotRequired, TypedDict

# As in a user's AppDaemon app_dir: the gridwatch package in lib/, the apps
# in apps/ (imported by bare name; the guard's day runs the real app).
_REPO = Path(__file__).resolve().parents[1]
for _folder in ("apps", "lib"):
    if str(_REPO / _folder) not in sys.path:
        sys.path.insert(0, str(_REPO / _folder))


class Row(TypedDict):
    """One printed figure."""

    metric: str
    value: float | int | str
    unit: str
    goal: NotRequired[str]
    note: NotRequired[str]


def row(
    metric: str, value: float | int | str, unit: str = "", goal: str = "", note: str = ""
) -> Row:
    """Build a :class:`Row` (empty ``goal`` / ``note`` are left out)."""
    result: Row = {"metric": metric, "value": value, "unit": unit}
    if goal:
        result["goal"] = goal
    if note:
        result["note"] = note
    return result


def progress(*parts: Any) -> None:
    """A progress line on stderr, so stdout keeps only the tables."""
    print("  ..", *parts, file=sys.stderr, flush=True)


def format_value(value: float | int | str) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def format_table(title: str, rows: list[Row]) -> str:
    """Rows as a plain-text table under ``title``."""
    header = ("metric", "value", "unit", "goal", "note")
    cells = [
        (
            r["metric"],
            format_value(r["value"]),
            r["unit"],
            r.get("goal", ""),
            r.get("note", ""),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = [f"== {title} =="]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        aligned = [c[0].ljust(widths[0]), c[1].rjust(widths[1])]
        aligned += [c[i].ljust(widths[i]) for i in range(2, len(header))]
        lines.append("  ".join(aligned).rstrip())
    return "\n".join(lines)
