"""Per-link health figures: what the link monitor publishes and alerts on.

Pure bookkeeping: every method takes ``now`` (monotonic seconds) so tests use
a fake clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from gridwatch.transport.backoff_policy import TimeoutPolicy, adaptive_timeout
from gridwatch.transport.watchdog import DataWatchdog, Verdict


class LinkState(StrEnum):
    CONNECTED = "connected"
    DEGRADED = "degraded"  # connected, but attempts fail, slow down, or no data flows
    OFFLINE = "offline"  # trying to (re)connect
    DISCONNECTED = "disconnected"  # stopped on purpose, or gave up (auth)


@dataclass(frozen=True)
class HealthSnapshot:
    state: LinkState
    attempts: int
    successes: int
    consecutive_failures: int
    reconnects: int
    success_rate: float  # over the last ``window`` attempts; 1.0 with none yet
    last_connect_s: float | None  # duration of the last successful connect
    mean_connect_s: float | None  # over the window's successful connects
    last_message_at: float | None  # monotonic time of the last message received
    last_error: str | None
    timeout_s: float  # adaptive connect timeout now in use


@dataclass(frozen=True)
class HealthPolicy:
    window: int = 20
    # Below this success rate (or with connect times rising this much over
    # the window mean) a connected link reports DEGRADED before it fails.
    degraded_below: float = 0.8
    slow_connect_factor: float = 2.0
    # Loopback and LAN connects take milliseconds and vary by more than the
    # factor by chance: "slowing" also needs this much absolute growth.
    slow_connect_margin_s: float = 1.0
    # A connection that has held this long is healthy again, whatever the
    # attempts before it did (the same period resets the reconnect backoff);
    # without it a link that rode out one outage would read degraded until
    # enough new attempts pushed the failures out of the window, i.e. forever.
    stable_after_s: float = 30.0
    timeouts: TimeoutPolicy = TimeoutPolicy()
    # Off by default: only the user knows how often a device sends.
    watchdog: DataWatchdog = DataWatchdog()


class HealthTracker:
    """Counts attempts, successes and messages for one link."""

    def __init__(self, policy: HealthPolicy = HealthPolicy()) -> None:
        self.policy = policy
        self._outcomes: deque[bool] = deque(maxlen=policy.window)
        self._connect_times: deque[float] = deque(maxlen=policy.window)
        self.attempts = 0
        self.successes = 0
        self.consecutive_failures = 0
        self.reconnects = 0
        self.connected = False
        self.running = False
        self.last_message_at: float | None = None
        self.last_error: str | None = None
        self._ever_connected = False
        self._connected_since: float | None = None
        # The watchdog judges only links that have something to wait for.
        self.expects_data = False

    @property
    def timeout_s(self) -> float:
        return adaptive_timeout(self.consecutive_failures, self.policy.timeouts)

    def started(self) -> None:
        self.running = True

    def stopped(self) -> None:
        self.running = False
        self.connected = False

    def attempt_succeeded(self, duration_s: float, now: float | None = None) -> None:
        """Count a successful connect that took ``duration_s``, made at ``now``."""
        self._connected_since = now
        self.attempts += 1
        self.successes += 1
        self.consecutive_failures = 0
        self._outcomes.append(True)
        self._connect_times.append(duration_s)
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.connected = True
        self.last_error = None

    def attempt_failed(self, reason: str) -> None:
        self.attempts += 1
        self.consecutive_failures += 1
        self._outcomes.append(False)
        self.connected = False
        self.last_error = reason

    def problem(self, reason: str | None) -> None:
        """Note a problem on a working connection (a path the device refuses):
        shown as ``last_error`` without changing the state (None: it is over)."""
        self.last_error = reason

    def silent_for(self, now: float) -> float | None:
        """Seconds the current connection has gone without a message (counted
        from the connect if none came yet); None when not connected."""
        if not self.connected or self._connected_since is None:
            return None
        since = self._connected_since
        if self.last_message_at is not None and self.last_message_at > since:
            since = self.last_message_at
        return max(0.0, now - since)

    def watchdog_verdict(self, now: float) -> Verdict:
        """The data watchdog's view of the current connection."""
        silent = self.silent_for(now)
        if silent is None or not self.expects_data:
            return Verdict.OK
        return self.policy.watchdog.verdict(silent)

    def lost(self, reason: str) -> None:
        self.connected = False
        self.last_error = reason

    def message(self, now: float) -> None:
        self.last_message_at = now

    def success_rate(self) -> float:
        if not self._outcomes:
            return 1.0
        return sum(self._outcomes) / len(self._outcomes)

    def state(self, now: float | None = None) -> LinkState:
        """The link's state; with ``now``, a connection up for
        ``stable_after_s`` counts as healthy whatever came before it."""
        if not self.running:
            return LinkState.DISCONNECTED
        if not self.connected:
            return LinkState.OFFLINE
        if now is not None and self.watchdog_verdict(now) is not Verdict.OK:
            return LinkState.DEGRADED
        if (
            now is not None
            and self._connected_since is not None
            and now - self._connected_since >= self.policy.stable_after_s
        ):
            return LinkState.CONNECTED
        if self.success_rate() < self.policy.degraded_below or self._connects_slowing():
            return LinkState.DEGRADED
        return LinkState.CONNECTED

    def _connects_slowing(self) -> bool:
        if len(self._connect_times) < 3:
            return False
        earlier = list(self._connect_times)[:-1]
        mean = sum(earlier) / len(earlier)
        last = self._connect_times[-1]
        return (
            mean > 0
            and last > self.policy.slow_connect_factor * mean
            and last - mean > self.policy.slow_connect_margin_s
        )

    def snapshot(self, now: float | None = None) -> HealthSnapshot:
        times = list(self._connect_times)
        return HealthSnapshot(
            state=self.state(now),
            attempts=self.attempts,
            successes=self.successes,
            consecutive_failures=self.consecutive_failures,
            reconnects=self.reconnects,
            success_rate=self.success_rate(),
            last_connect_s=times[-1] if times else None,
            mean_connect_s=sum(times) / len(times) if times else None,
            last_message_at=self.last_message_at,
            last_error=self.last_error,
            timeout_s=self.timeout_s,
        )
