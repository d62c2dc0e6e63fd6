"""One verified actuator call: act, read back until the target shows the
expected state, retry with backoff, and say plainly whether it worked.

Generic over an async ``act()`` and an async ``read_back()`` so the same
logic drives an HA service call (read back the entity's state) and a
transport command (read back the device's register).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from gridwatch.transport.backoff_policy import BackoffPolicy, backoff_delay

T = TypeVar("T")

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyPolicy:
    """Timing of a verified call.

    Attributes:
        call_timeout_s: longest wait for ``act()``; a call that timed out may
            still have landed, so it is read back all the same.
        poll_interval_s: gap between read-backs.
        verify_within_s: how long the target may take to show the state.
        read_timeout_s: longest wait for one ``read_back()``.
        attempts: act + verify rounds before giving up.
        backoff: delay between rounds.
    """

    call_timeout_s: float = 5.0
    # 200 ms polls see a change within a fifth of a second without flooding HA.
    poll_interval_s: float = 0.2
    # Inverters apply a setpoint within a second or two; 3 s leaves margin.
    verify_within_s: float = 3.0
    read_timeout_s: float = 2.0
    attempts: int = 3
    # Short and capped: a discharge that should stop must not wait long.
    backoff: BackoffPolicy = BackoffPolicy(initial_s=0.5, cap_s=4.0)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a verified call needs at least one attempt")
        if min(self.call_timeout_s, self.poll_interval_s, self.read_timeout_s) <= 0:
            raise ValueError("verified call timeouts and poll interval must be > 0")
        if self.verify_within_s < 0:
            raise ValueError("verify_within_s must be >= 0")


@dataclass(frozen=True)
class CallResult:
    """The outcome of a verified call.

    Attributes:
        ok: the target showed the expected state.
        attempts: rounds used.
        reason: why it failed (``None`` on success).
        last_read: the last value read back (``None`` if no read succeeded).
    """

    ok: bool
    attempts: int
    reason: str | None
    last_read: object = None


def failure_reason(result: CallResult) -> str | None:
    """The failure reason of a result, for :meth:`CircuitBreaker.call`."""
    return None if result.ok else (result.reason or "not verified")


async def verified_call(
    act: Callable[[], Awaitable[object]],
    read_back: Callable[[], Awaitable[T]],
    expected: Callable[[T], bool],
    *,
    what: str = "actuator call",
    policy: VerifyPolicy = VerifyPolicy(),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> CallResult:
    """Act, then verify by reading back; retry with backoff.

    Args:
        act: performs the call (an HA service call, a device command).
        read_back: reads the target's current state.
        expected: whether a read-back value is the wanted state.
        what: names the call in logs and reasons.
        policy: timeouts, polling and retries.
        clock: monotonic clock for the verify window (tests pass a fake).
        sleep: sleep between polls and rounds (tests pass a fake).
        rand: jitter source for the backoff.

    Returns:
        Success, or failure with the reason of the last round.

    Raises:
        asyncio.CancelledError: when cancelled (never turned into a failure).
    """
    reason = "not attempted"
    last: object = None
    for attempt in range(policy.attempts):
        if attempt:
            delay = backoff_delay(attempt - 1, rand(), policy.backoff)
            _LOGGER.debug("%s: retry %d in %.2f s (%s)", what, attempt + 1, delay, reason)
            await sleep(delay)
        act_error = await _act(act, policy.call_timeout_s)
        ok, last, read_error = await _verify(read_back, expected, policy, clock, sleep)
        if ok:
            if act_error:
                # The command landed although its answer was lost: worth knowing.
                _LOGGER.debug("%s: verified despite %s", what, act_error)
            return CallResult(True, attempt + 1, None, last)
        shown = f"read back {last!r}" if read_error is None else f"read back failed: {read_error}"
        reason = f"{what}: {shown}, not the expected state within {policy.verify_within_s:g} s"
        if act_error:
            reason = f"{what}: {act_error}; {shown}"
    return CallResult(False, policy.attempts, f"{reason} (after {policy.attempts} attempts)", last)


async def _act(act: Callable[[], Awaitable[object]], timeout_s: float) -> str | None:
    """Run ``act`` with a timeout; return why it failed, or ``None``."""
    try:
        async with asyncio.timeout(timeout_s):
            await act()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except Exception as err:  # any error of the call is a reason, read back anyway
        return f"call failed: {type(err).__name__}: {err}"
    return None


async def _verify(
    read_back: Callable[[], Awaitable[T]],
    expected: Callable[[T], bool],
    policy: VerifyPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> tuple[bool, object, str | None]:
    """Poll ``read_back`` until ``expected`` or the window closes.

    Returns:
        (verified, last value read, last read error).
    """
    deadline = clock() + policy.verify_within_s
    last: object = None
    error: str | None = None
    while True:
        try:
            async with asyncio.timeout(policy.read_timeout_s):
                value = await read_back()
        except TimeoutError:
            error = f"no answer within {policy.read_timeout_s:g} s"
        except Exception as err:  # a failed read is "not yet", retried until the deadline
            error = f"{type(err).__name__}: {err}"
        else:
            last, error = value, None
            if expected(value):
                return True, last, None
        if clock() >= deadline:
            return False, last, error
        await sleep(policy.poll_interval_s)
