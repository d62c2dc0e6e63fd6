"""The tally's rules worked out by hand over recorder rows (the e2e tests' oracle)."""

from __future__ import annotations

from datetime import datetime


def sums_by_hand(rows: dict[datetime, float | None], since: datetime) -> tuple[float, int]:
    """Energy of the rows starting at or after ``since``, and the drops, by the rules:
    an empty sum is a gap; a drop is never subtracted; a first sum counts nothing."""
    last: float | None = None
    total, drops = 0.0, 0
    for start in sorted(rows):
        value = rows[start]
        if value is None:
            continue
        if last is not None and start >= since:
            if value < last:
                drops += 1
            else:
                total += value - last
        last = value
    return total, drops
