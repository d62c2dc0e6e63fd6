"""Per-link health bookkeeping (lib/gridwatch/transport/health.py): pure, no clock."""

from __future__ import annotations

import pytest

from gridwatch.transport.backoff_policy import TimeoutPolicy
from gridwatch.transport.health import HealthPolicy, HealthTracker, LinkState


def running(policy: HealthPolicy = HealthPolicy()) -> HealthTracker:
    tracker = HealthTracker(policy)
    tracker.started()
    return tracker


def test_states_follow_the_lifecycle() -> None:
    tracker = HealthTracker()
    assert tracker.state() is LinkState.DISCONNECTED
    tracker.started()
    assert tracker.state() is LinkState.OFFLINE
    tracker.attempt_succeeded(0.2)
    assert tracker.state() is LinkState.CONNECTED
    tracker.lost("gone")
    assert tracker.state() is LinkState.OFFLINE
    assert tracker.last_error == "gone"
    tracker.stopped()
    assert tracker.state() is LinkState.DISCONNECTED


def test_counts_attempts_successes_and_consecutive_failures() -> None:
    tracker = running()
    tracker.attempt_failed("a")
    tracker.attempt_failed("b")
    snap = tracker.snapshot()
    assert (snap.attempts, snap.successes, snap.consecutive_failures) == (2, 0, 2)
    assert snap.last_error == "b"
    tracker.attempt_succeeded(1.5)
    snap = tracker.snapshot()
    assert (snap.attempts, snap.successes, snap.consecutive_failures) == (3, 1, 0)
    assert snap.last_error is None
    assert snap.last_connect_s == 1.5
    assert snap.reconnects == 0  # the first success is a connect, not a reconnect
    tracker.lost("x")
    tracker.attempt_succeeded(0.5)
    assert tracker.snapshot().reconnects == 1


def test_success_rate_is_over_the_window_only() -> None:
    tracker = running(HealthPolicy(window=4))
    assert tracker.success_rate() == 1.0  # no attempts yet: nothing to hold against it
    for _ in range(4):
        tracker.attempt_failed("down")
    assert tracker.success_rate() == 0.0
    tracker.attempt_succeeded(0.1)
    assert tracker.success_rate() == 0.25
    for _ in range(3):
        tracker.attempt_succeeded(0.1)
    # The four early failures have left the window entirely.
    assert tracker.success_rate() == 1.0
    assert tracker.attempts == 8


@pytest.mark.parametrize(
    ("failures", "successes", "state"),
    [(0, 1, LinkState.CONNECTED), (1, 4, LinkState.CONNECTED), (2, 4, LinkState.DEGRADED)],
)
def test_connected_with_a_poor_success_rate_is_degraded(
    failures: int, successes: int, state: LinkState
) -> None:
    tracker = running()
    for _ in range(failures):
        tracker.attempt_failed("flaky")
    for _ in range(successes):
        tracker.attempt_succeeded(0.1)
    # 1/5 failed = 0.8 (not below the 0.8 threshold); 2/6 failed = 0.67.
    assert tracker.state() is state


def test_slowing_connects_report_degraded() -> None:
    tracker = running()
    for duration in (1.0, 1.0, 1.0):
        tracker.attempt_succeeded(duration)
    assert tracker.state() is LinkState.CONNECTED
    tracker.attempt_succeeded(2.5)  # more than twice the mean of the earlier ones
    assert tracker.state() is LinkState.DEGRADED
    assert tracker.snapshot().mean_connect_s == pytest.approx(5.5 / 4)


def test_adaptive_timeout_grows_25_to_45_and_resets_on_success() -> None:
    tracker = running()
    seen = [tracker.timeout_s]
    for _ in range(6):
        tracker.attempt_failed("timeout")
        seen.append(tracker.timeout_s)
    assert seen == [25, 30, 35, 40, 45, 45, 45]
    tracker.attempt_succeeded(3.0)
    assert tracker.timeout_s == 25
    assert tracker.snapshot().timeout_s == 25


def test_timeout_policy_is_honoured() -> None:
    tracker = running(HealthPolicy(timeouts=TimeoutPolicy(base_s=10, step_s=10, max_s=30)))
    tracker.attempt_failed("x")
    tracker.attempt_failed("x")
    tracker.attempt_failed("x")
    assert tracker.timeout_s == 30


def test_last_message_time_is_recorded() -> None:
    tracker = running()
    assert tracker.snapshot().last_message_at is None
    tracker.message(12.5)
    tracker.message(13.0)
    assert tracker.snapshot().last_message_at == 13.0


def test_snapshot_without_connects_has_no_durations() -> None:
    snap = running().snapshot()
    assert snap.last_connect_s is None
    assert snap.mean_connect_s is None
    assert snap.state is LinkState.OFFLINE


def test_a_connection_that_held_is_healthy_again_after_an_outage() -> None:
    # One broker restart with a failed retry: [ok, failed, ok] is a 67 % rate,
    # below the threshold, and a healthy link makes no new attempts to mend it.
    tracker = running()
    tracker.attempt_succeeded(0.01, now=0.0)
    tracker.lost("broker restart")
    tracker.attempt_failed("refused")
    tracker.attempt_succeeded(0.01, now=100.0)
    assert tracker.state(now=100.0) is LinkState.DEGRADED  # just back: still suspect
    assert tracker.state(now=129.9) is LinkState.DEGRADED
    assert tracker.state(now=130.0) is LinkState.CONNECTED
    assert tracker.snapshot(now=130.0).state is LinkState.CONNECTED


def test_millisecond_jitter_is_not_a_slowing_connect() -> None:
    tracker = running()
    for duration in (0.002, 0.002, 0.002, 0.010):  # 5x the mean, but 8 ms
        tracker.attempt_succeeded(duration)
    assert tracker.state() is LinkState.CONNECTED
