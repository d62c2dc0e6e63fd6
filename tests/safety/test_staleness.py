import pytest

from gridwatch.safety.staleness import Freshness, freshness


@pytest.mark.parametrize(
    ("received_at", "now", "max_age", "expected"),
    [
        (None, 100.0, 30.0, Freshness(None, True)),  # never arrived
        (100.0, 100.0, 30.0, Freshness(0.0, False)),
        (100.0, 130.0, 30.0, Freshness(30.0, False)),  # at the limit: still fresh
        (100.0, 130.5, 30.0, Freshness(30.5, True)),
        (100.0, 105.0, 2.0, Freshness(5.0, True)),
        (100.0, 90.0, 30.0, Freshness(0.0, False)),  # clock behind the sample
    ],
)
def test_freshness(received_at, now, max_age, expected):
    assert freshness(received_at, now, max_age) == expected
