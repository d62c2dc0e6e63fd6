"""Readings that HA keeps receiving unchanged (HA 2024.4+ ``last_reported``).

HA fires no state_changed for a reading that arrives with the same value, so
AppDaemon's cache, and the guard fed by its events, see a steady but live
sensor (a battery's SoC at rest, an export counter overnight) grow old and
call it stale. For a reading quiet for half its ``max_age_s`` the guard asks
HA itself when it last had it, and re-dates the sample. HA before 2024.4 has
no ``last_reported``: there only a change dates a reading, and the guard
stops asking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from gridwatch.guard.readings import Sample
from gridwatch.hass.ports import EntityState

# Asked about once the sample is this share of its max age old: early enough
# that a tick or two of slow answers still lands before it turns stale.
QUIET_SHARE: Final = 0.5
# A reading HA had no newer report of is asked about again after this share
# of its max age (not every tick: each ask is a template render in HA).
RECHECK_SHARE: Final = 0.1


def is_quiet(sample: Sample | None, max_age_s: float, now: float) -> bool:
    """Whether ``sample`` is worth re-reading from HA (old, or never seen)."""
    return sample is None or sample.at is None or now - sample.at > max_age_s * QUIET_SHARE


def redate(
    state: EntityState | None, sample: Sample | None, *, now_mono: float, now_wall: datetime
) -> Sample | None:
    """The reading as HA has it, if HA had it later than ``sample`` says.

    Dated by HA's ``last_reported`` (else its last change) on the monotonic
    clock; a time ahead of ``now_wall`` (clocks apart) counts as now. No
    state, an unavailable one or nothing newer is ``None``.
    """
    if state is None or state.raw is None or state.reported_at is None:
        return None
    age_s = (now_wall - state.reported_at).total_seconds()
    at = now_mono - max(age_s, 0.0)
    if sample is not None and sample.at is not None and at <= sample.at:
        return None
    return Sample(state.raw, at)
