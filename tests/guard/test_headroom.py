import math

import pytest

from gridwatch.guard.headroom import discharge_target_w, energy_headroom_kwh, power_headroom_w


@pytest.mark.parametrize(
    ("export_w", "limit_w", "deadband_w", "expected"),
    [
        (0.0, 3680.0, 0.0, 3680.0),
        (1000.0, 3680.0, 100.0, 2580.0),
        (3580.0, 3680.0, 100.0, 0.0),
        (4000.0, 3680.0, 100.0, -420.0),  # over the limit
        (-2000.0, 3680.0, 100.0, 5580.0),  # importing: more room
    ],
)
def test_power_headroom(export_w, limit_w, deadband_w, expected):
    assert power_headroom_w(export_w, limit_w, deadband_w) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("exported", "cap", "margin", "expected"),
    [
        (0.0, 10.0, 0.5, 9.5),
        (9.5, 10.0, 0.5, 0.0),
        (12.0, 10.0, 0.5, -2.5),
    ],
)
def test_energy_headroom(exported, cap, margin, expected):
    assert energy_headroom_kwh(exported, cap, margin) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("current", "room", "max_w", "expected"),
    [
        (0.0, 2000.0, 5000.0, 2000.0),
        (2000.0, 500.0, 5000.0, 2500.0),
        (2000.0, -500.0, 5000.0, 1500.0),  # over: lower by the excess
        (2000.0, -3000.0, 5000.0, 0.0),  # never negative
        (2000.0, 9000.0, 3000.0, 3000.0),  # never above the maximum
    ],
)
def test_discharge_target(current, room, max_w, expected):
    assert discharge_target_w(current, room, max_w) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_are_refused(bad):
    with pytest.raises(ValueError, match="finite"):
        power_headroom_w(bad, 3680.0)
    with pytest.raises(ValueError, match="finite"):
        energy_headroom_kwh(1.0, bad)
    with pytest.raises(ValueError, match="finite"):
        discharge_target_w(0.0, bad, 100.0)
