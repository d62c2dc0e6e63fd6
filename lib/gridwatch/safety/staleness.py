"""Age of readings against a threshold; a reading that never arrived is stale."""

from __future__ import annotations

from dataclasses import dataclass

# Grid meters and inverters report every few seconds; 30 s of silence means a
# dead link or integration, and the guard must not steer on what it last saw.
DEFAULT_MAX_AGE_S = 30.0


@dataclass(frozen=True)
class Freshness:
    """How old a reading is.

    Attributes:
        age_s: seconds since it arrived; ``None`` if it never did.
        stale: older than the threshold, or never arrived.
    """

    age_s: float | None
    stale: bool


def freshness(
    received_at: float | None, now: float, max_age_s: float = DEFAULT_MAX_AGE_S
) -> Freshness:
    """Judge the age of one reading.

    Args:
        received_at: monotonic time the reading arrived, ``None`` if never.
        now: the current monotonic time.
        max_age_s: the age beyond which it is stale.

    Returns:
        The age (never negative: a clock that stepped back counts as fresh
        "now", not as the future) and the verdict.
    """
    if received_at is None:
        return Freshness(None, True)
    age = max(0.0, now - received_at)
    return Freshness(age, age > max_age_s)
