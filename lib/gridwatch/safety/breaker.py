"""Circuit breaker around actuator calls.

Closed: calls pass; after ``threshold`` consecutive failures it opens.
Open: calls are refused until ``reset_after_s`` has passed (monotonic clock),
then it is half-open. Half-open: exactly ONE probe is let through; its
success closes the breaker, its failure reopens it, its cancellation frees
the slot for another probe (a cancelled call is not a failure).

*Forced* calls (a stop) always run whatever the state: fail-safe means the
breaker may block a start, never a stop. A forced failure still counts, but a
forced success does not close an open breaker: only a probe does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")

# Five consecutive failures rule out a one-off glitch (a dropped packet, an HA
# restart) while still cutting off a broken actuator within a minute or so.
DEFAULT_THRESHOLD = 5
# Long enough for a device or integration to come back, short enough that a
# person who fixed it does not wait long for the guard to notice.
DEFAULT_RESET_AFTER_S = 60.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpenError(Exception):
    """A call was refused because the breaker is open (or its probe is busy)."""


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the guard publishes about the breaker.

    Attributes:
        state: closed / open / half_open.
        failure_count: consecutive failures (reset by a success when closed
            or by a successful probe).
        last_failure_at: monotonic time of the last failure, if any.
        last_failure_reason: why it failed.
        can_attempt: whether a non-forced call would be admitted now.
    """

    state: BreakerState
    failure_count: int
    last_failure_at: float | None
    last_failure_reason: str | None
    can_attempt: bool


@dataclass(frozen=True, eq=False)
class Ticket:
    """Admission of one call; hand it back with the call's outcome."""

    probe: bool
    forced: bool


class CircuitBreaker:
    """Counts actuator failures and refuses calls while open.

    Args:
        threshold: consecutive failures that open the breaker.
        reset_after_s: seconds open before one probe is allowed.
        clock: monotonic clock (tests pass a fake).
    """

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        reset_after_s: float = DEFAULT_RESET_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or reset_after_s < 0:
            raise ValueError("breaker needs threshold >= 1 and reset_after_s >= 0")
        self.threshold = threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_busy = False
        self._failures = 0
        self._last_failure_at: float | None = None
        self._last_failure_reason: str | None = None

    @property
    def state(self) -> BreakerState:
        """The current state; open turns half-open once the reset period passed."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_after_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._probe_busy = False
        return self._state

    def can_attempt(self) -> bool:
        """Whether a non-forced call would be admitted now (no side effect
        beyond the open -> half-open transition)."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probe_busy
        )

    def snapshot(self) -> BreakerSnapshot:
        """The figures to publish."""
        return BreakerSnapshot(
            state=self.state,
            failure_count=self._failures,
            last_failure_at=self._last_failure_at,
            last_failure_reason=self._last_failure_reason,
            can_attempt=self.can_attempt(),
        )

    def acquire(self, *, force: bool = False) -> Ticket | None:
        """Admit one call.

        Args:
            force: admit whatever the state (for a stop).

        Returns:
            A ticket to report the outcome with, or ``None`` if refused.
        """
        state = self.state
        if force:
            return Ticket(probe=False, forced=True)
        if state is BreakerState.CLOSED:
            return Ticket(probe=False, forced=False)
        if state is BreakerState.HALF_OPEN and not self._probe_busy:
            self._probe_busy = True
            return Ticket(probe=True, forced=False)
        return None

    def succeeded(self, ticket: Ticket) -> None:
        """Report that the admitted call succeeded."""
        # A forced success (a stop that worked) proves only that the actuator
        # can stop; counting it would let a start that keeps failing, each
        # followed by a good stop, retry forever without the breaker opening.
        if ticket.probe or (self._state is BreakerState.CLOSED and not ticket.forced):
            self._close()

    def failed(self, ticket: Ticket, reason: str) -> None:
        """Report that the admitted call failed, with why."""
        now = self._clock()
        self._failures += 1
        self._last_failure_at = now
        self._last_failure_reason = reason
        if ticket.probe:
            self._open(now)
        elif self._state is BreakerState.CLOSED:
            if self._failures >= self.threshold:
                self._open(now)
        elif self._state is BreakerState.OPEN:
            # Still broken: the reset period starts over from this failure.
            self._opened_at = now
        # Half-open with a forced failure: the probe in flight decides.

    def cancelled(self, ticket: Ticket) -> None:
        """Report that the admitted call was cancelled: not a failure, and a
        cancelled probe frees the slot for the next one."""
        if ticket.probe and self._state is BreakerState.HALF_OPEN:
            self._probe_busy = False

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        force: bool = False,
        failure_of: Callable[[T], str | None] = lambda _result: None,
    ) -> T:
        """Run ``fn`` through the breaker.

        Args:
            fn: the call.
            force: run even when open (a stop).
            failure_of: maps a returned value to a failure reason, or
                ``None`` when the value means success (for calls that report
                failure as a result, like :func:`verified_call`).

        Returns:
            What ``fn`` returned.

        Raises:
            BreakerOpenError: refused (open, or the half-open probe is busy).
            Exception: whatever ``fn`` raised (counted as a failure).
            asyncio.CancelledError: re-raised; not counted as a failure.
        """
        ticket = self.acquire(force=force)
        if ticket is None:
            raise BreakerOpenError(f"circuit breaker {self.state.value}: call refused")
        try:
            result = await fn()
        except asyncio.CancelledError:
            self.cancelled(ticket)
            raise
        except Exception as err:
            self.failed(ticket, f"{type(err).__name__}: {err}")
            raise
        reason = failure_of(result)
        if reason is None:
            self.succeeded(ticket)
        else:
            self.failed(ticket, reason)
        return result

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probe_busy = False

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_busy = False
