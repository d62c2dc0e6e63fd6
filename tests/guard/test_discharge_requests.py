from datetime import UTC, datetime, timedelta

import pytest

from gridwatch.guard.discharge_requests import (
    RequestError,
    StartCommand,
    StopCommand,
    parse_event,
    parse_request_state,
    standing_request,
)
from gridwatch.guard.readings import Sample, sample_since
from gridwatch.hass.ports import EntityState


@pytest.mark.parametrize(
    ("data", "command"),
    [
        ({"action": "start"}, StartCommand()),
        ({"action": "START", "power_w": "1500"}, StartCommand(1500.0)),
        ({"action": "start", "power_w": 2000, "duration_min": 30}, StartCommand(2000.0, 30.0)),
        ({"action": "start", "power_w": None}, StartCommand()),
        ({"action": "stop", "power_w": "junk"}, StopCommand()),
    ],
)
def test_good_events(data, command):
    assert parse_event(data) == command


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "action must be 'start' or 'stop'"),
        ({"action": "discharge"}, "got 'discharge'"),
        ({"action": "start", "power_w": -5}, "power_w must be a positive number"),
        ({"action": "start", "power_w": "nan"}, "power_w"),
        ({"action": "start", "duration_min": 0}, "duration_min must be a positive number"),
    ],
)
def test_bad_events_say_why(data, fragment):
    with pytest.raises(RequestError, match=fragment):
        parse_event(data)


def test_every_problem_is_named():
    with pytest.raises(RequestError) as info:
        parse_event({"action": "go", "power_w": "x", "duration_min": -1})
    assert str(info.value).count(";") == 2


@pytest.mark.parametrize(
    ("raw", "command"),
    [("on", StartCommand()), ("off", StopCommand()), ("unavailable", None), (None, None)],
)
def test_request_entity_states(raw, command):
    assert parse_request_state(raw) == command


def test_startup_sample_is_dated_by_its_last_change():
    wall = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert sample_since("5", wall - timedelta(seconds=40), 1000.0, wall) == Sample("5", 960.0)
    # No change time: taken as new. From the future: taken as new.
    assert sample_since("5", None, 1000.0, wall) == Sample("5", 1000.0)
    assert sample_since("5", wall + timedelta(seconds=9), 1000.0, wall) == Sample("5", 1000.0)
    assert sample_since(None, wall, 1000.0, wall) == Sample()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        # 1e308 minutes made every start fail and opened the breaker.
        ({"action": "start", "duration_min": 1e308}, "duration_min must be at most 1440"),
        ({"action": "start", "duration_min": 1441}, "duration_min must be at most 1440"),
        ({"action": "start", "power_w": 5e6}, "power_w must be at most"),
    ],
)
def test_unbounded_requests_are_refused(data, fragment):
    with pytest.raises(RequestError, match=fragment):
        parse_event(data)


def test_the_duration_bound_is_the_configured_one():
    assert parse_event({"action": "start", "duration_min": 600}, max_duration_min=600)
    with pytest.raises(RequestError):
        parse_event({"action": "start", "duration_min": 601}, max_duration_min=600)


_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _fact(state, **attributes):
    return EntityState("sensor.export_guard_request", state, attributes, _NOW, _NOW)


@pytest.mark.parametrize(
    ("fact", "resumed"),
    [
        (None, None),
        (_fact("off", power_w=None, until=None), None),
        (_fact("unavailable"), None),
        (_fact("on", power_w=1500, until=None), (1500.0, None)),
        (_fact("on", power_w=None, until="2026-06-01T12:10:00+00:00"), (None, 10.0)),
        # Its end passed while the guard was down: nothing to resume.
        (_fact("on", power_w=None, until="2026-06-01T11:59:00+00:00"), None),
        # An end it cannot read (or without a zone) could run past it.
        (_fact("on", power_w=None, until="soon"), None),
        (_fact("on", power_w=None, until="2026-06-01T12:10:00"), None),
    ],
)
def test_a_restart_resumes_only_a_request_that_still_stands(fact, resumed):
    assert standing_request(fact, _NOW) == resumed
