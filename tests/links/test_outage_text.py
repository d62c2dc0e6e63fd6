import pytest

from gridwatch.links.outage import human_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(10, "10 s"), (89, "89 s"), (600, "10 min"), (5399, "90 min"), (9000, "2.5 h")],
)
def test_durations_read_as_a_person_would(seconds, text):
    assert human_duration(seconds) == text
