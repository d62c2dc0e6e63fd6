"""Parsing HA state strings at the boundary."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.hass.ports import EntityState
from gridwatch.hass.states import (
    parse_bool,
    parse_decimal,
    parse_float,
    parse_state,
    parse_timestamp,
    state_text,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.5", 12.5), ("-1200", -1200.0), (0, 0.0), ("0", 0.0), (3, 3.0), (" 7 ", 7.0)],
)
def test_parse_float_reads_numbers(raw, expected):
    parsed = parse_float(raw)
    assert parsed.ok
    assert parsed.value == expected
    assert parsed.reason is None


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("unknown", "'unknown'"),
        ("unavailable", "'unavailable'"),
        ("Unavailable", "'Unavailable'"),
        ("", "''"),
        (None, "no state"),
        ("abc", "not a number"),
        ("nan", "not a finite"),
        ("-Infinity", "not a finite"),
        ("1e999", "not a finite"),
        ("\u0661\u0662\u0663", "not a number"),  # Arabic-Indic digits: float() reads 123
        ("1_0.5", "not a number"),  # float() reads 10.5
        ("\uff11\uff12", "not a number"),  # fullwidth digits
        ("12\u00a0", "not a number"),  # padded with a no-break space
        ("0x10", "not a number"),
        ("12 W", "not a number"),
        (2**2000, "not a number"),  # an int beyond float range
        (float("-inf"), "not a finite"),
        (True, "boolean"),
        ([1], "not a number"),
    ],
)
def test_parse_float_reports_why_missing(raw, reason_part):
    parsed = parse_float(raw)
    assert not parsed.ok
    assert parsed.value is None
    assert reason_part in (parsed.reason or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+.5e-3", 0.0005), ("-0", 0.0), ("5.", 5.0), ("1E3", 1000.0), ("\t42\r\n", 42.0)],
)
def test_parse_decimal_reads_ascii_notation(text, expected):
    assert parse_decimal(text) == expected


@pytest.mark.parametrize(
    "text", ["", "+", ".", "e3", "1e", "1.2.3", "--1", "1e+", "\u0661", "Infinity"]
)
def test_parse_decimal_refuses_what_is_not_decimal_notation(text):
    assert parse_decimal(text) is None


@given(st.text())
def test_parse_decimal_accepts_only_ascii_notation_characters(text):
    if parse_decimal(text) is not None:
        assert set(text) <= set("0123456789+-.eE \t\r\n")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_float_round_trips_state_text(value):
    assert parse_float(state_text(value)).value == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("on", "on"), ("unknown", None), ("", None), (None, None), (0, "0"), (False, "off")],
)
def test_parse_state(raw, expected):
    assert parse_state(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("on", True),
        ("off", False),
        ("True", True),
        (False, False),
        ("unavailable", None),
        ("maybe", None),
    ],
)
def test_parse_bool(raw, expected):
    assert parse_bool(raw) is expected


def test_parse_timestamp_forms():
    aware = parse_timestamp("2026-06-01T12:00:00+02:00")
    assert aware == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert aware is not None
    assert aware.utcoffset() == timedelta(hours=2)
    assert parse_timestamp("2026-06-01T12:00:00") == datetime(2026, 6, 1, 12, tzinfo=UTC)
    dt = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert parse_timestamp(dt) is dt
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(None) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.0, "0.0"),
        (False, "off"),
        (True, "on"),
        (None, "unknown"),
        (math.nan, "unknown"),
        ("x", "x"),
    ],
)
def test_state_text_never_loses_zero_or_false(value, text):
    assert state_text(value) == text


def test_entity_state_helpers():
    state = EntityState("sensor.soc", "55.5", {"max": "100", "bad": "unknown"})
    assert state.available
    assert state.state == "55.5"
    assert state.number().value == 55.5
    assert state.attribute_number("max").value == 100.0
    assert "unknown" in (state.attribute_number("bad").reason or "")
    assert "no attribute" in (state.attribute_number("min").reason or "")
    gone = EntityState("sensor.soc", "unavailable")
    assert not gone.available
    assert gone.state is None
    assert gone.raw == "unavailable"
    assert not gone.number().ok
