"""Value extraction and validation: JSON paths, binary fields, ranges, tallies."""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.links.availability import AvailabilityPolicy
from gridwatch.links.monitor import LinkMonitor, LinkPlan
from gridwatch.links.values import (
    Invalid,
    Reading,
    ValueKind,
    ValueSpec,
    ValueState,
    apply_payload,
    extract,
    format_state,
    parse_path,
)
from gridwatch.transport.link import Message


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", ()),
        ("$", ()),
        ("power", ("power",)),
        ("$.power", ("power",)),
        ("data.phases[1].w", ("data", "phases", 1, "w")),
        ('$["a.b"].c', ("a.b", "c")),
        ("list[-1]", ("list", -1)),
        ("grid-meter.0", ("grid-meter", "0")),
    ],
)
def test_parse_path(text, parts):
    assert parse_path(text) == parts


@pytest.mark.parametrize("text", ["a..b", "a[x]", "a.", "[1", "a b", "$$"])
def test_parse_path_rejects_malformed(text):
    with pytest.raises(ValueError, match="bad JSON path"):
        parse_path(text)


@pytest.mark.parametrize(
    ("payload", "path", "expected"),
    [
        (b'{"power": 1234}', "power", 1234.0),
        (b'{"data": {"phases": [{"w": 1}, {"w": -2.5}]}}', "data.phases[1].w", -2.5),
        (b'{"soc": "87.5"}', "soc", 87.5),  # gateways that send numbers as text
        (b"  42.0\n", "", 42.0),  # a bare number on its own topic
        ({"power": 7}, "power", 7.0),  # decoded JSON from WebSocket / HTTP
        ([1, 2, 3], "[2]", 3.0),
        (5, "", 5.0),
    ],
)
def test_extract_json_numbers(payload, path, expected):
    spec = ValueSpec("v", "k", path=path)
    assert extract(spec, payload) == Reading(expected)


@pytest.mark.parametrize(
    ("payload", "path", "kind"),
    [
        (b"not json", "power", "not_json"),
        (b"\xff\xfe", "power", "encoding"),
        (b"\xff\xfe", "", "encoding"),
        (b'{"other": 1}', "power", "missing_key"),
        (b'{"power": [1]}', "power[3]", "missing_key"),
        (b'{"power": 1}', "power.x", "wrong_type"),
        (b'{"power": true}', "power", "wrong_type"),  # a bool is not a reading
        (b'{"power": null}', "power", "wrong_type"),
        (b'{"power": {"w": 1}}', "power", "wrong_type"),
        (b'{"power": "unavailable"}', "power", "missing"),
        (b'{"power": ""}', "power", "missing"),
        (b'{"power": "12 W"}', "power", "not_a_number"),
        (b'{"power": "nan"}', "power", "not_a_number"),
        # ASCII decimal notation only: float() would read these as numbers.
        ('{"power": "\u0661\u0662\u0663"}'.encode(), "power", "not_a_number"),
        (b'{"power": "1_0.5"}', "power", "not_a_number"),
        ('{"power": "\uff11\uff12"}'.encode(), "power", "not_a_number"),
        (b'{"power": "Infinity"}', "power", "not_a_number"),
        (b'{"power": 1e999}', "power", "not_a_number"),  # json gives inf
        (b"unknown", "", "missing"),
        ({"power": 1}, "power[0]", "wrong_type"),
    ],
)
def test_extract_json_invalid(payload, path, kind):
    result = extract(ValueSpec("v", "k", path=path), payload)
    assert isinstance(result, Invalid)
    assert result.kind == kind


@pytest.mark.parametrize(
    ("value", "minimum", "maximum", "ok"),
    [
        (50.0, 0.0, 100.0, True),
        (0.0, 0.0, 100.0, True),  # bounds are inclusive
        (100.0, 0.0, 100.0, True),
        (100.1, 0.0, 100.0, False),
        (-0.1, 0.0, 100.0, False),
        (-1e6, None, 100.0, True),
        (1e6, 0.0, None, True),
    ],
)
def test_range_is_checked_after_scaling(value, minimum, maximum, ok):
    spec = ValueSpec("soc", "k", path="v", scale=0.1, minimum=minimum, maximum=maximum)
    result = extract(spec, {"v": value * 10})
    if ok:
        assert isinstance(result, Reading)
        assert result.value == pytest.approx(value)
    else:
        assert isinstance(result, Invalid)
        assert result.kind == "out_of_range"


@pytest.mark.parametrize(
    ("fmt", "offset", "raw_value", "scale", "expected"),
    [
        ("<h", 0, -123, 1.0, -123.0),
        ("<H", 2, 2301, 0.1, 230.1),
        (">i", 1, 70000, 1.0, 70000.0),
        ("<f", 0, 1.5, 2.0, 3.0),
        ("B", 3, 87, 1.0, 87.0),
    ],
)
def test_extract_binary(fmt, offset, raw_value, scale, expected):
    packed = struct.pack(fmt, raw_value)
    payload = b"\x00" * offset + packed + b"\xee\xee"
    spec = ValueSpec("v", "uuid", offset=offset, fmt=fmt, scale=scale)
    result = extract(spec, payload)
    assert isinstance(result, Reading)
    assert result.value == pytest.approx(expected)


def test_extract_binary_too_short_and_wrong_type():
    spec = ValueSpec("v", "uuid", offset=3, fmt="<h")
    short = extract(spec, b"\x01\x02\x03\x04")
    assert isinstance(short, Invalid)
    assert short.kind == "too_short"
    decoded = extract(spec, {"v": 1})
    assert isinstance(decoded, Invalid)
    assert decoded.kind == "wrong_type"


def test_extract_binary_nan_float_is_invalid():
    spec = ValueSpec("v", "uuid", offset=0, fmt="<f")
    result = extract(spec, struct.pack("<f", float("nan")))
    assert isinstance(result, Invalid)
    assert result.kind == "not_a_number"


@pytest.mark.parametrize(
    ("found", "expected"),
    [("charging", Reading("charging")), (True, Reading("true")), (3, Reading("3"))],
)
def test_extract_text(found, expected):
    spec = ValueSpec("mode", "k", path="mode", kind=ValueKind.TEXT)
    assert extract(spec, {"mode": found}) == expected


@pytest.mark.parametrize(
    ("found", "kind"), [("x" * 300, "too_long"), ("unavailable", "missing"), ([1], "wrong_type")]
)
def test_extract_text_invalid(found, kind):
    spec = ValueSpec("mode", "k", path="mode", kind=ValueKind.TEXT)
    result = extract(spec, {"mode": found})
    assert isinstance(result, Invalid)
    assert result.kind == kind


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"offset": 0}, "offset and fmt"),
        ({"fmt": "<h"}, "offset and fmt"),
        ({"offset": 0, "fmt": "<hh"}, "exactly one number"),
        ({"offset": 0, "fmt": "<4s"}, "exactly one number"),
        ({"offset": 0, "fmt": "?"}, "exactly one number"),
        ({"offset": 0, "fmt": "<Z"}, "bad struct format"),
        ({"offset": -1, "fmt": "<h"}, "offset must be"),
        ({"offset": 0, "fmt": "<h", "path": "a"}, "not both"),
        ({"path": "a", "minimum": 5, "maximum": 1}, "minimum"),
        ({"path": "a", "scale": 0}, "scale"),
        ({"path": "a..b"}, "bad JSON path"),
        ({"offset": 0, "fmt": "<h", "kind": ValueKind.TEXT}, "must be a number"),
    ],
)
def test_spec_rejects_inconsistent(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ValueSpec("v", "k", **kwargs)


@pytest.mark.parametrize(
    ("value", "precision", "text"),
    [
        (0.0, None, "0"),
        (1500.0, None, "1500"),
        (230.1, None, "230.1"),
        (2.0, 2, "2.00"),
        (0.125, 1, "0.1"),
    ],
)
def test_format_state(value, precision, text):
    spec = ValueSpec("v", "k", precision=precision)
    assert format_state(spec, value) == text


def test_invalid_reading_keeps_last_good_and_counts():
    spec = ValueSpec("soc", "k", path="soc", minimum=0, maximum=100)
    state = ValueState()
    good = apply_payload(state, spec, b'{"soc": 55}', now=10.0)
    assert good.changed
    assert good.state.last_good == 55.0
    assert good.state.last_good_at == 10.0

    bad = apply_payload(good.state, spec, b'{"soc": 140}', now=11.0)
    assert not bad.changed
    assert bad.warn  # the first of its kind is logged
    assert bad.state.last_good == 55.0
    assert bad.state.last_good_at == 10.0
    assert bad.state.invalid_total == 1
    assert bad.state.invalid_counts == {"out_of_range": 1}

    again = apply_payload(bad.state, spec, b"garbage", now=12.0)
    assert again.warn  # a new kind is logged too
    assert again.state.invalid_counts == {"out_of_range": 1, "not_json": 1}
    assert again.state.last_good == 55.0


def test_repeated_invalid_is_logged_on_a_log_scale():
    spec = ValueSpec("soc", "k", path="soc", maximum=100)
    state = ValueState()
    warned = []
    for i in range(1, 1001):
        update = apply_payload(state, spec, {"soc": 500}, now=float(i))
        state = update.state
        if update.warn:
            warned.append(i)
    assert warned == [1, 10, 100, 1000]
    assert state.invalid_total == 1000


def test_same_value_again_is_fresh_but_not_changed():
    spec = ValueSpec("p", "k", path="p")
    first = apply_payload(ValueState(), spec, {"p": 1}, now=1.0)
    second = apply_payload(first.state, spec, {"p": 1}, now=2.0)
    assert not second.changed
    assert second.state.last_good_at == 2.0


# --- fuzz: no payload makes extraction raise ---------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["power", "data", "soc", "x", "0"]), children, max_size=4)
    ),
    max_leaves=20,
)
_SPECS = (
    ValueSpec("a", "k", path="power", minimum=-50000, maximum=50000),
    ValueSpec("b", "k", path="data.soc[0]", scale=0.1),
    ValueSpec("c", "k"),
    ValueSpec("d", "k", path="data", kind=ValueKind.TEXT),
    ValueSpec("e", "k", offset=1, fmt="<h", scale=0.1, minimum=0, maximum=100),
    ValueSpec("f", "k", offset=0, fmt=">d"),
    ValueSpec("g", "k", path='["0"][1]', precision=2),
)
_specs = st.sampled_from(_SPECS)


@settings(max_examples=150, deadline=None)
@given(spec=_specs, payload=st.binary(max_size=64))
def test_fuzz_bytes_never_raise(spec, payload):
    update = apply_payload(ValueState(), spec, payload, now=1.0)
    assert isinstance(update.extraction, Reading | Invalid)


@settings(max_examples=60, deadline=None)
@given(spec=_specs, doc=_json)
def test_fuzz_json_never_raises(spec, doc):
    # Both as decoded JSON (WebSocket/HTTP) and as bytes on a topic (MQTT).
    for payload in (doc, json.dumps(doc).encode()):
        result = extract(spec, payload)
        assert isinstance(result, Reading | Invalid)
        if isinstance(result, Reading) and spec.kind is ValueKind.NUMBER:
            assert isinstance(result.value, float)


def test_deeply_nested_json_is_invalid_not_an_exception():
    spec = ValueSpec("a", "k", path="power")
    payload = b"[" * 100_000 + b"]" * 100_000
    result = extract(spec, payload)
    assert isinstance(result, Invalid)


@settings(max_examples=60, deadline=None)
@given(
    payload=st.one_of(st.binary(max_size=64), _json, st.text(max_size=30)),
    key=st.sampled_from(["k", "other"]),
)
def test_fuzz_the_monitor_callback_never_raises(payload, key):
    # The callback a link actually calls, with every kind of spec behind one key.
    specs = tuple(replace(s, name=f"v{i}") for i, s in enumerate(_SPECS))
    monitor = LinkMonitor(
        LinkPlan("l", "mqtt", "t", specs, AvailabilityPolicy()), 0.0, logging.getLogger("fuzz")
    )
    fresh = monitor.on_message(key, Message(key, payload, 1.0))
    assert set(fresh) <= {s.name for s in specs}
    for spec in specs:
        state = monitor.value_state(spec.name)
        if spec.name in fresh:
            assert state.last_good_at == 1.0
        elif key == "k":
            assert state.invalid_total == 1
