"""Reconnect delays and connect timeouts as pure functions.

Randomness and time are arguments, so tests drive them without a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with jitter: 1 s, 2 s, 4 s ... capped at 60 s, +-10 %.

    The cap keeps a long outage from stretching the retry gap beyond a minute,
    which is what a person waiting on a dashboard tolerates; jitter stops many
    links (or many homes) retrying a shared broker in lock-step.
    """

    initial_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 60.0
    jitter: float = 0.1
    # A connection that stayed up this long counts as healthy again, so the
    # next loss starts over at the initial delay.
    stable_after_s: float = 30.0

    def __post_init__(self) -> None:
        # Written as "not (valid)" so a NaN (which fails every comparison) is refused.
        if not (0 < self.initial_s <= self.cap_s and math.isfinite(self.cap_s)):
            raise ValueError("backoff needs 0 < initial_s <= cap_s < inf")
        if not (self.factor >= 1 and math.isfinite(self.factor)):
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")


def backoff_delay(attempt: int, rand: float, policy: BackoffPolicy = BackoffPolicy()) -> float:
    """Seconds to wait before retry number ``attempt`` (0 is the first retry).

    Args:
        attempt: how many retries already failed in this outage (>= 0).
        rand: a uniform random number in [0, 1); 0.5 means no jitter.
        policy: the schedule.

    Returns:
        The delay, within +-jitter of ``min(cap, initial * factor**attempt)``.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # A broken random source must not produce a NaN or negative delay.
    rand = min(max(rand, 0.0), 1.0) if rand == rand else 0.5
    base = _base_delay(attempt, policy)
    return base * (1.0 + policy.jitter * (2.0 * rand - 1.0))


def _base_delay(attempt: int, policy: BackoffPolicy) -> float:
    """``min(cap, initial * factor**attempt)`` without float overflow."""
    if policy.factor == 1.0:
        return policy.initial_s
    # Compare in log space first: a long outage (or a steep factor) would make
    # factor**attempt overflow; capping the exponent instead would stop a gentle
    # factor (1.01) from ever reaching the cap.
    if math.log(policy.initial_s) + attempt * math.log(policy.factor) >= math.log(policy.cap_s):
        return policy.cap_s
    return min(policy.cap_s, policy.initial_s * policy.factor**attempt)


def next_attempt(
    attempt: int, connected_for_s: float, policy: BackoffPolicy = BackoffPolicy()
) -> int:
    """The retry counter to use after a connection that lasted ``connected_for_s``
    was lost: a stable connection starts the schedule over, a flapping one keeps
    climbing it."""
    return 0 if connected_for_s >= policy.stable_after_s else attempt


@dataclass(frozen=True)
class TimeoutPolicy:
    """Connect timeout that grows with consecutive failures and shrinks back.

    A slow device that fails at 25 s gets more time on the next try (up to
    45 s) instead of failing the same way forever; one success resets it.
    """

    base_s: float = 25.0
    step_s: float = 5.0
    max_s: float = 45.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s or self.step_s < 0:
            raise ValueError("timeout policy needs 0 < base_s <= max_s and step_s >= 0")


def adaptive_timeout(consecutive_failures: int, policy: TimeoutPolicy = TimeoutPolicy()) -> float:
    """Connect timeout in seconds after ``consecutive_failures`` failed attempts."""
    return min(policy.max_s, policy.base_s + policy.step_s * max(consecutive_failures, 0))
