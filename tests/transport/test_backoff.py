"""Backoff and adaptive timeout: pure functions, checked exactly and by property."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.transport.backoff_policy import (
    BackoffPolicy,
    TimeoutPolicy,
    adaptive_timeout,
    backoff_delay,
    next_attempt,
)

DEFAULT = BackoffPolicy()


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60), (10_000, 60)],
)
def test_default_schedule_without_jitter(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.9), (1.0, 1.1), (0.25, 0.95)])
def test_jitter_scales_linearly(rand: float, factor: float) -> None:
    assert backoff_delay(3, rand) == pytest.approx(8 * factor)


@pytest.mark.parametrize("rand", [-5.0, 7.0, math.nan, math.inf])
def test_out_of_range_rand_stays_within_bounds(rand: float) -> None:
    delay = backoff_delay(2, rand)
    assert 4 * 0.9 <= delay <= 4 * 1.1


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError):
        backoff_delay(-1, 0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0},
        {"initial_s": 10, "cap_s": 5},
        {"initial_s": math.nan},
        {"cap_s": math.inf},
        {"factor": 0.5},
        {"factor": math.nan},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


@pytest.mark.parametrize(
    ("attempt", "up_for", "expected"), [(5, 30.0, 0), (5, 29.9, 5), (0, 0.0, 0), (3, 1e6, 0)]
)
def test_next_attempt_resets_only_after_a_stable_period(
    attempt: int, up_for: float, expected: int
) -> None:
    assert next_attempt(attempt, up_for) == expected


policies = st.builds(
    BackoffPolicy,
    initial_s=st.floats(0.001, 100),
    factor=st.floats(1.0, 1e6),
    cap_s=st.floats(100, 1e5),
    jitter=st.floats(0, 0.99),
)
attempts = st.integers(0, 100_000)
rands = st.floats(0, 1)


def exact_base(attempt: int, policy: BackoffPolicy) -> float:
    """min(cap, initial * factor**attempt), computed in log space as an oracle."""
    log_grown = math.log(policy.initial_s) + attempt * math.log(policy.factor)
    return policy.cap_s if log_grown >= math.log(policy.cap_s) else math.exp(log_grown)


@given(attempts, rands, policies)
def test_delay_is_within_jitter_of_the_capped_base(
    attempt: int, rand: float, policy: BackoffPolicy
) -> None:
    delay = backoff_delay(attempt, rand, policy)
    base = exact_base(attempt, policy)
    assert math.isfinite(delay)
    assert base * (1 - policy.jitter) * (1 - 1e-9) <= delay
    assert delay <= base * (1 + policy.jitter) * (1 + 1e-9)
    assert delay <= policy.cap_s * (1 + policy.jitter) * (1 + 1e-9)
    assert delay > 0


@given(attempts, policies)
def test_base_delay_never_decreases(attempt: int, policy: BackoffPolicy) -> None:
    assert backoff_delay(attempt, 0.5, policy) <= backoff_delay(attempt + 1, 0.5, policy)


@given(st.integers(0, 10_000), st.floats(0, 1), st.floats(0, 1))
def test_more_rand_never_means_less_delay(attempt: int, r1: float, r2: float) -> None:
    lo, hi = sorted((r1, r2))
    assert backoff_delay(attempt, lo) <= backoff_delay(attempt, hi)


@given(policies)
def test_a_long_outage_reaches_the_cap(policy: BackoffPolicy) -> None:
    if policy.factor > 1.0:
        # Attempts the schedule needs to climb to the cap; a factor a hair
        # above 1 needs more than any outage lasts, and only then stays below.
        needed = math.log(policy.cap_s / policy.initial_s) / math.log(policy.factor)
        delay = backoff_delay(10**9, 0.5, policy)
        if needed <= 10**9:
            assert delay == pytest.approx(policy.cap_s)
        else:
            assert policy.initial_s <= delay <= policy.cap_s
    else:
        assert backoff_delay(10**9, 0.5, policy) == pytest.approx(policy.initial_s)


@pytest.mark.parametrize(
    ("failures", "expected"), [(-1, 25), (0, 25), (1, 30), (2, 35), (3, 40), (4, 45), (99, 45)]
)
def test_adaptive_timeout_grows_to_the_cap(failures: int, expected: float) -> None:
    assert adaptive_timeout(failures) == expected


@given(st.integers(0, 10_000))
def test_adaptive_timeout_stays_between_base_and_max(failures: int) -> None:
    policy = TimeoutPolicy()
    assert policy.base_s <= adaptive_timeout(failures, policy) <= policy.max_s


@pytest.mark.parametrize("kwargs", [{"base_s": 0}, {"base_s": 50, "max_s": 45}, {"step_s": -1}])
def test_invalid_timeout_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimeoutPolicy(**kwargs)
