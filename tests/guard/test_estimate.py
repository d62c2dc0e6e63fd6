"""The uncontrolled-export estimate and the response check, on worked numbers."""

import pytest

from gridwatch.guard.estimate import Estimate, Expectation, fold_reading, response_problem, widen


def settled(export, believed=0.0, at=0.0):
    return fold_reading(Estimate(), export, at, settled=True, believed_w=believed)


def test_a_settled_reading_credits_the_believed_power():
    est = settled(3900.0, believed=3000.0)
    assert est.uncontrolled_w == 900.0
    assert est.settled


def test_a_measured_battery_power_wins_on_a_settled_reading():
    est = fold_reading(Estimate(), 3900.0, 0.0, settled=True, believed_w=3000.0, measured_w=2000.0)
    assert est.uncontrolled_w == 1900.0


@pytest.mark.parametrize(
    ("reading", "expected", "why"),
    [
        # House 900 W; lowering 3000 -> 2000 W in flight.
        (3900.0, 1900.0, "still the old power: credited with the new, lower one"),
        (2900.0, 900.0, "landed: the house alone"),
        (3400.0, 1400.0, "mid-ramp: credited with the new power"),
        (5000.0, 3000.0, "PV jumped too: the lowest power, the worst case"),
    ],
)
def test_an_uncertain_reading_during_a_lowering(reading, expected, why):
    est = widen(settled(3900.0, believed=3000.0), 2000.0)
    est = fold_reading(est, reading, 1.0, settled=False, believed_w=3000.0, latest_w=2000.0)
    assert est.uncontrolled_w == expected, why


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (900.0, 900.0),  # the meter does not show the start yet
        (1900.0, 900.0),  # half way
        (2900.0, 900.0),  # landed
        (4000.0, 4000.0),  # more than any battery power explains: assume none
        (0.0, 0.0),  # a load step the other way: assume the worst too
    ],
)
def test_an_uncertain_reading_during_a_start(reading, expected):
    est = widen(settled(900.0), 2000.0)
    est = fold_reading(est, reading, 1.0, settled=False, believed_w=2000.0, latest_w=2000.0)
    assert est.uncontrolled_w == expected


def test_rises_and_falls_outside_the_change_are_flagged():
    est = widen(settled(900.0), 2000.0)
    assert fold_reading(est, 4000.0, 1, settled=False, believed_w=0.0, latest_w=2000.0).rose
    assert fold_reading(est, 0.0, 1, settled=False, believed_w=0.0, latest_w=2000.0).fell


@pytest.mark.parametrize(
    ("delta", "before", "after", "followed"),
    [
        (2000.0, 900.0, 2900.0, True),
        (2000.0, 900.0, 1950.0, True),  # half shows: enough
        (2000.0, 900.0, 900.0, False),  # stuck
        (2000.0, 900.0, -1100.0, False),  # wrong sign: moved the other way
        (-2000.0, 2900.0, 900.0, True),
        (-2000.0, 2900.0, 2400.0, True),  # a quarter of a lowering is enough
        (-2000.0, 2900.0, 2900.0, False),  # a stop the plant ignored
    ],
)
def test_response_check(delta, before, after, followed):
    expect = Expectation(delta, before, 0.0, "a change")
    problem = response_problem(expect, after, fraction=0.5).problem
    assert (problem is None) is followed
    if problem is not None:
        assert "grid_sign" in problem


def test_a_measured_battery_power_explains_a_grid_reading_a_step_kept_still():
    expect = Expectation(2000.0, 900.0, 0.0, "a change", battery_before_w=0.0)
    # A load step ate the grid's move, the battery's own reading shows it ran.
    assert response_problem(expect, 900.0, fraction=0.5, measured_delta_w=1990.0).problem is None


@pytest.mark.parametrize("measured", [None, 1990.0])
def test_a_grid_reading_that_moved_against_the_change_names_the_grid_sign(measured):
    # A start of 2 kW: the battery ran (its own sensor says so), but the
    # grid reading fell by 2 kW -- the battery reading must not hide that.
    expect = Expectation(2000.0, 900.0, 0.0, "start 2000 W", battery_before_w=0.0)
    verdict = response_problem(expect, -1100.0, fraction=0.5, measured_delta_w=measured)
    assert verdict.wrong_way
    assert verdict.problem is not None
    assert "grid_sign" in verdict.problem
