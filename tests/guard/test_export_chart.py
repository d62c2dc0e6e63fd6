"""The export chart: what HA's history rows become on the picture."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.guard.export_chart import (
    MAX_POINTS,
    ActionKind,
    chart_data,
    render_svg,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ROLES = {"grid": "g", "battery": "b", "last_action": "a", "error": "e"}


def row(state: str, seconds_ago: float) -> dict[str, str]:
    return {"state": state, "last_changed": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def data(history, **kw):
    args = {
        "entities": ROLES,
        "export_positive": False,
        "limit_w": 5000.0,
        "deadband_w": 100.0,
        "now": NOW,
        "window": HOUR,
    }
    return chart_data(history, **(args | kw))


@pytest.mark.parametrize(
    ("texts", "kinds"),
    [
        (["start 2000 W (requested): verified"], [ActionKind.START]),
        (
            ["start 2000 W: verified", "set_power 1200 W (over): verified"],
            [ActionKind.START, ActionKind.LOWER],
        ),
        (
            ["start 900 W: verified", "set_power 1500 W (headroom): verified"],
            [ActionKind.START, ActionKind.RAISE],
        ),
        (["stop (requested): verified"], [ActionKind.STOP]),
        # Not verified, refused or a lease renewal: nothing happened to the power.
        (["start 2000 W: failed: timeout", "start 2000 W: refused (breaker open)"], []),
        (["renew lease to 5 min: verified"], []),
    ],
)
def test_actions_are_read_from_last_action(texts, kinds):
    rows = [row(t, 600 - i * 60) for i, t in enumerate(texts)]
    assert [m.kind for m in data({"a": rows}).marks] == kinds


def test_a_lowering_is_judged_against_the_power_standing_before_the_window():
    rows = [row("start 3000 W: verified", 7200), row("set_power 2000 W (x): verified", 60)]
    marks = data({"a": rows}).marks
    assert [m.kind for m in marks] == [ActionKind.LOWER]  # the start is before the window


def test_faults_and_their_clearing_are_marked_from_the_error_entity():
    rows = [row("none", 4000), row("stale_data", 900), row("none", 300)]
    marks = data({"e": rows}).marks
    assert [(m.kind, m.text) for m in marks] == [
        (ActionKind.FAULT, "stale_data"),
        (ActionKind.CLEARED, "none"),
    ]


def test_export_is_positive_whatever_the_meter_sign():
    grid = [row("-3000", 1800)]
    assert {v for _, v in data({"g": grid}).export_w[-5:]} == {3000.0}
    grid = [row("3000", 1800)]
    exported = data({"g": grid}, export_positive=True).export_w
    assert {v for _, v in exported[-5:]} == {3000.0}


def test_a_one_second_spike_over_the_limit_survives_the_bucketing():
    # A meter reporting every second: 3600 rows, one of them a spike.
    grid = [row("-4800" if s != 1234 else "-6500", s) for s in range(3600, 0, -1)]
    series = data({"g": grid}).export_w
    assert len(series) <= MAX_POINTS + 1
    assert max(v for _, v in series if v is not None) == 6500.0


def test_a_meter_that_went_unavailable_leaves_a_hole():
    grid = [row("-2000", 3000), row("unavailable", 2000), row("-2100", 1000)]
    series = data({"g": grid}).export_w
    middle = [
        v for t, v in series if NOW - timedelta(seconds=1900) < t < NOW - timedelta(seconds=1100)
    ]
    assert middle
    assert set(middle) == {None}
    assert series[-1][1] == 2100.0


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(min_value=-9000, max_value=9000), min_size=1, max_size=60),
    minutes=st.integers(min_value=5, max_value=1440),
)
def test_each_bucket_shows_the_highest_export_standing_in_it(values, minutes):
    window = timedelta(minutes=minutes)
    step = window / (len(values) + 1)
    grid = [
        {"state": str(-v), "last_changed": (NOW - window + step * (i + 1)).isoformat()}
        for i, v in enumerate(values)
    ]
    series = data({"g": grid}, window=window).export_w
    # Never more than the highest reading, and the highest one is shown.
    shown = [v for _, v in series if v is not None]
    assert max(shown) == max(values)
    assert min(shown) >= min(values)


def test_the_svg_draws_each_series_in_local_time():
    history = {
        "g": [row("-4000", s) for s in range(3500, 0, -10)],
        "b": [row("0", 3500), row("1500", 1800)],
        "a": [row("start 1500 W: verified", 1800)],
    }
    svg = render_svg(data(history), ZoneInfo("Europe/Amsterdam"))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    for title in ("Grid export", "Export limit", "Limit - deadband", "Battery discharge", "Start"):
        assert title in svg
    # 11:00-12:00 UTC is 13:00-14:00 in Amsterdam in June: the axis says so.
    labels = {t.text for t in root.iter() if t.text and re.fullmatch(r"\d\d:\d\d", t.text)}
    assert labels
    assert all(label.startswith("13:") or label == "14:00" for label in labels), labels
    assert not re.search(r"<script[^>]*href", svg)  # nothing loaded from the internet
