"""The cheap copy of the guard's frozen state: the same as dataclasses.replace."""

from dataclasses import replace

import pytest

from gridwatch.guard.decisions import GuardState
from gridwatch.guard.estimate import Estimate
from gridwatch.guard.frozen import evolve
from gridwatch.guard.supervisor import Watch


@pytest.mark.parametrize(
    ("obj", "changes"),
    [
        (GuardState(), {"estimate": Estimate(uncontrolled_w=5.0), "seq": 3}),
        (Watch(), {"steady_export_w": 120.0, "steady_battery_w": None}),
    ],
)
def test_evolve_is_replace(obj, changes):
    assert evolve(obj, **changes) == replace(obj, **changes)
    assert evolve(obj, **changes) is not obj
    # The original is untouched.
    assert obj == type(obj)()


def test_a_name_that_is_no_field_is_refused():
    with pytest.raises(TypeError, match="no field"):
        evolve(Watch(), steady_export=1.0)
