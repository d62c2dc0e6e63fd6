"""Grace / availability / degradation decisions, driven with a fake clock."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gridwatch.links.availability import (
    AvailabilityPolicy,
    Fatal,
    FatalKind,
    LinkTrack,
    RaiseOutageNotice,
    ResolveOutageNotice,
    assess_link,
    assess_value,
)
from gridwatch.links.values import ValueState
from gridwatch.transport.health import HealthSnapshot, LinkState
from tests.support.clock import FakeClock

GRACE = 600.0
POLICY = AvailabilityPolicy(grace_period_s=GRACE, outage_notice_after_s=300.0)


def health(state: LinkState, last_message_at: float | None = None, **kw) -> HealthSnapshot:
    base = HealthSnapshot(
        state=state,
        attempts=1,
        successes=1,
        consecutive_failures=0,
        reconnects=0,
        success_rate=1.0,
        last_connect_s=0.1,
        mean_connect_s=0.1,
        last_message_at=last_message_at,
        last_error=None,
        timeout_s=25.0,
    )
    return replace(base, **kw)


UP = LinkState.CONNECTED
DOWN = LinkState.OFFLINE


class Scenario:
    """Runs a link through a timeline: one evaluation per step, like the app tick."""

    def __init__(self, policy: AvailabilityPolicy = POLICY) -> None:
        self.clock = FakeClock()
        self.policy = policy
        self.track = LinkTrack.starting(self.clock())
        self.value = ValueState()
        self.notices: list[tuple[float, object]] = []
        self.last_message: float | None = None

    def message(self, value: float) -> None:
        self.last_message = self.clock()
        self.value = replace(self.value, last_good=value, last_good_at=self.clock())

    def step(self, state: LinkState, fatal: Fatal | None = None, **kw):
        result = assess_link(
            "meter",
            self.track,
            health(state, self.last_message, **kw),
            self.clock(),
            self.policy,
            fatal,
        )
        self.track = result.track
        self.notices.extend((self.clock(), a) for a in result.actions)
        value = assess_value(self.value, result.view, self.clock(), self.policy)
        return result.view, value

    def run(self, state: LinkState, seconds: float, tick: float = 5.0):
        """Evaluate every ``tick`` seconds for ``seconds``; return the views seen."""
        seen = []
        end = self.clock() + seconds
        while self.clock() < end:
            self.clock.advance(min(tick, end - self.clock()))
            seen.append(self.step(state))
        return seen


def connected_with_value(policy: AvailabilityPolicy = POLICY) -> Scenario:
    sc = Scenario(policy)
    sc.clock.advance(1)
    sc.message(230.0)
    sc.step(UP)
    return sc


def test_fresh_value_on_a_connected_link():
    sc = connected_with_value()
    view, value = sc.step(UP)
    assert view.status is LinkState.CONNECTED
    assert view.connected
    assert view.outage_s == 0
    assert value.available
    assert value.value == 230.0
    assert not value.stale


@pytest.mark.parametrize("outage_s", [5.0, 30.0, 60.0, 299.0, GRACE - 5.0])
def test_short_outage_keeps_value_available_and_stale(outage_s):
    sc = connected_with_value()
    seen = sc.run(DOWN, outage_s)
    # Throughout the outage: last good value, marked stale, link offline.
    for view, value in seen:
        assert value.available
        assert value.value == 230.0
        assert value.stale
        assert view.status is LinkState.OFFLINE
        assert not view.connected
    sc.clock.advance(1)
    sc.message(231.0)
    view, value = sc.step(UP)
    assert view.status is LinkState.CONNECTED
    assert value.available
    assert not value.stale
    assert value.value == 231.0


@pytest.mark.parametrize("tick", [1.0, 5.0, 7.0, 30.0])
def test_value_goes_unavailable_only_at_grace(tick):
    sc = connected_with_value()
    sc.clock.advance(1)
    down_at = sc.clock()
    sc.step(DOWN)
    unavailable_at = None
    while unavailable_at is None and sc.clock() < down_at + 2 * GRACE:
        sc.clock.advance(tick)
        _, value = sc.step(DOWN)
        if not value.available:
            unavailable_at = sc.clock()
    assert unavailable_at is not None
    # At the first tick at or after the grace period: not before, not later.
    assert unavailable_at == down_at + math.ceil(GRACE / tick) * tick


def test_one_failed_poll_never_marks_unavailable_nor_notifies():
    # A polling link: one failed poll shows offline until the next poll succeeds.
    sc = connected_with_value()
    for _ in range(20):
        sc.run(UP, 30.0, tick=30.0)
        sc.message(230.0)
        views = sc.run(DOWN, 30.0, tick=30.0)  # the failed poll
        assert all(value.available for _, value in views)
        sc.run(UP, 1.0, tick=1.0)
        sc.message(230.0)
    assert sc.notices == []


def test_value_read_before_a_long_outage_stays_unavailable_until_read_again():
    sc = connected_with_value()
    sc.run(DOWN, GRACE + 60)
    sc.clock.advance(5)
    view, value = sc.step(UP)  # back, but no message yet
    assert view.connected
    assert not value.available
    sc.clock.advance(1)
    sc.message(199.0)
    _, value = sc.step(UP)
    assert value.available
    assert value.value == 199.0
    assert not value.stale


def test_value_read_before_a_short_reconnect_is_stale_until_confirmed():
    sc = connected_with_value()
    sc.run(DOWN, 20.0)
    sc.clock.advance(5)
    _, value = sc.step(UP)
    assert value.available
    assert value.stale
    sc.clock.advance(1)
    sc.message(230.0)
    _, value = sc.step(UP)
    assert not value.stale


def test_message_between_reconnect_and_tick_counts_as_fresh():
    # The link reconnects and delivers a retained message before the app's
    # next tick sees it up: the value must not be taken as pre-outage.
    sc = connected_with_value()
    sc.run(DOWN, 20.0)
    sc.clock.advance(1)
    sc.message(240.0)  # arrived over the new connection
    sc.clock.advance(4)
    _, value = sc.step(UP)
    assert value.available
    assert not value.stale


def test_no_value_yet_is_unknown_then_unavailable_after_grace():
    sc = Scenario()
    _, value = sc.step(DOWN)
    assert value.available
    assert value.value is None
    views = sc.run(DOWN, GRACE)
    assert not views[-1][1].available
    assert views[-1][0].reason == "not connected yet"


@pytest.mark.parametrize(
    ("notice_after", "tick"), [(60.0, 5.0), (300.0, 5.0), (300.0, 60.0), (900.0, 10.0)]
)
def test_outage_notice_raised_once_after_configured_time_and_resolved(notice_after, tick):
    policy = replace(POLICY, outage_notice_after_s=notice_after)
    sc = connected_with_value(policy)
    sc.clock.advance(1)
    down_at = sc.clock()
    sc.run(DOWN, notice_after + 3 * tick, tick=tick)
    raised = [(t, a) for t, a in sc.notices if isinstance(a, RaiseOutageNotice)]
    assert len(raised) == 1
    at, action = raised[0]
    assert down_at + notice_after - tick <= at < down_at + notice_after + tick + 1e-9
    assert action.link == "meter"
    assert action.outage_s >= notice_after - tick
    assert not action.silent
    sc.clock.advance(tick)
    sc.message(230.0)
    sc.step(UP)
    sc.run(UP, 60.0)
    resolved = [a for _, a in sc.notices if isinstance(a, ResolveOutageNotice)]
    assert resolved == [ResolveOutageNotice("meter")]


def test_outage_shorter_than_notice_time_raises_nothing():
    sc = connected_with_value()
    sc.run(DOWN, POLICY.outage_notice_after_s - 10)
    sc.run(UP, 60)
    assert sc.notices == []


def test_refused_credentials_notify_at_once():
    sc = Scenario()
    sc.clock.advance(1)
    view, _ = sc.step(LinkState.DISCONNECTED, fatal=Fatal(FatalKind.AUTH, "bad password"))
    assert [type(a) for _, a in sc.notices] == [RaiseOutageNotice]
    action = sc.notices[0][1]
    assert isinstance(action, RaiseOutageNotice)
    assert action.fatal == Fatal(FatalKind.AUTH, "bad password")
    assert view.reason == "bad password"
    assert view.status is LinkState.DISCONNECTED


@pytest.mark.parametrize("stale_after", [30.0, 120.0])
def test_connected_but_silent_link_degrades_then_values_expire(stale_after):
    policy = replace(POLICY, stale_after_s=stale_after)
    sc = connected_with_value(policy)
    view, value = sc.run(UP, stale_after - 1, tick=1.0)[-1]
    assert view.status is LinkState.CONNECTED
    assert not value.stale
    view, value = sc.run(UP, 2.0, tick=1.0)[-1]
    assert view.status is LinkState.DEGRADED
    assert view.silent_s is not None
    assert "no data" in (view.reason or "")
    assert value.available
    assert value.stale
    seen = sc.run(UP, GRACE + 5.0, tick=1.0)
    assert not seen[-1][1].available
    raised = [a for _, a in sc.notices if isinstance(a, RaiseOutageNotice)]
    assert len(raised) == 1
    assert raised[0].silent
    # Data flows again: fresh, connected, notice resolved.
    sc.message(5.0)
    view, value = sc.step(UP)
    assert view.status is LinkState.CONNECTED
    assert value.available
    assert not value.stale
    assert isinstance(sc.notices[-1][1], ResolveOutageNotice)


def test_value_that_keeps_failing_validation_expires_while_link_is_fine():
    policy = replace(POLICY, stale_after_s=60.0)
    sc = connected_with_value(policy)
    # Other values keep the link fresh (messages arrive), this one never valid.
    for _ in range(int((60 + GRACE) / 10) + 1):
        sc.clock.advance(10)
        sc.last_message = sc.clock()
        view, value = sc.step(UP)
    assert view.status is LinkState.CONNECTED
    assert not value.available


def test_degraded_health_is_shown_with_a_reason():
    sc = connected_with_value()
    sc.clock.advance(5)
    view, value = sc.step(LinkState.DEGRADED, success_rate=0.6, last_connect_s=8.0)
    assert view.status is LinkState.DEGRADED
    assert view.connected
    assert "60%" in (view.reason or "")
    assert value.available
    assert not value.stale


def test_flapping_within_grace_never_makes_values_unavailable():
    sc = connected_with_value()
    for _ in range(30):
        seen = sc.run(DOWN, 60.0) + sc.run(UP, 5.0)
        sc.message(230.0)
        assert all(v.available for _, v in seen)


@pytest.mark.parametrize(
    "kwargs",
    [{"grace_period_s": 0}, {"outage_notice_after_s": -1}, {"stale_after_s": 0}],
)
def test_policy_rejects_non_positive_durations(kwargs):
    with pytest.raises(ValueError, match="must be > 0"):
        AvailabilityPolicy(**kwargs)
