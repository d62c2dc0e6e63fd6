"""Payload decoders never raise anything but PayloadError, and say why."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridwatch.transport.errors import PayloadError
from gridwatch.transport.payload import PayloadErrorLog, decode_json, decode_json_object

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def kind_of(raw: bytes | str, max_bytes: int = 1024) -> str | None:
    try:
        decode_json(raw, max_bytes)
    except PayloadError as err:
        return err.kind
    return None


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_payload_error(raw: bytes) -> None:
    kind = kind_of(raw)
    if len(raw) > 1024:
        assert kind == "oversized"
    elif kind is None:
        assert decode_json(raw, 1024) == json.loads(raw.decode("utf-8"))
    else:
        assert kind in {"encoding", "not_json"}


@given(st.text(max_size=600))
def test_arbitrary_text_raises_only_payload_error(raw: str) -> None:
    kind = kind_of(raw)
    assert kind in {None, "not_json", "oversized"}
    if kind == "oversized":
        assert len(raw.encode("utf-8", "surrogatepass")) > 1024


@given(json_values)
def test_valid_json_round_trips(value: object) -> None:
    text = json.dumps(value)
    assert decode_json(text, 10**7) == value
    assert decode_json(text.encode(), 10**7) == value
    assert decode_json(bytearray(text.encode()), 10**7) == value
    assert decode_json(memoryview(text.encode()), 10**7) == value


@given(json_values)
def test_object_decoder_classifies_non_objects(value: object) -> None:
    text = json.dumps(value)
    if isinstance(value, dict):
        assert decode_json_object(text, 10**7) == value
    else:
        with pytest.raises(PayloadError) as info:
            decode_json_object(text, 10**7)
        assert info.value.kind == "wrong_type"


@given(st.binary(max_size=512))
def test_object_decoder_raises_only_payload_error(raw: bytes) -> None:
    kind = None
    try:
        value = decode_json_object(raw)
    except PayloadError as err:
        kind = err.kind
    if kind is None:
        assert isinstance(value, dict)
    else:
        assert kind in {"encoding", "not_json", "wrong_type"}


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\xff\xfe{}", "encoding"),
        (b"{not json", "not_json"),
        ("", "not_json"),
        ("NaN", "not_json"),
        ('{"power": Infinity}', "not_json"),
        ("[" * 100_000 + "]" * 100_000, "oversized"),
        (b"x" * 1025, "oversized"),
        ("é" * 513, "oversized"),  # 513 characters, 1026 UTF-8 bytes
    ],
)
def test_malformed_payloads_are_classified(raw: bytes | str, kind: str) -> None:
    assert kind_of(raw) == kind


def test_deep_nesting_is_not_json_not_a_crash() -> None:
    raw = "[" * 100_000 + "]" * 100_000
    assert kind_of(raw, max_bytes=10**6) == "not_json"


def test_exactly_max_bytes_is_accepted() -> None:
    raw = '"' + "a" * 1022 + '"'
    assert decode_json(raw, 1024) == "a" * 1022


def test_error_log_logs_once_per_kind_and_counts_all(caplog) -> None:
    logger = logging.getLogger("test.payload")
    log = PayloadErrorLog("meter", logger)
    with caplog.at_level(logging.WARNING, logger="test.payload"):
        for raw in (b"{", b"[", b"\xff", b"{"):
            try:
                decode_json(raw)
            except PayloadError as err:
                log.record(err, source="topic/a")
    assert log.counts == {"not_json": 3, "encoding": 1}
    assert log.total == 4
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert all("link meter" in m and "from topic/a" in m for m in messages)
