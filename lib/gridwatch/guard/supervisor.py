"""The export guard's safety supervisor: a small layer beside the controller
that has the last word (the simplex pattern of safety-critical control).

It reads only measurements (the grid reading, the battery power where
configured, the actuator entities), the limits, and what the guard has
published (whether it says the battery discharges, at which power, whether
a change is in flight). Never the controller's estimate or its decision
code: a corner the controller gets wrong is not a corner this gets wrong
the same way. Pure: ``judge(watch, inputs, now) -> verdict``.

Its rules, in words (the README states them too):

1. Over the limit. A grid reading over the export limit that arrives more
   than ``settle_s`` after the later of the first over-limit reading of the
   stretch and the guard's last lowering, while the battery may discharge,
   lowers the discharge by the excess plus the deadband (or stops it when
   less than ``min_discharge_w`` would be left), whatever the controller
   believes.
2. A failed stop. When the guard says the discharge is off, the first grid
   reading ``settle_s`` later must have fallen by a share of the power
   stopped, unless a battery reading newer than that shows it stopped; a
   battery reading that shows discharge is a failed stop on its own. A
   failed stop is CRITICAL at once, the stop is re-sent every
   ``retry_after_s``, and it stands -- no resolve and raise again, no
   healthy in between -- until the plant shows the stop: a newer battery
   reading at rest, or the grid reading down by that share from where it
   stood when the alarm was raised.
3. The plant answers. Starts and raises add up (however small each is):
   the first grid reading ``settle_s`` after the last of them must have
   risen by ``response_fraction`` of the sum, once the sum reaches
   ``response_min_w``. The grid always counts: a battery reading newer than
   the change may explain a grid reading that a PV or load step kept still,
   never one that moved against the change. A miss stops the discharge;
   two in a row (or one the battery confirms) are a fault, and no start or
   raise is let through for a while.
4. Write rate. At most one lowering per new grid reading; no start or
   raise while a failed stop stands or a fault holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from gridwatch.guard.frozen import evolve

# An idle battery's power sensor reads within a few tens of watts (the
# BMS's own draw, sensor noise): more than this is a discharge.
EVIDENCE_W: Final = 50.0
# After a fault, no start or raise for this long: each try runs a battery
# the plant may not follow (a wrong sign exports over the limit each time).
FAULT_HOLD_S: Final = 60.0
# A lowering or stop is the safe direction: half the share of a raise
# showing is enough (a PV step in the window eats part of it).
LOWERING_SHARE: Final = 0.5


@dataclass(frozen=True)
class Limits:
    """The limits the supervisor enforces (from apps.yaml).

    Attributes:
        export_limit_w: the export limit (W).
        deadband_w: a lowering aims this far below it (W).
        min_discharge_w: less than this left is a stop (W).
        settle_s: a reading this long after a change shows it.
        retry_after_s: a failed stop is re-sent this often.
        response_fraction: share of a change the grid must show.
        response_min_w: the sum of changes checked at the least (W).
    """

    export_limit_w: float
    deadband_w: float
    min_discharge_w: float
    settle_s: float
    retry_after_s: float
    response_fraction: float
    response_min_w: float


@dataclass(frozen=True)
class Measured:
    """The measurements now.

    Attributes:
        export_w: the latest valid grid reading (W, export positive).
        grid_at: when it arrived (monotonic).
        battery_w: the latest valid battery power (W, discharge positive).
        battery_at: when it arrived.
        enable_on: the discharge enable entity (``None``: missing).
    """

    export_w: float | None = None
    grid_at: float | None = None
    battery_w: float | None = None
    battery_at: float | None = None
    enable_on: bool | None = None


@dataclass(frozen=True)
class Published:
    """What the guard has published about the discharge.

    Attributes:
        on: it says the battery discharges (or a start or change to a
            power is in flight).
        power_w: the power it says it runs at (W; 0 when off).
        changing: an action is in flight.
        unsure: it says it does not know (``discharge: unknown``: someone
            else switched it on, a call failed); ``power_w`` is what may run.
    """

    on: bool = False
    power_w: float = 0.0
    changing: bool = False
    unsure: bool = False


class Proposal(StrEnum):
    """What the controller's action would do."""

    LOWER = "lower"  # a lower power (a start below the power now counts too)
    RAISE = "raise"  # a start or a higher power
    STOP = "stop"
    OTHER = "other"  # a lease renewal


class OrderKind(StrEnum):
    STOP = "stop"
    LOWER = "lower"


@dataclass(frozen=True)
class Order:
    """An action the supervisor demands."""

    kind: OrderKind
    reason: str
    power_w: float = 0.0


@dataclass(frozen=True)
class Watch:
    """The supervisor's memory (its own, not the controller's)."""

    on: bool = False
    power_w: float = 0.0
    steady_export_w: float | None = None  # the latest reading with nothing in flight
    steady_battery_w: float | None = None
    # rule 1
    over_since: float | None = None
    lowered_at: float = -math.inf
    cut_for: float | None = None  # the grid reading the last lowering was made on
    # rule 2
    off_at: float | None = None
    stopped_w: float = 0.0
    export_at_off: float | None = None
    low_since_off: float | None = None  # the lowest reading since the stop
    alarm: str | None = None
    alarm_firm: bool = False  # a battery reading showed it (not the grid alone)
    alarm_export_w: float | None = None
    alarm_at: float = -math.inf
    retry_at: float = -math.inf
    # rule 3
    owed_w: float = 0.0
    owed_from_w: float | None = None
    owed_battery_w: float | None = None
    owed_due: float = math.inf
    strikes: int = 0
    fault: str | None = None
    wrong_way: bool = False
    hold_until: float = -math.inf


@dataclass(frozen=True)
class Supervision:
    """What the supervisor has found, for the guard to publish.

    Attributes:
        alarm: a failed stop (CRITICAL) standing until the plant shows it.
        fault: the plant did not follow starts and raises.
        wrong_way: that fault moved the grid against the change.
    """

    alarm: str | None = None
    fault: str | None = None
    wrong_way: bool = False


@dataclass(frozen=True)
class Verdict:
    """The supervisor's word.

    Attributes:
        watch: its memory.
        order: an action it demands (performed before any other).
        veto: the controller's proposed action must not run.
        missed: a rule found the plant not following (for the breaker).
    """

    watch: Watch
    order: Order | None = None
    veto: bool = False
    missed: str | None = None

    @property
    def supervision(self) -> Supervision:
        w = self.watch
        return Supervision(w.alarm, w.fault, w.wrong_way and w.fault is not None)


def judge(
    watch: Watch,
    measured: Measured,
    published: Published,
    proposal: Proposal | None,
    limits: Limits,
    now: float,
) -> Verdict:
    """Apply the rules.

    Args:
        watch: the supervisor's memory.
        measured: the measurements now.
        published: what the guard says (before its proposed action).
        proposal: what the controller's action would do, if it has one.
        limits: the limits.
        now: monotonic time.

    Returns:
        The verdict.
    """
    watch = _follow_published(watch, measured, published, limits, now)
    watch, missed, order = _check_response(watch, measured, published, limits, now)
    standing = watch.alarm
    watch, alarm_order = _check_stop(watch, measured, published, limits, now)
    if alarm_order is not None and missed is None:
        # Each stop the plant has not followed counts against the actuator
        # (the breaker keeps count).
        missed = watch.alarm if standing is None else f"still discharging: {watch.alarm}"
    order = order or alarm_order
    if order is None:
        watch, order = _check_over(watch, measured, published, limits, now)
    watch, veto = _limit_writes(watch, measured, proposal, order, now)
    return Verdict(watch, order, veto, missed)


def _limit_writes(
    watch: Watch, measured: Measured, proposal: Proposal | None, order: Order | None, now: float
) -> tuple[Watch, bool]:
    """Rule 4: whether the controller's action is vetoed."""
    if order is not None and order.kind is OrderKind.LOWER:
        watch = replace(watch, cut_for=measured.grid_at)
    if proposal is Proposal.RAISE:
        # A failed stop found on the grid alone (a PV step at the stop can
        # look like one) lets one start through after FAULT_HOLD_S: the
        # stop after it is checked again, and clears the alarm if it shows.
        probe = not watch.alarm_firm and now >= watch.alarm_at + FAULT_HOLD_S
        alarmed = watch.alarm is not None and not probe
        return watch, alarmed or now < watch.hold_until or order is not None
    if proposal is not Proposal.LOWER:
        return watch, False
    # One lowering per grid reading: a quantised actuator that shows a
    # step above the one asked must not be lowered again and again.
    if order is not None or (measured.grid_at is not None and watch.cut_for == measured.grid_at):
        return watch, True
    return replace(watch, cut_for=measured.grid_at), False


# --- rule bookkeeping ------------------------------------------------------------


def _follow_published(
    watch: Watch, measured: Measured, published: Published, limits: Limits, now: float
) -> Watch:
    """Note what changed in what the guard says, and when. A change counts
    from its outcome (nothing in flight); the readings before it was sent
    are its baseline."""
    if published.changing:
        return watch  # the outcome tells; the baseline stays the one before
    watch = _note_change(watch, published, limits, now)
    if measured.export_w is None:
        return watch
    # Every reading: the cheap copy (see gridwatch.guard.frozen).
    return evolve(watch, steady_export_w=measured.export_w, steady_battery_w=measured.battery_w)


def _note_change(watch: Watch, published: Published, limits: Limits, now: float) -> Watch:
    was_on, was_w = watch.on, watch.power_w
    if published.unsure:
        # Not a change the guard made (nothing to check it by), but what
        # may run now: the stop that follows must show.
        if published.power_w <= 0.0:
            return watch
        power = max(published.power_w, was_w if was_on else 0.0)
        return replace(watch, on=True, power_w=power, owed_w=0.0, off_at=None)
    power = published.power_w if published.on else 0.0
    if published.on and (not was_on or power > was_w):
        # A start or raise: owed until the grid shows it.
        rise = power - (was_w if was_on else 0.0)
        if watch.owed_w <= 0.0:
            watch = replace(
                watch, owed_from_w=watch.steady_export_w, owed_battery_w=watch.steady_battery_w
            )
        owed = watch.owed_w + max(rise, 0.0)
        return replace(watch, on=True, power_w=power, owed_w=owed, owed_due=now, off_at=None)
    if was_on and not published.on:
        # The guard says off: the stop must show — by as much as the grid
        # can have risen. A start or raise made less than a settle time ago
        # (a request withdrawn at once) may not have reached the grid yet,
        # and the grid cannot fall by what it never rose by; one older than
        # that counts in full. A battery reading counts in full either way.
        unsettled = watch.owed_w if now < watch.owed_due + limits.settle_s else 0.0
        return replace(
            watch,
            on=False,
            power_w=0.0,
            lowered_at=now,
            off_at=now,
            stopped_w=max(was_w - unsettled, 0.0),
            export_at_off=watch.steady_export_w,
            low_since_off=None,
            owed_w=0.0,
        )
    if published.on and power < was_w:
        owed = max(watch.owed_w - (was_w - power), 0.0)
        return replace(watch, power_w=power, lowered_at=now, owed_w=owed)
    return watch


def _newer(at: float | None, since: float) -> bool:
    return at is not None and at >= since


def _check_response(
    watch: Watch, measured: Measured, published: Published, limits: Limits, now: float
) -> tuple[Watch, str | None, Order | None]:
    """Rule 3: starts and raises must show on the grid."""
    due = watch.owed_due + limits.settle_s
    if (
        not watch.on
        or published.changing
        or watch.owed_w < max(limits.response_min_w, 1.0)
        or watch.owed_from_w is None
        or measured.export_w is None
        or not _newer(measured.grid_at, due)
    ):
        return watch, None, None
    owed = watch.owed_w
    needed = limits.response_fraction * owed
    moved = measured.export_w - watch.owed_from_w
    battery = None
    if _newer(measured.battery_at, due) and watch.owed_battery_w is not None:
        battery = (measured.battery_w or 0.0) - watch.owed_battery_w
    watch = replace(watch, owed_w=0.0, owed_from_w=None)
    if moved >= needed or (moved > -needed and battery is not None and battery >= needed):
        return replace(watch, strikes=0, fault=None, wrong_way=False), None, None
    wrong_way = moved <= -needed
    seen = f"raised by {owed:.0f} W, the grid export moved {moved:+.0f} W"
    if battery is not None:
        seen += f" (battery power {battery:+.0f} W)"
    text = (
        f"the grid reading moved against the discharge ({seen}): the grid sensor's sign "
        "is likely the other way round -- check grid_sign"
        if wrong_way
        else f"the plant did not follow the discharge ({seen}): a stuck or slow inverter, "
        "or the wrong entity configured"
    )
    strikes = watch.strikes + 1
    fault = strikes >= 2 or battery is not None
    hold = now + (FAULT_HOLD_S if fault else limits.retry_after_s)
    watch = replace(
        watch,
        strikes=strikes,
        fault=text if fault else watch.fault,
        wrong_way=wrong_way,
        hold_until=hold,
    )
    return watch, text if fault else None, Order(OrderKind.STOP, "supervisor: " + text)


def _check_stop(
    watch: Watch, measured: Measured, published: Published, limits: Limits, now: float
) -> tuple[Watch, Order | None]:
    """Rule 2: a stop must show; a failed one stands until it does."""
    if watch.alarm is not None and (watch.on or watch.off_at is None):
        return _alarm_standing(watch, measured, published, limits, now)
    off_at = watch.off_at
    if watch.on or off_at is None:
        return watch, None
    if measured.export_w is not None and _newer(measured.grid_at, off_at + 1e-9):
        # A stop shows as a step down at a time the guard knows; a PV or
        # load step at the same time may hide it in one reading, rarely in
        # every reading of the window: the lowest one counts.
        low = watch.low_since_off
        watch = replace(
            watch, low_since_off=measured.export_w if low is None else min(low, measured.export_w)
        )
    due = off_at + limits.settle_s
    discharging = _newer(measured.battery_at, due) and (measured.battery_w or 0.0) > EVIDENCE_W
    if discharging:
        shown = f"the battery reads {measured.battery_w:.0f} W"
    elif _newer(measured.battery_at, due):
        return replace(watch, off_at=None), None  # at rest: it stopped
    else:
        export, before = measured.export_w, watch.export_at_off
        if export is None or not _newer(measured.grid_at, due):
            return watch, None
        if measured.battery_w is not None and now < due + limits.settle_s:
            return watch, None  # a battery reading newer than the stop may still come
        if before is None or watch.stopped_w < limits.response_min_w:
            return replace(watch, off_at=None), None  # too small to tell on the grid
        fell = before - export
        lowest = before - min(export, watch.low_since_off or export)
        needed = limits.response_fraction * LOWERING_SHARE * watch.stopped_w
        if lowest >= needed or (watch.wrong_way and fell <= -needed):
            # It showed (or it rose by as much, after a raise that did too:
            # the sign is wrong, the stop worked). A failed stop found
            # before clears: the plant follows again.
            return replace(watch, off_at=None, alarm=None, alarm_export_w=None), None
        if -fell >= needed / 2 and watch.alarm is None:
            # It rose: a PV or load step came with the stop (stops often
            # come *because* export rose), and on the grid alone that hides
            # whether the battery stopped. Not proof of a failed stop; the
            # stop after the next start is checked again.
            return replace(watch, off_at=None), None
        shown = f"the grid export moved {-fell:+.0f} W"
    if watch.alarm is not None:
        # Still failing after a probe: the alarm stands as it was (one
        # text, no resolve and raise again).
        watch = replace(watch, off_at=None, alarm_at=now, retry_at=now + limits.retry_after_s)
        return watch, Order(OrderKind.STOP, "supervisor: stop not followed")
    text = (
        f"the battery still discharges after the guard stopped it ({watch.stopped_w:.0f} W "
        f"stopped, {shown} since)"
    )
    watch = replace(
        watch,
        off_at=None,
        alarm_firm=discharging,
        alarm=text,
        alarm_export_w=measured.export_w,
        alarm_at=now,
        retry_at=now + limits.retry_after_s,
    )
    return watch, Order(OrderKind.STOP, "supervisor: stop not followed")


def _alarm_standing(
    watch: Watch, measured: Measured, published: Published, limits: Limits, now: float
) -> tuple[Watch, Order | None]:
    """A failed stop: re-sent on the retry schedule, cleared only when the
    plant shows the stop."""
    if watch.on:
        return watch, None  # a probe start runs: the stop after it is checked
    since = watch.alarm_at + limits.settle_s
    needed = limits.response_fraction * LOWERING_SHARE * watch.stopped_w
    rested = _newer(measured.battery_at, since) and (measured.battery_w or 0.0) <= EVIDENCE_W
    grid_fell = (
        measured.export_w is not None
        and watch.alarm_export_w is not None
        and _newer(measured.grid_at, since)
        and watch.alarm_export_w - measured.export_w >= needed
    )
    if rested or grid_fell:
        return replace(watch, alarm=None, alarm_export_w=None), None
    if published.changing or now < watch.retry_at:
        return watch, None
    watch = replace(watch, retry_at=now + limits.retry_after_s)
    return watch, Order(OrderKind.STOP, "supervisor: retry failed stop")


def _check_over(
    watch: Watch, measured: Measured, published: Published, limits: Limits, now: float
) -> tuple[Watch, Order | None]:
    """Rule 1: over the limit past the settle time -> lower or stop."""
    export, at = measured.export_w, measured.grid_at
    if export is None or at is None:
        return watch, None
    if export <= limits.export_limit_w:
        return (watch if watch.over_since is None else replace(watch, over_since=None)), None
    over_since = watch.over_since if watch.over_since is not None else at
    watch = replace(watch, over_since=over_since)
    may_discharge = (
        published.on
        or measured.enable_on is True
        or ((measured.battery_w or 0.0) > EVIDENCE_W and measured.battery_at is not None)
    )
    if (
        not may_discharge
        or published.changing
        or watch.cut_for == at
        or at < max(over_since, watch.lowered_at) + limits.settle_s
    ):
        return watch, None
    watch = replace(watch, lowered_at=now)
    excess = export - limits.export_limit_w + limits.deadband_w
    left = math.floor(watch.power_w - excess) if published.on else 0.0
    reason = f"supervisor: {export:.0f} W export over the {limits.export_limit_w:.0f} W limit"
    if left < limits.min_discharge_w:
        return watch, Order(OrderKind.STOP, reason)
    return watch, Order(OrderKind.LOWER, reason, float(left))
