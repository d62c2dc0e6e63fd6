import math

import pytest

from gridwatch.safety.validation import (
    ENERGY_RANGE,
    POWER_RANGE,
    SOC_RANGE,
    Invalid,
    Range,
    Valid,
    parse_number,
    validate,
)


@pytest.mark.parametrize(
    ("raw", "bounds", "value"),
    [
        ("55.5", SOC_RANGE, 55.5),
        (0, SOC_RANGE, 0.0),
        ("100", SOC_RANGE, 100.0),
        (" 12.25 ", ENERGY_RANGE, 12.25),
        (1000.0, ENERGY_RANGE, 1000.0),
        ("-50000", POWER_RANGE, -50000.0),
        ("3680", POWER_RANGE, 3680.0),
        ("1e3", POWER_RANGE, 1000.0),
    ],
)
def test_plausible_values_pass(raw, bounds, value):
    assert validate(raw, bounds) == Valid(value)


@pytest.mark.parametrize(
    ("raw", "bounds", "fragment", "missing"),
    [
        ("unavailable", SOC_RANGE, "state is 'unavailable'", True),
        ("unknown", POWER_RANGE, "state is 'unknown'", True),
        ("Unavailable", POWER_RANGE, "state is 'Unavailable'", True),
        ("", ENERGY_RANGE, "state is ''", True),
        (None, ENERGY_RANGE, "no state", True),
        ("nan", POWER_RANGE, "not a finite number", False),
        (math.inf, POWER_RANGE, "not a finite number", False),
        ("-inf", POWER_RANGE, "not a finite number", False),
        ("12 W", POWER_RANGE, "'12 W' is not a number", False),
        (True, SOC_RANGE, "a boolean, not a number", False),
        ([1], SOC_RANGE, "is not a number", False),
        ("100.1", SOC_RANGE, "out of range: 100.1 % not in [0, 100] %", False),
        (-0.5, SOC_RANGE, "out of range", False),
        ("1000.5", ENERGY_RANGE, "out of range", False),
        ("50001", POWER_RANGE, "out of range: 50001 W", False),
    ],
)
def test_implausible_values_are_rejected_with_reason(raw, bounds, fragment, missing):
    result = validate(raw, bounds)
    assert isinstance(result, Invalid)
    assert fragment in result.reason
    assert result.missing is missing


def test_custom_range_is_honoured():
    small = Range(-5000.0, 5000.0, "W")
    assert validate("4999", small) == Valid(4999.0)
    assert isinstance(validate("5001", small), Invalid)


def test_range_rejects_inverted_or_infinite_bounds():
    with pytest.raises(ValueError, match="low <= high"):
        Range(10, 0, "W")
    with pytest.raises(ValueError, match="finite"):
        Range(0, math.inf, "W")


def test_parse_number_accepts_ints_and_floats():
    assert parse_number(3) == 3.0
    assert parse_number(-2.5) == -2.5


@pytest.mark.parametrize(
    ("raw", "status"),
    [("55", "ok"), (["55"], "invalid"), ({"soc": 55}, "invalid"), ("140", "invalid")],
)
def test_reading_checks_are_the_same_cached_or_not(raw, status):
    # Repeated raw states hit a cache; unhashable device payloads bypass it.
    from gridwatch.guard.readings import (
        ReadingName,
        ReadingSpec,
        ReadingStatus,
        Sample,
        check_reading,
    )
    from gridwatch.safety.validation import SOC_RANGE

    for _ in range(2):  # the second time from the cache, where there is one
        check = check_reading(ReadingName.SOC, Sample(raw, 10.0), ReadingSpec(SOC_RANGE), 12.0)
        assert check.status is ReadingStatus(status)
        assert (check.value == 55.0) is (status == "ok")
