"""The safety supervisor's rules, each on a timeline of measurements and
of what the guard published; and each shown to be needed: with the rule
switched off (monkeypatched to do nothing) its scenario fails, on the pure
rules here and on the plant (tests/guard/test_device_semantics.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from gridwatch.guard import supervisor
from gridwatch.guard.supervisor import (
    Limits,
    Measured,
    OrderKind,
    Proposal,
    Published,
    Verdict,
    Watch,
    judge,
)
from tests.guard import test_device_semantics as plant_tests

LIMITS = Limits(
    export_limit_w=3000.0,
    deadband_w=100.0,
    min_discharge_w=100.0,
    settle_s=4.0,
    retry_after_s=2.0,
    response_fraction=0.5,
    response_min_w=300.0,
)
OFF = Published(on=False)


def on(power_w: float) -> Published:
    return Published(on=True, power_w=power_w)


@dataclass
class Timeline:
    """Feeds the supervisor one judgement per step (a grid reading a second)."""

    watch: Watch = field(default_factory=Watch)
    verdicts: list[tuple[float, Verdict]] = field(default_factory=list)

    def at(
        self,
        now: float,
        export_w: float,
        published: Published,
        *,
        proposal: Proposal | None = None,
        battery_w: float | None = None,
        enable_on: bool | None = None,
        grid_at: float | None = None,
    ) -> Verdict:
        measured = Measured(
            export_w,
            now if grid_at is None else grid_at,
            battery_w,
            None if battery_w is None else now,
            enable_on,
        )
        verdict = judge(self.watch, measured, published, proposal, LIMITS, now)
        self.watch = verdict.watch
        self.verdicts.append((now, verdict))
        return verdict

    def orders(self, kind: OrderKind | None = None) -> list[tuple[float, float]]:
        return [
            (t, v.order.power_w)
            for t, v in self.verdicts
            if v.order is not None and (kind is None or v.order.kind is kind)
        ]


# --- rule 1: over the limit -------------------------------------------------------


def over_the_limit_is_lowered() -> bool:
    """The guard says 2000 W; the grid shows 3500 W export (limit 3000)
    and the controller does nothing about it."""
    line = Timeline()
    line.at(0.0, 2500.0, on(2000.0))
    for t in range(1, 12):
        line.at(float(t), 3500.0, on(2000.0))
    lowered = line.orders(OrderKind.LOWER)
    # Not inside the settle time (the controller's transient), then by the
    # excess plus the deadband: 2000 - (500 + 100).
    return bool(lowered) and lowered[0][0] >= 1.0 + LIMITS.settle_s and lowered[0][1] == 1400.0


def test_over_the_limit_past_the_settle_time_is_lowered():
    assert over_the_limit_is_lowered()


def test_over_the_limit_with_too_little_left_is_a_stop():
    line = Timeline()
    for t in range(12):
        line.at(float(t), 3500.0, on(500.0))
    assert line.orders(OrderKind.STOP)
    assert not line.orders(OrderKind.LOWER)


def test_over_the_limit_from_pv_alone_is_not_the_battery():
    line = Timeline()
    for t in range(12):
        line.at(float(t), 3500.0, OFF, enable_on=False, battery_w=0.0)
    assert line.orders() == []


# --- rule 2: a failed stop --------------------------------------------------------


def an_ignored_stop_stands_until_the_plant_stops() -> bool:
    """2000 W stopped at 10 s; the grid reading does not move until 60 s."""
    line = Timeline()
    for t in range(10):
        line.at(float(t), 2500.0, on(2000.0))
    for t in range(10, 60):
        line.at(float(t), 2500.0, OFF)
    alarms = [t for t, v in line.verdicts if v.supervision.alarm is not None]
    if not alarms or alarms[0] > 10.0 + LIMITS.settle_s + 1.0:
        return False  # not raised within the settle time (and a reading)
    if alarms != [float(t) for t in range(int(alarms[0]), 60)]:
        return False  # it did not stand (flapped)
    retries = [t for t, _ in line.orders(OrderKind.STOP) if t > alarms[0]]
    if len(retries) < (60 - alarms[0]) / LIMITS.retry_after_s - 2:
        return False  # not re-sent on the retry schedule
    for t in range(60, 70):  # the plant stops: the reading falls by 2 kW
        line.at(float(t), 500.0, OFF)
    return line.verdicts[-1][1].supervision.alarm is None


def test_a_stop_the_grid_does_not_show_is_critical_until_it_does():
    assert an_ignored_stop_stands_until_the_plant_stops()


def test_a_battery_reading_of_discharge_after_a_stop_is_a_failed_stop():
    line = Timeline()
    for t in range(5):
        line.at(float(t), 2500.0, on(2000.0), battery_w=2000.0)
    # The grid fell (a cloud), but the battery's own newer reading runs on.
    for t in range(5, 12):
        line.at(float(t), 500.0, OFF, battery_w=1900.0)
    assert line.watch.alarm is not None


def test_a_start_withdrawn_before_the_grid_could_show_it_needs_no_fall():
    # The request is withdrawn right after the start (a user's quick toggle,
    # the demo's story): the battery never discharged, the grid never rose,
    # so it cannot fall; no failed stop may stand for ever on that.
    line = Timeline()
    for t in range(5):
        line.at(float(t), 1000.0, OFF)
    line.at(5.0, 1000.0, on(1153.0))
    for t in range(6, 40):
        line.at(float(t), 1000.0, OFF)
    assert all(v.supervision.alarm is None for _, v in line.verdicts)
    assert line.orders(OrderKind.STOP) == []


def test_a_stop_after_a_start_the_grid_had_time_to_show_must_show():
    # The same quick stop, but a settle time after the start: the start was
    # given its time; a grid that never moved means the stop is unproven.
    line = Timeline()
    for t in range(5):
        line.at(float(t), 1000.0, OFF)
    for t in range(5, 5 + int(LIMITS.settle_s) + 2):
        line.at(float(t), 2150.0, on(1153.0))
    for t in range(5 + int(LIMITS.settle_s) + 2, 40):
        line.at(float(t), 2150.0, OFF)
    assert any(v.supervision.alarm is not None for _, v in line.verdicts)


def test_a_stop_that_shows_is_no_alarm():
    line = Timeline()
    for t in range(5):
        line.at(float(t), 2500.0, on(2000.0))
    for t in range(5, 20):
        line.at(float(t), 500.0 if t >= 7 else 2500.0, OFF)
    assert all(v.supervision.alarm is None for _, v in line.verdicts)
    assert line.orders() == []


# --- rule 3: the plant answers starts and raises ----------------------------------


def small_raises_that_never_show_are_stopped() -> bool:
    """Raises of 150 W each (below response_min_w) every 5 s; the grid
    reading never moves (a wrong entity, a stuck inverter)."""
    line = Timeline()
    line.at(-1.0, 1000.0, OFF)
    power = 0.0
    for t in range(40):
        if t % 5 == 0 and t < 25:
            power += 150.0
        line.at(float(t), 1000.0, on(power) if power else OFF)
    return bool(line.orders(OrderKind.STOP))


def test_raises_too_small_to_check_alone_are_checked_together():
    assert small_raises_that_never_show_are_stopped()


def test_a_raise_the_grid_shows_passes():
    line = Timeline()
    line.at(0.0, 1000.0, OFF)
    for t in range(1, 20):
        line.at(float(t), 1000.0 if t < 3 else 2950.0, on(2000.0))
    assert line.orders() == []


def test_a_battery_reading_never_hides_a_grid_that_moved_against_the_start():
    # The battery ran (its newer reading says so), the grid fell by as much:
    # the grid sensor's sign is wrong. One such miss is a fault at once.
    line = Timeline()
    line.at(0.0, 1000.0, OFF, battery_w=0.0)
    for t in range(1, 10):
        line.at(float(t), -1000.0 if t >= 3 else 1000.0, on(2000.0), battery_w=2000.0)
    assert line.orders(OrderKind.STOP)
    sup = line.verdicts[-1][1].supervision
    assert sup.wrong_way
    assert "grid_sign" in (sup.fault or "")


def test_a_battery_reading_explains_a_grid_a_load_step_kept_still():
    line = Timeline()
    line.at(0.0, 1000.0, OFF, battery_w=0.0)
    for t in range(1, 10):
        line.at(float(t), 1000.0, on(2000.0), battery_w=2000.0)
    assert line.orders() == []


# --- rule 4: the write rate -------------------------------------------------------


def one_lowering_per_grid_reading() -> bool:
    """The controller lowers again and again on the same reading (a
    quantised actuator showing a step above the one asked)."""
    line = Timeline()
    line.at(0.0, 2900.0, on(1700.0))
    allowed = [
        not line.at(1.0 + i * 0.01, 3050.0, on(1700.0), proposal=Proposal.LOWER, grid_at=1.0).veto
        for i in range(10)
    ]
    again = not line.at(2.0, 3050.0, on(1700.0), proposal=Proposal.LOWER).veto
    return allowed == [True] + [False] * 9 and again


def test_at_most_one_lowering_per_grid_reading():
    assert one_lowering_per_grid_reading()


def no_start_while_a_failed_stop_stands() -> bool:
    line = Timeline()
    for t in range(5):
        line.at(float(t), 2500.0, on(2000.0))
    for t in range(5, 12):
        line.at(float(t), 2500.0, OFF)
    return line.at(12.0, 2500.0, OFF, proposal=Proposal.RAISE).veto


def test_no_start_while_a_failed_stop_stands():
    assert no_start_while_a_failed_stop_stands()


def test_stops_are_never_vetoed():
    line = Timeline()
    for t in range(12):
        line.at(float(t), 2500.0, OFF if t >= 5 else on(2000.0))
    assert not line.at(12.0, 2500.0, OFF, proposal=Proposal.STOP, grid_at=11.0).veto


# --- each rule is needed ------------------------------------------------------------

_OFF: dict[str, Callable[..., object]] = {
    "_check_over": lambda watch, *_: (watch, None),
    "_check_stop": lambda watch, *_: (watch, None),
    "_check_response": lambda watch, *_: (watch, None, None),
    "_limit_writes": lambda watch, *_: (watch, False),
}


@pytest.mark.parametrize(
    ("rule", "scenario"),
    [
        ("_check_over", over_the_limit_is_lowered),
        ("_check_stop", an_ignored_stop_stands_until_the_plant_stops),
        ("_check_response", small_raises_that_never_show_are_stopped),
        ("_limit_writes", one_lowering_per_grid_reading),
        ("_limit_writes", no_start_while_a_failed_stop_stands),
    ],
)
def test_each_rule_is_what_its_scenario_needs(monkeypatch, rule, scenario):
    assert scenario(), "the scenario fails with every rule on"
    monkeypatch.setattr(supervisor, rule, _OFF[rule])
    assert not scenario(), f"the scenario passes with {rule} switched off"


@pytest.mark.parametrize(
    ("rule", "plant_test", "args"),
    [
        (
            "_check_stop",
            plant_tests.test_a_stop_the_plant_ignores_is_critical_until_the_plant_stops,
            ("requested",),
        ),
        (
            "_limit_writes",
            plant_tests.test_a_quantised_actuator_gets_at_most_one_lowering_per_grid_reading,
            (),
        ),
    ],
)
async def test_without_the_rule_the_plant_test_fails(monkeypatch, rule, plant_test, args):
    monkeypatch.setattr(supervisor, rule, _OFF[rule])
    with pytest.raises((AssertionError, TimeoutError)):
        await plant_test(*args)


def test_the_supervisor_reads_nothing_of_the_controller():
    # Independent by construction: no import of the controller's state,
    # estimate or decision code (only the generic cheap copy).
    import ast
    from pathlib import Path

    tree = ast.parse(Path(supervisor.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    guard_modules = {m for m in imported if m.startswith("gridwatch")}
    assert guard_modules == {"gridwatch.guard.frozen"}, guard_modules
