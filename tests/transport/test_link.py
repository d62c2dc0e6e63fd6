"""The shared connection lifecycle (lib/gridwatch/transport/link.py), driven through a
minimal scripted transport and the fake clock: no network, no real waiting
for backoff delays."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from gridwatch.transport.backoff_policy import BackoffPolicy, TimeoutPolicy
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    LinkClosedError,
    TransportError,
    UnsupportedHostError,
)
from gridwatch.transport.health import HealthPolicy, HealthTracker, LinkState
from gridwatch.transport.link import Link, Message, Subscription
from gridwatch.transport.watchdog import DataWatchdog
from tests.support.clock import FakeClock

Step = str | BaseException


class ScriptedLink(Link):
    """A Link whose open() follows a script.

    Each ``_open`` consumes the next step: ``"ok"``, ``"hang"`` (wait until
    cancelled) or an exception instance to raise. An empty script hangs, so a
    background reconnect loop parks itself instead of spinning.
    """

    def __init__(self, script: Iterable[Step] = (), **options: Any) -> None:
        super().__init__("scripted", **options)
        self.script: deque[Step] = deque(script)
        self.opens = 0
        self.closes = 0
        self.sent_subscribes: list[str] = []
        self.sent_unsubscribes: list[str] = []
        self.lost_errors: list[TransportError] = []
        self.timeouts_seen: list[float] = []
        self.hanging = asyncio.Event()
        self.after_open: Callable[[], None] | None = None
        self.close_gate: asyncio.Event | None = None
        # Subscribe requests for these keys wait until the event is set.
        self.subscribe_gates: dict[str, asyncio.Event] = {}
        self.on_subscribe_sent: Callable[[str], None] | None = None

    async def _open(self) -> None:
        self.opens += 1
        self.timeouts_seen.append(self.health.timeout_s)
        step = self.script.popleft() if self.script else "hang"
        if isinstance(step, BaseException):
            raise step
        if step == "hang":
            self.hanging.set()
            try:
                await asyncio.Event().wait()
            finally:
                self.hanging.clear()
        assert step == "ok", step
        if self.after_open is not None:
            self.after_open()

    async def _close(self) -> None:
        self.closes += 1
        if self.close_gate is not None:
            await self.close_gate.wait()

    async def _send_subscribe(self, sub: Subscription) -> None:
        gate = self.subscribe_gates.get(sub.key)
        if gate is not None:
            await gate.wait()
        self.sent_subscribes.append(sub.key)
        if self.on_subscribe_sent is not None:
            self.on_subscribe_sent(sub.key)

    async def _send_unsubscribe(self, key: str) -> None:
        self.sent_unsubscribes.append(key)

    def _on_lost(self, error: TransportError) -> None:
        self.lost_errors.append(error)

    # Test controls

    def drop(self, reason: str = "peer went away") -> None:
        self._connection_lost(reason)

    def push(self, key: str, payload: Any) -> None:
        self._deliver(self._subs[key], payload)


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``predicate`` on the loop until true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.001)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_link(clock: FakeClock):
    """Build ScriptedLinks on the fake clock; every one is disconnected at teardown."""
    links: list[ScriptedLink] = []

    def make(script: Iterable[Step] = (), rand: float = 0.5, **options: Any) -> ScriptedLink:
        link = ScriptedLink(script, clock=clock, sleep=clock.sleep, rand=lambda: rand, **options)
        links.append(link)
        return link

    yield make
    for link in links:
        await link.disconnect()


def schedule(rand: float, n: int) -> list[float]:
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60][:n]
    return [b * (1 + 0.1 * (2 * rand - 1)) for b in bases]


# ---------------------------------------------------------------------------
# connect / disconnect


async def test_connect_replays_subscriptions_and_reports_connected(make_link) -> None:
    link = make_link(["ok"])
    await link.subscribe("a", lambda m: None)
    assert link.sent_subscribes == []  # not connected: only registered
    await link.connect(timeout=1)
    assert link.connected
    assert link.sent_subscribes == ["a"]
    assert link.health.state is LinkState.CONNECTED


async def test_connect_timeout_raises_connect_timeout_and_closes(make_link) -> None:
    link = make_link(["hang"])
    with pytest.raises(ConnectTimeout):
        await link.connect(timeout=0.05)
    assert not link.connected
    assert link.closes >= 1  # what the failed open left behind is closed
    assert link.health.consecutive_failures == 1
    # Nothing retries a failed connect(): the link reports stopped, not "trying".
    assert link.health.state is LinkState.DISCONNECTED


async def test_connect_error_passes_through_as_transport_error(make_link) -> None:
    link = make_link([ConnectError("refused")])
    with pytest.raises(ConnectError, match="refused"):
        await link.connect(timeout=1)


async def test_foreign_exception_from_open_becomes_connect_error(make_link) -> None:
    link = make_link([OSError("boom")])
    with pytest.raises(ConnectError, match="OSError: boom") as info:
        await link.connect(timeout=1)
    assert isinstance(info.value.__cause__, OSError)


async def test_disconnect_during_hanging_connect_raises_promptly(make_link) -> None:
    link = make_link(["hang", "ok"])
    pending = asyncio.create_task(link.connect(timeout=30))
    await asyncio.wait_for(link.hanging.wait(), 1)
    await link.disconnect()
    # Bounded wait only guards against a hang; a working link answers at once.
    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(pending, 1)
    assert not link.hanging.is_set()  # the hanging open was cancelled
    assert link.health.consecutive_failures == 0  # closing is not a failure
    await link.connect(timeout=1)  # a later connect works normally
    assert link.connected


async def test_disconnect_during_start_stops_the_loop(make_link, clock) -> None:
    link = make_link([ConnectError("no"), "hang"])
    link.start()
    await asyncio.wait_for(link.hanging.wait(), 1)
    await link.disconnect()
    opens = link.opens
    await asyncio.sleep(0.01)
    assert link.opens == opens
    assert link.health.state is LinkState.DISCONNECTED


async def test_connect_twice_is_a_no_op_when_connected(make_link) -> None:
    link = make_link(["ok", "ok"])
    await link.connect(timeout=1)
    await link.connect(timeout=1)
    assert link.opens == 1


async def test_cancelling_connect_cancels_the_open(make_link) -> None:
    link = make_link(["hang"])
    pending = asyncio.create_task(link.connect(timeout=30))
    await asyncio.wait_for(link.hanging.wait(), 1)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not link.hanging.is_set()
    assert link.closes >= 1


# ---------------------------------------------------------------------------
# start(): retry schedule, fatal errors


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999999])
async def test_start_retries_on_the_backoff_schedule(make_link, clock, rand) -> None:
    failures = 9
    link = make_link([ConnectError("refused")] * failures, rand=rand)
    link.start()
    await asyncio.wait_for(link.hanging.wait(), 2)
    assert link.opens == failures + 1
    assert clock.sleeps == pytest.approx(schedule(rand, failures))
    # The jitter bounds: never more than 10 % off the base delay.
    for delay, base in zip(clock.sleeps, [1, 2, 4, 8, 16, 32, 60, 60, 60], strict=True):
        assert 0.9 * base - 1e-9 <= delay <= 1.1 * base + 1e-9
    assert link.health.state is LinkState.OFFLINE
    assert link.health.attempts == failures  # the hanging one is still running


async def test_start_connects_then_stays_up(make_link, clock) -> None:
    link = make_link([ConnectError("refused"), "ok"])
    link.start()
    await link.wait_connected(2)
    assert link.opens == 2
    assert clock.sleeps == [1.0]
    assert link.health.successes == 1


async def test_auth_error_stops_the_loop_and_is_fatal(make_link, clock, caplog) -> None:
    link = make_link([ConnectError("refused"), AuthError("bad password"), "ok"])
    with caplog.at_level(logging.ERROR):
        link.start()
        await until(lambda: link.fatal_error is not None)
    assert isinstance(link.fatal_error, AuthError)
    await asyncio.sleep(0.01)
    assert link.opens == 2  # no hammering after the refusal
    assert clock.sleeps == [1.0]
    assert link.health.state is LinkState.DISCONNECTED
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "credentials refused" in errors[0].getMessage()
    assert errors[0].exc_info is None  # one clear line, not a traceback


async def test_unsupported_host_stops_the_loop_with_one_error(make_link, caplog) -> None:
    link = make_link([UnsupportedHostError("no BlueZ here")])
    with caplog.at_level(logging.ERROR):
        link.start()
        await until(lambda: link.fatal_error is not None)
    await asyncio.sleep(0.01)
    assert isinstance(link.fatal_error, UnsupportedHostError)
    assert link.opens == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "link scripted: cannot run here, not retrying: no BlueZ here"
    ]


async def test_auth_error_from_connect_raises(make_link) -> None:
    link = make_link([AuthError("nope")])
    with pytest.raises(AuthError):
        await link.connect(timeout=1)


async def test_fatal_error_cleared_by_a_new_start(make_link) -> None:
    link = make_link([AuthError("nope"), "ok"])
    link.start()
    await until(lambda: link.fatal_error is not None)
    link.start()
    await link.wait_connected(1)
    assert link.fatal_error is None


async def test_wait_connected_times_out(make_link) -> None:
    link = make_link(["hang"])
    link.start()
    with pytest.raises(ConnectTimeout):
        await link.wait_connected(0.02)


# ---------------------------------------------------------------------------
# reconnect after loss: stable resets the schedule, flapping climbs it


async def test_stable_connection_resets_and_flapping_climbs(make_link, clock) -> None:
    link = make_link(["ok"] * 5)
    await link.connect(timeout=1)

    async def lose_and_reconnect(expected_opens: int) -> None:
        link.drop()
        assert not link.connected
        await until(lambda: link.opens == expected_opens and link.connected)

    clock.advance(31)  # stable (>= 30 s)
    await lose_and_reconnect(2)
    await lose_and_reconnect(3)  # flapping: up for 0 s
    await lose_and_reconnect(4)
    clock.advance(30)
    await lose_and_reconnect(5)
    assert clock.sleeps == [1.0, 2.0, 4.0, 1.0]
    assert link.health.reconnects == 4


async def test_loss_calls_on_lost_with_connection_lost(make_link) -> None:
    link = make_link(["ok", "hang"])
    await link.connect(timeout=1)
    link.drop("cable cut")
    assert len(link.lost_errors) == 1
    assert isinstance(link.lost_errors[0], ConnectionLost)
    assert "cable cut" in str(link.lost_errors[0])
    assert link.health.last_error == "cable cut"
    await asyncio.wait_for(link.hanging.wait(), 1)
    assert link.health.state is LinkState.OFFLINE


async def test_disconnect_calls_on_lost_with_link_closed(make_link) -> None:
    link = make_link(["ok"])
    await link.connect(timeout=1)
    await link.disconnect()
    assert len(link.lost_errors) == 1
    assert isinstance(link.lost_errors[0], LinkClosedError)
    # A repeated disconnect() fails nothing twice.
    await link.disconnect()
    assert len(link.lost_errors) == 1


async def test_loss_after_disconnect_is_ignored(make_link) -> None:
    link = make_link(["ok"])
    await link.connect(timeout=1)
    await link.disconnect()
    opens = link.opens
    link.drop()
    await asyncio.sleep(0.01)
    assert link.opens == opens
    assert len(link.lost_errors) == 1  # only the disconnect's


async def test_loss_during_connect_triggers_a_reconnect(make_link, clock) -> None:
    link = make_link(["ok", "ok"])
    # The peer drops while the attempt is still replaying subscriptions.
    link.after_open = lambda: link.drop("dropped during handshake")
    await link.connect(timeout=1)
    link.after_open = None
    await until(lambda: link.opens == 2 and link.connected)
    assert len(clock.sleeps) == 1


async def test_reconnect_failures_follow_backoff_then_recover(make_link, clock) -> None:
    link = make_link(["ok", ConnectError("x"), ConnectError("y"), "ok"])
    await link.connect(timeout=1)
    link.drop()
    await until(lambda: link.opens == 4 and link.connected)
    assert clock.sleeps == [1.0, 2.0, 4.0]


# ---------------------------------------------------------------------------
# subscription registry


async def test_subscriptions_replayed_after_every_reconnect(make_link) -> None:
    link = make_link(["ok", "ok", "ok", "ok"])
    await link.subscribe("a", lambda m: None)
    await link.subscribe("b", lambda m: None, qos=1)
    await link.connect(timeout=1)
    assert link.sent_subscribes == ["a", "b"]
    link.drop()
    await until(lambda: link.opens == 2 and link.connected)
    assert link.sent_subscribes == ["a", "b", "a", "b"]
    assert link.subscriptions["b"].options == {"qos": 1}

    await link.disconnect()  # keeps the registry
    assert set(link.subscriptions) == {"a", "b"}
    await link.connect(timeout=1)
    assert link.sent_subscribes[-2:] == ["a", "b"]

    await link.unsubscribe("a")  # the only way out
    assert link.sent_unsubscribes == ["a"]
    assert set(link.subscriptions) == {"b"}
    link.drop()
    await until(lambda: link.opens == 4 and link.connected)
    assert link.sent_subscribes[-1:] == ["b"]
    assert link.sent_subscribes.count("a") == 3


async def test_subscribe_while_connected_is_sent_at_once(make_link) -> None:
    link = make_link(["ok"])
    await link.connect(timeout=1)
    await link.subscribe("c", lambda m: None)
    assert link.sent_subscribes == ["c"]


async def test_unsubscribe_while_disconnected_sends_nothing(make_link) -> None:
    link = make_link()
    await link.subscribe("a", lambda m: None)
    await link.unsubscribe("a")
    await link.unsubscribe("never-there")
    assert link.sent_unsubscribes == []
    assert dict(link.subscriptions) == {}


async def test_raising_subscriber_does_not_stop_delivery(make_link, caplog) -> None:
    link = make_link(["ok"])
    seen: list[Message] = []

    def broken(message: Message) -> None:
        seen.append(message)
        raise ValueError("subscriber bug")

    await link.subscribe("bad", broken)
    await link.subscribe("good", seen.append)
    await link.connect(timeout=1)
    with caplog.at_level(logging.ERROR):
        link.push("bad", b"1")
        link.push("good", b"2")
        link.push("bad", b"3")
    assert [(m.key, m.payload) for m in seen] == [("bad", b"1"), ("good", b"2"), ("bad", b"3")]
    assert link.connected
    assert sum("subscriber of bad raised" in r.getMessage() for r in caplog.records) == 2


async def test_delivery_stamps_time_and_health(make_link, clock) -> None:
    link = make_link(["ok"])
    seen: list[Message] = []
    await link.subscribe("t", seen.append)
    await link.connect(timeout=1)
    clock.advance(5)
    link.push("t", {"w": 1})
    assert seen[0].received_at == clock.monotonic()
    assert link.health.last_message_at == clock.monotonic()


# ---------------------------------------------------------------------------
# health through the link


async def test_adaptive_timeout_grows_with_failures_and_resets(make_link) -> None:
    policy = HealthPolicy(timeouts=TimeoutPolicy(base_s=0.01, step_s=0.01, max_s=0.03))
    link = make_link(["hang", "hang", "hang", "hang", "ok"], health=policy)
    link.start()
    await link.wait_connected(2)
    assert link.timeouts_seen == pytest.approx([0.01, 0.02, 0.03, 0.03, 0.03])
    assert link.health.timeout_s == pytest.approx(0.01)
    assert link.health.consecutive_failures == 0


async def test_health_counts_attempts_and_success_rate(make_link) -> None:
    link = make_link([ConnectError("a"), ConnectError("b"), "ok"])
    link.start()
    await link.wait_connected(1)
    snap = link.health
    assert (snap.attempts, snap.successes, snap.consecutive_failures) == (3, 1, 0)
    assert snap.success_rate == pytest.approx(1 / 3)
    # Connected, but most recent attempts failed: degraded, not healthy.
    assert snap.state is LinkState.DEGRADED


async def test_health_states_through_the_lifecycle(make_link) -> None:
    link = make_link(["ok", "hang"])
    states = [link.health.state]
    await link.connect(timeout=1)
    states.append(link.health.state)
    link.drop()
    states.append(link.health.state)
    await link.disconnect()
    states.append(link.health.state)
    assert states == [
        LinkState.DISCONNECTED,
        LinkState.CONNECTED,
        LinkState.OFFLINE,
        LinkState.DISCONNECTED,
    ]


async def test_backoff_policy_is_used(make_link, clock) -> None:
    policy = BackoffPolicy(initial_s=0.5, factor=3, cap_s=5, jitter=0)
    link = make_link([ConnectError("x")] * 4, backoff=policy)
    link.start()
    await asyncio.wait_for(link.hanging.wait(), 1)
    assert clock.sleeps == [0.5, 1.5, 4.5, 5.0]


async def test_disconnect_propagates_callers_cancellation(make_link) -> None:
    link = make_link(["hang"])
    link.start()
    await asyncio.wait_for(link.hanging.wait(), 1)
    link.close_gate = asyncio.Event()  # closing now takes until the gate opens
    closes = link.closes
    task = asyncio.create_task(link.disconnect())
    await until(lambda: link.closes > closes)
    task.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)
    finally:
        link.close_gate.set()


# ---------------------------------------------------------------------------
# (un)subscribe while connect() runs: the connection must end up asked for
# exactly what the registry holds (issue 12: such subscriptions were lost)


async def test_subscribe_during_the_replay_is_sent_before_connected(make_link) -> None:
    link = make_link(["ok"])
    await link.subscribe("a", lambda m: None)
    link.subscribe_gates["a"] = asyncio.Event()
    connecting = asyncio.create_task(link.connect(timeout=1))
    await until(lambda: link.opens == 1)
    await link.subscribe("b", lambda m: None)  # the replay list is already taken
    assert link.sent_subscribes == []
    link.subscribe_gates["a"].set()
    await asyncio.wait_for(connecting, 1)
    assert link.connected
    assert link.sent_subscribes == ["a", "b"]


async def test_subscribe_between_replay_end_and_connected_is_sent(make_link) -> None:
    link = make_link(["ok"])
    await link.subscribe("a", lambda m: None)
    late: list[asyncio.Task[Subscription]] = []

    def subscribe_late(key: str) -> None:
        if key == "a" and not late:
            # Runs on the next loop pass: after the replay has returned, before
            # the attempt has woken up to mark the link connected.
            late.append(asyncio.ensure_future(link.subscribe("late", lambda m: None)))

    link.on_subscribe_sent = subscribe_late
    await link.connect(timeout=1)
    await asyncio.wait_for(late[0], 1)
    assert link.sent_subscribes.count("late") == 1
    assert link.sent_subscribes == ["a", "late"]


async def test_unsubscribe_during_the_replay_is_withdrawn(make_link) -> None:
    link = make_link(["ok"])
    await link.subscribe("a", lambda m: None)
    await link.subscribe("b", lambda m: None)
    link.subscribe_gates["b"] = asyncio.Event()
    connecting = asyncio.create_task(link.connect(timeout=1))
    await until(lambda: link.sent_subscribes == ["a"])
    await link.unsubscribe("a")
    link.subscribe_gates["b"].set()
    await asyncio.wait_for(connecting, 1)
    assert link.connected
    assert link.sent_unsubscribes == ["a"]
    assert set(link.subscriptions) == {"b"}


# ---------------------------------------------------------------------------
# overlapping connect() calls join the first one


async def test_second_connect_joins_the_first(make_link) -> None:
    link = make_link(["hang"])
    first = asyncio.create_task(link.connect(timeout=1))
    await asyncio.wait_for(link.hanging.wait(), 1)
    link.script.append("ok")  # a second attempt would connect at once
    second = asyncio.create_task(link.connect(timeout=1))
    await asyncio.sleep(0.01)
    assert link.opens == 1  # joined, not a second attempt
    assert not link.connected
    await link.disconnect()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(r) for r in results] == [LinkClosedError, LinkClosedError]


async def test_overlapping_connects_share_one_success(make_link) -> None:
    link = make_link(["ok"])  # a second open would hang (empty script)
    await asyncio.wait_for(asyncio.gather(link.connect(timeout=1), link.connect(timeout=1)), 1)
    assert link.opens == 1
    assert link.connected
    assert link.health.state is LinkState.CONNECTED
    assert link.health.attempts == 1


async def test_a_joiner_giving_up_does_not_cancel_the_attempt(make_link) -> None:
    link = make_link(["hang"])
    first = asyncio.create_task(link.connect(timeout=1))
    await asyncio.wait_for(link.hanging.wait(), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(link.connect(), 0.01)
    assert not first.done()
    assert link.hanging.is_set()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_joiner_of_a_cancelled_connect_gets_a_connect_error(make_link) -> None:
    link = make_link(["hang"])
    first = asyncio.create_task(link.connect(timeout=1))
    await asyncio.wait_for(link.hanging.wait(), 1)
    second = asyncio.create_task(link.connect(timeout=1))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(ConnectError, match="joined was cancelled"):
        await asyncio.wait_for(second, 1)


async def test_start_during_connect_waits_for_it(make_link) -> None:
    link = make_link(["ok"])
    link.subscribe_gates["a"] = asyncio.Event()
    await link.subscribe("a", lambda m: None)
    connecting = asyncio.create_task(link.connect(timeout=1))
    await until(lambda: link.opens == 1)
    link.start()  # must not open a second connection beside the first
    link.subscribe_gates["a"].set()
    await asyncio.wait_for(connecting, 1)
    await asyncio.sleep(0.01)
    assert link.opens == 1
    assert link.connected
    assert link.health.state is LinkState.CONNECTED


# ---------------------------------------------------------------------------
# backoff after a short connection that carried data


async def test_a_connection_that_carried_data_restarts_the_backoff(make_link, clock) -> None:
    link = make_link(["ok"] * 4)
    await link.subscribe("a", lambda m: None)
    await link.connect(timeout=1)

    async def lose_and_reconnect(expected_opens: int, *, with_data: bool) -> None:
        if with_data:
            link.push("a", b"x")
        link.drop()
        await until(lambda: link.opens == expected_opens and link.connected)

    await lose_and_reconnect(2, with_data=False)
    await lose_and_reconnect(3, with_data=False)  # flapping, nothing delivered: climbs
    await lose_and_reconnect(4, with_data=True)  # short, but data flowed: starts over
    assert clock.sleeps == [1.0, 2.0, 1.0]


# ---------------------------------------------------------------------------
# data watchdog


async def test_silent_link_is_degraded_then_reconnected(make_link, clock) -> None:
    watchdog = DataWatchdog(degraded_after_s=10, reconnect_after_s=30)
    link = make_link(["ok", "ok"], health=HealthPolicy(watchdog=watchdog))
    await link.subscribe("a", lambda m: None)
    await link.connect(timeout=1)
    assert link.health.state is LinkState.CONNECTED
    # The watchdog sleeps on the fake clock, which jumps: the silence runs
    # its course at once, twice, and the third open hangs (empty script).
    await until(lambda: link.opens == 3)
    assert [str(e) for e in link.lost_errors] == [
        "link scripted: connection lost: no data for 30 s (data watchdog)"
    ] * 2


def test_silence_degrades_the_health_state() -> None:
    tracker = HealthTracker(HealthPolicy(watchdog=DataWatchdog(degraded_after_s=10)))
    tracker.started()
    tracker.attempt_succeeded(0.1, now=100.0)
    assert tracker.state(109.0) is LinkState.CONNECTED  # nothing expected yet
    tracker.expects_data = True
    assert tracker.state(109.0) is LinkState.CONNECTED
    assert tracker.state(110.0) is LinkState.DEGRADED
    tracker.message(110.0)
    assert tracker.state(119.0) is LinkState.CONNECTED
    assert tracker.state(120.5) is LinkState.DEGRADED


async def test_watchdog_ignores_a_link_with_no_subscriptions(make_link, clock) -> None:
    watchdog = DataWatchdog(degraded_after_s=10, reconnect_after_s=30)
    link = make_link(["ok", "ok"], health=HealthPolicy(watchdog=watchdog))
    await link.connect(timeout=1)
    await until(lambda: sum(clock.sleeps) > 100)
    assert link.opens == 1
    assert link.health.state is LinkState.CONNECTED
