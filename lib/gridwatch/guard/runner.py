"""Runs one export guard action through the circuit breaker and the
verified actuators, and reports the outcome (or only pretends, in dry run).
"""

from __future__ import annotations

from gridwatch.guard.actuators import GuardActuators
from gridwatch.guard.decisions import Action, ActionKind, Outcome
from gridwatch.safety.breaker import BreakerOpenError, CircuitBreaker
from gridwatch.safety.verified_call import failure_reason


class ActionRunner:
    """Performs actions through the breaker.

    Args:
        breaker: guards every call; a stop is forced through it (never blocked).
        actuators: performs the verified steps.
        dry_run: report success without touching anything.
    """

    def __init__(
        self, breaker: CircuitBreaker, actuators: GuardActuators, *, dry_run: bool
    ) -> None:
        self.breaker = breaker
        self._actuators = actuators
        self.dry_run = dry_run

    async def run(self, action: Action) -> tuple[Outcome, str | None, float | None]:
        """Perform ``action`` and say how it went.

        Returns:
            The outcome, unless OK the reason, and the power read back.

        Raises:
            asyncio.CancelledError: when cancelled (not a breaker failure; the
                caller treats the actuator state as unknown).
        """
        if self.dry_run:
            return Outcome.OK, None, None
        try:
            done = await self.breaker.call(
                lambda: self._actuators.perform(action),
                force=action.kind is ActionKind.STOP,
                failure_of=lambda performed: failure_reason(performed.result),
            )
        except BreakerOpenError:
            return Outcome.REFUSED, "circuit breaker open", None
        except Exception as err:  # any error is a failed action, never a stuck one
            return Outcome.FAILED, f"{type(err).__name__}: {err}", None
        if done.result.ok:
            return Outcome.OK, None, done.power_w
        return Outcome.FAILED, done.result.reason, None

    def record_failure(self, reason: str) -> None:
        """Count an actuator failure found outside a call (the plant did not
        follow, or an actuator changed by itself) in the breaker."""
        ticket = self.breaker.acquire(force=True)
        if ticket is not None:
            self.breaker.failed(ticket, reason)
