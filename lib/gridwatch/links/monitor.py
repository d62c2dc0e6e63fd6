"""One link's monitoring state: messages in, entity updates and notices out.

:class:`LinkMonitor` holds the per-link state the pure functions of
:mod:`gridwatch.links.values` and :mod:`gridwatch.links.availability` thread through, so
the app only forwards messages, calls :meth:`LinkMonitor.evaluate` on its tick
and performs what comes back. It does no I/O and reads no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gridwatch.hass.entity_update import EntityUpdate
from gridwatch.links.availability import (
    AvailabilityPolicy,
    Fatal,
    FatalKind,
    LinkTrack,
    LinkView,
    NoticeAction,
    RaiseOutageNotice,
    assess_link,
    assess_value,
)
from gridwatch.links.entities import (
    render_connected,
    render_status,
    render_value,
)
from gridwatch.links.outage import outage_text
from gridwatch.links.values import Reading, ValueSpec, ValueState, apply_payload
from gridwatch.transport.errors import AuthError, TransportError, UnsupportedHostError
from gridwatch.transport.health import HealthSnapshot, LinkState
from gridwatch.transport.link import Message

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkPlan:
    """What the monitor needs to know of one configured link.

    Args:
        name: the link's name (slug), the ``<link>`` of its entity ids.
        transport: mqtt / websocket / http / ble.
        target: where it points, safe to show (no credentials).
        values: the values it carries.
        policy: grace, staleness and alert timing.
    """

    name: str
    transport: str
    target: str
    values: tuple[ValueSpec, ...]
    policy: AvailabilityPolicy

    def sources(self) -> list[str]:
        """The distinct subscription keys, in first-use order."""
        return list(dict.fromkeys(v.key for v in self.values))


@dataclass(frozen=True)
class RaiseNotice:
    """Raise (warning) the notice for ``condition``."""

    condition: str
    title: str
    message: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class ResolveNotice:
    """Resolve the notice for ``condition``.

    ``earlier_run``: the link is up for the first time since the app started,
    so a notice an earlier run of the app raised (and this run never knew
    of) is withdrawn as well.
    """

    condition: str
    earlier_run: bool = False


NoticeOp = RaiseNotice | ResolveNotice


def fatal_of(error: TransportError | None) -> Fatal | None:
    """Classify the error that stopped a link's reconnect loop.

    Args:
        error: the link's ``fatal_error``.

    Returns:
        ``None`` for no error, else its kind and text.
    """
    if error is None:
        return None
    if isinstance(error, AuthError):
        return Fatal(FatalKind.AUTH, str(error))
    if isinstance(error, UnsupportedHostError):
        return Fatal(FatalKind.HOST, str(error))
    return Fatal(FatalKind.OTHER, str(error))


# The health shown for a link whose transport could not even be built.
NOT_BUILT_HEALTH = HealthSnapshot(
    state=LinkState.DISCONNECTED,
    attempts=0,
    successes=0,
    consecutive_failures=0,
    reconnects=0,
    success_rate=0.0,
    last_connect_s=None,
    mean_connect_s=None,
    last_message_at=None,
    last_error=None,
    timeout_s=0.0,
)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one evaluation of a link."""

    view: LinkView
    updates: tuple[EntityUpdate, ...]
    notices: tuple[NoticeOp, ...]


class LinkMonitor:
    """Tracks one link's values and availability.

    Args:
        plan: the link's plan.
        now: monotonic time the link was started (its outage clock begins).
        logger: where counted warnings about invalid values go.
    """

    def __init__(self, plan: LinkPlan, now: float, logger: logging.Logger | None = None) -> None:
        self.plan = plan
        self._logger = logger or _LOGGER
        self._track = LinkTrack.starting(now)
        self._values: dict[str, ValueState] = {v.name: ValueState() for v in plan.values}
        self._by_key: dict[str, list[ValueSpec]] = {}
        for spec in plan.values:
            self._by_key.setdefault(spec.key, []).append(spec)
        self._view: LinkView | None = None
        self._problems: dict[str, str] = {}
        self._seen_up = False

    @property
    def condition(self) -> str:
        """The notice condition of this link's outage."""
        return f"{self.plan.name}_outage"

    @property
    def view(self) -> LinkView | None:
        """The view from the last evaluation (``None`` before the first)."""
        return self._view

    def value_state(self, name: str) -> ValueState:
        """The state of value ``name``."""
        return self._values[name]

    def on_message(self, key: str, message: Message) -> list[str]:
        """Fold a received message into the values it carries. Never raises.

        Args:
            key: the subscription key it arrived on (an MQTT message's own
                ``key`` is the concrete topic, which a wildcard filter differs
                from).
            message: as delivered by the link.

        Returns:
            The names of values that got a good reading (to publish now).
        """
        fresh: list[str] = []
        # The source answers again: its problem is over (the link's own view
        # catches up at the next evaluation).
        self._problems.pop(key, None)
        for spec in self._by_key.get(key, ()):
            update = apply_payload(
                self._values[spec.name], spec, message.payload, message.received_at
            )
            self._values[spec.name] = update.state
            if isinstance(update.extraction, Reading):
                fresh.append(spec.name)
            if update.warn:
                invalid = update.state.last_invalid
                assert invalid is not None  # warn is only set for invalid readings
                self._logger.warning(
                    "link %s: skipped invalid %s (%s: %s); %d %s so far, keeping %r",
                    self.plan.name,
                    spec.name,
                    invalid.kind,
                    invalid.detail,
                    update.state.invalid_counts[invalid.kind],
                    invalid.kind,
                    update.state.last_good,
                )
        return fresh

    def evaluate(
        self,
        health: HealthSnapshot,
        now_mono: float,
        now_wall: datetime,
        fatal: Fatal | None = None,
        problems: Mapping[str, str] | None = None,
    ) -> Evaluation:
        """Assess the link and render all of its entities.

        Args:
            health: the link's health now.
            now_mono: monotonic now (the link's clock).
            now_wall: wall-clock now.
            fatal: the error that stopped the link's reconnect loop, if any.
            problems: the link's ``source_problems`` (sources the device
                refuses while the link works); their values say so.

        Returns:
            The view, every entity's full state and the notice actions.
        """
        assessment = assess_link(
            self.plan.name, self._track, health, now_mono, self.plan.policy, fatal
        )
        self._track = assessment.track
        self._view = assessment.view
        self._problems = dict(problems or {})
        updates = [
            render_connected(self.plan.name, assessment.view),
            render_status(
                self.plan.name, self.plan.transport, assessment.view, health, now_mono, now_wall
            ),
        ]
        updates.extend(self.render_value(s.name, now_mono, now_wall) for s in self.plan.values)
        ops: list[NoticeOp] = [self._notice_op(a, now_mono, now_wall) for a in assessment.actions]
        if assessment.view.connected and not self._seen_up:
            self._seen_up = True
            if not ops:
                ops.append(ResolveNotice(self.condition, earlier_run=True))
        return Evaluation(assessment.view, tuple(updates), tuple(ops))

    def _notice_op(self, action: NoticeAction, now_mono: float, now_wall: datetime) -> NoticeOp:
        if not isinstance(action, RaiseOutageNotice):
            return ResolveNotice(self.condition)
        plan = self.plan
        text = outage_text(
            action,
            plan.transport,
            plan.target,
            plan.sources(),
            plan.policy.grace_period_s,
            now_mono,
            now_wall,
        )
        return RaiseNotice(self.condition, text.title, text.message, text.steps)

    def render_value(self, name: str, now_mono: float, now_wall: datetime) -> EntityUpdate:
        """Render one value sensor against the last evaluated link view.

        Before the first evaluation the link counts as starting (no outage
        figures yet), so a value arriving first is shown fresh.
        """
        spec = next(s for s in self.plan.values if s.name == name)
        view = self._view or _STARTING_VIEW
        state = self._values[name]
        value_view = assess_value(state, view, now_mono, self.plan.policy)
        problem = self._problems.get(spec.key) if view.connected else None
        return render_value(
            self.plan.name, spec, state, value_view, view, now_mono, now_wall, problem
        )

    def shutdown_updates(
        self, health: HealthSnapshot, now_mono: float, now_wall: datetime
    ) -> list[EntityUpdate]:
        """Entity states for a stopped monitor.

        Nobody keeps the values current once the app stops, so they go
        unavailable rather than stay silently stale; the link shows
        disconnected.

        Args:
            health: the link's health after its disconnect.
            now_mono: monotonic now.
            now_wall: wall-clock now.
        """
        view = LinkView(
            status=LinkState.DISCONNECTED,
            connected=False,
            outage_since=now_mono,
            outage_s=0.0,
            within_grace=False,
            silent_s=None,
            reason="link monitor stopped",
            up_since=None,
            long_outage_ended=None,
        )
        self._view = view
        updates = [
            render_connected(self.plan.name, view),
            render_status(self.plan.name, self.plan.transport, view, health, now_mono, now_wall),
        ]
        updates.extend(self.render_value(s.name, now_mono, now_wall) for s in self.plan.values)
        return updates


# Before the first evaluation: no outage figures yet, values shown as they come.
_STARTING_VIEW = LinkView(
    status=LinkState.OFFLINE,
    connected=False,
    outage_since=None,
    outage_s=0.0,
    within_grace=True,
    silent_s=None,
    reason="starting",
    up_since=None,
    long_outage_ended=None,
)
