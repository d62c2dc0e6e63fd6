"""What the energy tally does after each cycle: keep, warn, alert, resolve.

A pure state machine. After a success the new tally becomes the last good
one and any active notice is resolved. After a failure the last good values
are kept (published as stale), the consecutive failure counter grows, each
failure is a warning, and the ``threshold``-th in a row is an error plus a
notice raised once until the next success.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from gridwatch.energy.tally import Reset, Tally

__all__ = [
    "NOTICE_CONDITION",
    "NOTICE_TITLE",
    "CycleOutcome",
    "CycleState",
    "Health",
    "after_failure",
    "after_success",
    "notice_message",
    "notice_steps",
]


class Health(StrEnum):
    """State of ``sensor.<app>_health``."""

    STARTING = "starting"  # no cycle finished yet
    OK = "ok"  # the last cycle succeeded
    STALE = "stale"  # the last cycle(s) failed; values kept from an earlier one
    ERROR = "error"  # failed ``threshold`` times in a row; a notice is up


@dataclass(frozen=True)
class CycleState:
    """What survives between cycles.

    Attributes:
        last_good: the last successful tally, published (stale) on failure.
        last_success_at: when it was computed.
        failures: consecutive failed cycles.
        last_error: the most recent failure's reason.
        notice_active: a notice was raised and not yet resolved.
        reported_resets: resets already logged (each is logged once).
        health: the current health.
    """

    last_good: Tally | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    notice_active: bool = False
    reported_resets: frozenset[tuple[str, datetime]] = field(default_factory=frozenset)
    health: Health = Health.STARTING


@dataclass(frozen=True)
class CycleOutcome:
    """The new state and what the app must do.

    Attributes:
        state: the state for the next cycle.
        logs: ``(level, message)`` pairs to log (``logging`` levels).
        raise_notice: raise the "statistics unavailable" notice now.
        resolve_notice: resolve it now.
        new_resets: resets not reported before.
    """

    state: CycleState
    logs: tuple[tuple[int, str], ...] = ()
    raise_notice: bool = False
    resolve_notice: bool = False
    new_resets: tuple[Reset, ...] = ()


def _reset_message(reset: Reset, name: str) -> str:
    return (
        f"meter {name} ({reset.statistic_id}) dropped by {-reset.change_kwh:.3f} kWh in the "
        f"period starting {reset.start.isoformat()}: treated as a meter reset or "
        "replacement, not subtracted"
    )


def after_success(state: CycleState, tally: Tally, now: datetime) -> CycleOutcome:
    """Fold a successful cycle into the state.

    Args:
        state: the state before the cycle.
        tally: the cycle's result.
        now: when it finished.

    Returns:
        The outcome: resolve a raised notice, log new resets.
    """
    names = {m.meter.statistic_id: m.meter.name for m in tally.meters}
    current = {(r.statistic_id, r.start): r for r in tally.resets}
    new = tuple(r for key, r in current.items() if key not in state.reported_resets)
    logs: list[tuple[int, str]] = [
        (logging.WARNING, _reset_message(r, names.get(r.statistic_id, r.statistic_id))) for r in new
    ]
    if state.failures:
        logs.append((logging.INFO, f"statistics query recovered after {state.failures} failure(s)"))
    new_state = CycleState(
        last_good=tally,
        last_success_at=now,
        failures=0,
        last_error=None,
        notice_active=False,
        # Only resets still inside the queried month can reappear; keeping just
        # those bounds the set.
        reported_resets=frozenset(current),
        health=Health.OK,
    )
    return CycleOutcome(new_state, tuple(logs), resolve_notice=state.notice_active, new_resets=new)


def after_failure(state: CycleState, error: str, threshold: int) -> CycleOutcome:
    """Fold a failed cycle into the state.

    Args:
        state: the state before the cycle.
        error: why the cycle failed, in words.
        threshold: consecutive failures that make an error and a notice.

    Returns:
        The outcome: a warning, or at the threshold an error and a notice.
    """
    failures = state.failures + 1
    at_error = failures >= threshold
    raise_now = at_error and not state.notice_active
    kept = "keeping the last good values (stale)" if state.last_good else "no values yet"
    message = f"statistics query failed ({failures} in a row): {error}; {kept}"
    level = logging.ERROR if at_error else logging.WARNING
    new_state = replace(
        state,
        failures=failures,
        last_error=error,
        notice_active=state.notice_active or at_error,
        health=Health.ERROR if at_error else Health.STALE,
    )
    return CycleOutcome(new_state, ((level, message),), raise_notice=raise_now)


NOTICE_CONDITION = "statistics_unavailable"
NOTICE_TITLE = "Energy tally: recorder statistics unavailable"


def notice_steps(refresh_event: str) -> tuple[str, ...]:
    """What the person should do; names the refresh event actually configured."""
    return (
        "Is the recorder running? Settings > System > Logs: look for recorder errors.",
        "Check the database is not full or locked (disk space, another HA instance).",
        "Check each meter's statistic id in Developer tools > Statistics.",
        f"Fire the event {refresh_event} to retry at once.",
    )


def notice_message(state: CycleState) -> str:
    """The notice text for a state at or past the failure threshold.

    Args:
        state: the state after the failed cycle.

    Returns:
        What failed, since when values are stale.
    """
    since = state.last_success_at.isoformat() if state.last_success_at else "never (no values yet)"
    return (
        f"{state.failures} statistics queries in a row failed: {state.last_error}. "
        f"Energy values are kept from the last success ({since}) and marked stale."
    )
