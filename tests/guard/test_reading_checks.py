"""One reading's verdict (range + age), whatever was checked before it."""

from __future__ import annotations

import pytest

from gridwatch.guard.readings import ReadingName, ReadingSpec, ReadingStatus, Sample, check_reading
from gridwatch.safety.validation import POWER_RANGE, SOC_RANGE


@pytest.mark.parametrize("number", [1, 1.0, 0, 0.0])
@pytest.mark.parametrize("spec", [ReadingSpec(POWER_RANGE), ReadingSpec(SOC_RANGE)])
def test_a_boolean_is_refused_even_right_after_the_equal_number_passed(number, spec):
    # True == 1 and hash(True) == hash(1): a cache keyed without the type
    # would hand the boolean the number's verdict.
    first = check_reading(ReadingName.SOC, Sample(number, 10.0), spec, 10.0)
    assert first.status is ReadingStatus.OK
    flag = bool(number)
    verdict = check_reading(ReadingName.SOC, Sample(flag, 10.0), spec, 10.0)
    assert verdict.status is ReadingStatus.INVALID
    assert "boolean" in (verdict.reason or "")
