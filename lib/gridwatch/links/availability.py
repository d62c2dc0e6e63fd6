"""Grace instead of flapping: link health -> what HA should show, and alerts.

Pure decisions. Each evaluation takes the link's previous :class:`LinkTrack`,
its :class:`~gridwatch.transport.health.HealthSnapshot`, the monotonic ``now`` and
the policy, and returns the new track, a :class:`LinkView` for publishing and
the notice actions to perform. Nothing here reads a clock or talks to HA.

The rules:

- An *outage* is time without fresh data: the link is not connected, or it is
  connected but nothing arrived for ``stale_after`` (a dead gateway behind a
  live broker). Connecting at start counts as an outage from the start.
- During an outage value sensors keep their last good value with
  ``stale: true``; only when the outage has lasted ``grace_period`` do they
  become unavailable. A single failed poll or a short reconnect is therefore
  invisible to automations reading the values.
- An outage that has lasted ``outage_notice_after`` raises one warning notice;
  it is resolved as soon as fresh data flows again. Refused credentials stop
  the link for good, so they raise the notice at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from gridwatch.links.values import ValueState
from gridwatch.transport.health import HealthSnapshot, LinkState

_UP_STATES = frozenset({LinkState.CONNECTED, LinkState.DEGRADED})


@dataclass(frozen=True)
class AvailabilityPolicy:
    """Timing of grace, staleness and outage alerts, in seconds.

    Args:
        grace_period_s: how long an outage may last before values go
            unavailable. Ten minutes by default: long enough to ride out a
            router reboot or a broker restart, short enough that an
            automation does not act on half-hour-old power readings.
        stale_after_s: data older than this is stale even while the link is
            connected; ``None`` means only a lost connection makes data stale
            (for links that only send on change).
        outage_notice_after_s: how long an outage lasts before the person is
            told.

    Raises:
        ValueError: a non-positive duration.
    """

    grace_period_s: float = 600.0
    stale_after_s: float | None = None
    outage_notice_after_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("grace_period_s", "outage_notice_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.stale_after_s is not None and self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0 (or None)")


class FatalKind(StrEnum):
    """Why a link stopped trying for good."""

    AUTH = "auth"  # credentials refused
    HOST = "host"  # this host lacks what the transport needs (BLE without BlueZ)
    START = "start"  # the link could not even be built (bad settings, missing module)
    OTHER = "other"


@dataclass(frozen=True)
class Fatal:
    """The error that stopped a link's reconnect loop (or its start)."""

    kind: FatalKind
    detail: str


@dataclass(frozen=True)
class LinkTrack:
    """What the monitor remembers about one link between evaluations."""

    # Start of the current connection, None while down. Messages only arrive
    # over a connection, so it is the last time the link was seen down: the
    # (re)connect happened after it, and every message since came over it.
    up_since: float | None
    down_since: float | None  # first time the current loss of connection was seen
    notice_active: bool = False
    last_seen_down: float | None = None
    # When the last outage of at least the grace period ended: a value read
    # before it lived through that outage and stays unavailable until re-read.
    long_outage_ended: float | None = None

    @classmethod
    def starting(cls, now: float) -> LinkTrack:
        """A link that has just been started: down, its outage begins now."""
        return cls(up_since=None, down_since=now, last_seen_down=now)


@dataclass(frozen=True)
class LinkView:
    """What HA should show for a link right now."""

    status: LinkState  # connected / degraded / offline / disconnected
    connected: bool  # the transport connection is up
    outage_since: float | None  # start of the current outage (no fresh data)
    outage_s: float  # 0 when data is fresh
    within_grace: bool  # values may still be shown (stale) if there is an outage
    up_since: float | None  # start of the current connection (None while down)
    long_outage_ended: float | None  # see LinkTrack.long_outage_ended
    silent_s: float | None  # connected but no data for this long (beyond stale_after)
    reason: str | None  # why the link is not plainly connected


@dataclass(frozen=True)
class RaiseOutageNotice:
    """Tell the person the link has been out for ``outage_s``."""

    link: str
    outage_s: float
    health: HealthSnapshot
    silent: bool  # connected but no data, as opposed to no connection
    fatal: Fatal | None  # the error that stopped reconnecting (bad credentials)


@dataclass(frozen=True)
class ResolveOutageNotice:
    """The link is back: withdraw its outage notice."""

    link: str


NoticeAction = RaiseOutageNotice | ResolveOutageNotice


@dataclass(frozen=True)
class LinkAssessment:
    track: LinkTrack
    view: LinkView
    actions: tuple[NoticeAction, ...]


def assess_link(
    link: str,
    track: LinkTrack,
    health: HealthSnapshot,
    now: float,
    policy: AvailabilityPolicy,
    fatal: Fatal | None = None,
) -> LinkAssessment:
    """Evaluate one link.

    Args:
        link: the link's name (carried into the notice actions).
        track: the link's track from the previous evaluation.
        health: the link's health now.
        now: monotonic seconds, the same clock the link stamps messages with.
        policy: grace, staleness and alert timing.
        fatal: the error that stopped the link's reconnect loop, if any.

    Returns:
        The new track, the view to publish and notice actions (at most one).
    """
    up = health.state in _UP_STATES
    if up:
        if track.up_since is None:
            came_up = track.last_seen_down if track.last_seen_down is not None else now
            long_end = track.long_outage_ended
            if track.down_since is not None and now - track.down_since >= policy.grace_period_s:
                long_end = came_up
            track = replace(track, up_since=came_up, down_since=None, long_outage_ended=long_end)
    else:
        down_since = track.down_since if track.down_since is not None else now
        track = replace(track, up_since=None, down_since=down_since, last_seen_down=now)

    status = health.state
    reason: str | None = None
    silent_s: float | None = None
    outage_since = track.down_since
    if up:
        assert track.up_since is not None  # set just above
        last = health.last_message_at
        fresh_since = track.up_since if last is None else max(last, track.up_since)
        quiet = now - fresh_since
        if policy.stale_after_s is not None and quiet > policy.stale_after_s:
            # Connected but mute: as bad as offline for the values, so it is
            # an outage, starting when the data became overdue.
            silent_s = quiet
            outage_since = fresh_since + policy.stale_after_s
            status = LinkState.DEGRADED
            reason = f"connected but no data for {quiet:.0f} s"
        elif status is LinkState.DEGRADED:
            reason = (
                f"success rate {health.success_rate:.0%}, "
                f"last connect {_seconds(health.last_connect_s)}"
            )
    else:
        reason = fatal.detail if fatal else health.last_error or "not connected yet"

    outage_s = 0.0 if outage_since is None else max(0.0, now - outage_since)
    view = LinkView(
        status=status,
        connected=up,
        outage_since=outage_since,
        outage_s=outage_s,
        within_grace=outage_since is None or outage_s < policy.grace_period_s,
        up_since=track.up_since,
        long_outage_ended=track.long_outage_ended,
        silent_s=silent_s,
        reason=reason,
    )

    actions: tuple[NoticeAction, ...] = ()
    if outage_since is None:
        if track.notice_active:
            actions = (ResolveOutageNotice(link),)
            track = replace(track, notice_active=False)
    elif not track.notice_active and (
        fatal is not None or outage_s >= policy.outage_notice_after_s
    ):
        actions = (RaiseOutageNotice(link, outage_s, health, silent_s is not None, fatal),)
        track = replace(track, notice_active=True)
    return LinkAssessment(track, view, actions)


@dataclass(frozen=True)
class ValueView:
    """What HA should show for one value right now."""

    available: bool
    value: float | str | None  # None with ``available``: no reading yet (HA "unknown")
    stale: bool
    age_s: float | None  # since the last good reading


def assess_value(
    state: ValueState, link: LinkView, now: float, policy: AvailabilityPolicy
) -> ValueView:
    """Decide what one value sensor shows.

    Args:
        state: the value's last good reading and tallies.
        link: the link's view from :func:`assess_link` at the same ``now``.
        now: monotonic seconds.
        policy: grace and staleness timing.

    Returns:
        Available with the last good value (stale or not), or unavailable.
    """
    age = None if state.last_good_at is None else max(0.0, now - state.last_good_at)
    if not link.within_grace:
        return ValueView(False, None, True, age)
    if age is None:
        return ValueView(True, None, link.outage_since is not None, None)
    assert state.last_good_at is not None  # age is set only with a reading
    if link.long_outage_ended is not None and state.last_good_at < link.long_outage_ended:
        # Read before an outage longer than the grace period: it may have
        # changed unseen, so it stays unavailable until read again.
        return ValueView(False, None, True, age)
    if policy.stale_after_s is not None and age >= policy.stale_after_s + policy.grace_period_s:
        # No valid reading for longer than stale plus grace (the device keeps
        # sending it out of range, or stopped sending it).
        return ValueView(False, None, True, age)
    stale = (
        link.outage_since is not None
        or (policy.stale_after_s is not None and age > policy.stale_after_s)
        # Read before the last reconnect and not confirmed since.
        or (link.up_since is not None and state.last_good_at < link.up_since)
    )
    return ValueView(True, state.last_good, stale, age)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
