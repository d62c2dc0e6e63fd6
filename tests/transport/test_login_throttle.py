"""The spacing of in-place logins (pure: times are passed in)."""

from __future__ import annotations

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.login_throttle import RELOGIN_BACKOFF, LoginThrottle

NO_JITTER = 0.5


def test_the_first_login_is_at_once_then_they_space_out_to_the_cap() -> None:
    throttle = LoginThrottle()
    now = 1000.0
    gaps = []
    for _ in range(8):
        assert throttle.allowed(now)
        throttle.logged_in(now, NO_JITTER)
        assert not throttle.allowed(now + 1)
        gap = throttle.wait_s(now)
        gaps.append(gap)
        now += gap
    assert gaps == [30, 60, 120, 240, 480, 900, 900, 900]
    assert max(gaps) == RELOGIN_BACKOFF.cap_s
    # At most a handful of logins an hour once it has climbed.
    assert 3600 / gaps[-1] <= 4


def test_a_token_that_works_starts_the_spacing_over() -> None:
    throttle = LoginThrottle(BackoffPolicy(initial_s=10, factor=2, cap_s=100, jitter=0))
    for t in (0.0, 10.0, 30.0):
        throttle.logged_in(t, NO_JITTER)
    assert throttle.wait_s(30.0) == 40
    throttle.token_worked()
    throttle.logged_in(70.0, NO_JITTER)
    assert throttle.wait_s(70.0) == 10
