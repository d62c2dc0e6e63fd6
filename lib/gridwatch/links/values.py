"""Value extraction and validation: one device payload -> one reading.

A value is found in a payload either by a JSON path (MQTT / WebSocket / HTTP
payloads) or by a byte offset plus a ``struct`` format and a scale (BLE
characteristics). Every function here is total: any payload, however broken,
gives a :class:`Reading` or an :class:`Invalid`, never an exception, because
these run inside link callbacks where an exception would lose the message
and could not be reported anywhere useful.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from gridwatch.hass.states import MAX_STATE_LENGTH, MISSING_STATES, parse_decimal
from gridwatch.transport.errors import PayloadError
from gridwatch.transport.payload import decode_json

# HA's own "no data" strings (and JSON null spelled out) are missing data, not text.
MISSING_MARKERS = MISSING_STATES | {"none", "null"}
# struct codes that unpack to a number; '?' (bool), 's' and 'p' (bytes) are not
# readings a sensor can publish.
_NUMERIC_CODES = frozenset("bBhHiIlLqQnNefd")

PathPart = str | int
_SEGMENT = re.compile(
    r"""
    \.?(?P<name>[A-Za-z0-9_][A-Za-z0-9_\-]*)  # .name ("$.a" and "a" are one path)
    | \[(?P<index>-?\d+)\]                  # [3]
    | \[(?P<quote>["'])(?P<key>.*?)(?P=quote)\]  # ["a key with.dots"]
    """,
    re.VERBOSE,
)


class ValueKind(StrEnum):
    NUMBER = "number"
    TEXT = "text"


def parse_path(text: str) -> tuple[PathPart, ...]:
    """Parse a JSON path such as ``data.phases[0].power`` or ``$["a.b"].c``.

    Args:
        text: the path; a leading ``$`` is optional; ``""`` or ``$`` is the
            whole payload.

    Returns:
        The path as keys (str) and list indices (int).

    Raises:
        ValueError: the path has a character no segment can start with.
    """
    rest = text.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    parts: list[PathPart] = []
    pos = 0
    while pos < len(rest):
        match = _SEGMENT.match(rest, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"bad JSON path {text!r} at {rest[pos:]!r}")
        if match.group("name") is not None:
            parts.append(match.group("name"))
        elif match.group("index") is not None:
            parts.append(int(match.group("index")))
        else:
            parts.append(match.group("key"))
        pos = match.end()
    return tuple(parts)


@dataclass(frozen=True)
class ValueSpec:
    """Where one value sits in a link's messages and what a valid one is.

    Args:
        name: the value's name, the ``<value>`` of ``sensor.<link>_<value>``.
        key: the subscription key the value arrives on (MQTT topic, WebSocket
            event name, HTTP path, BLE characteristic UUID).
        path: JSON path inside the payload (JSON payloads); ``""`` is the whole
            payload (a bare number on an MQTT topic).
        offset: byte offset in a binary payload (BLE); set together with ``fmt``.
        fmt: ``struct`` format of one number at ``offset``, e.g. ``"<h"``.
        scale: multiplier applied to a number (e.g. 0.1 for deci-volts).
        kind: number or text.
        unit: unit of measurement published to HA (``W``, ``kWh``, ``%``).
        device_class: HA sensor device class (``power``, ``energy``, ...).
        state_class: HA state class (``measurement``, ``total``, ...).
        minimum: smallest valid number (after scaling), inclusive.
        maximum: largest valid number (after scaling), inclusive.
        precision: decimals in the published state; ``None`` publishes as is.

    Raises:
        ValueError: inconsistent spec (bad path or format, min > max ...).
    """

    name: str
    key: str
    path: str = ""
    offset: int | None = None
    fmt: str | None = None
    scale: float = 1.0
    kind: ValueKind = ValueKind.NUMBER
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    precision: int | None = None
    parsed_path: tuple[PathPart, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed_path", parse_path(self.path))
        if (self.offset is None) != (self.fmt is None):
            raise ValueError("offset and fmt go together (binary payloads)")
        if self.fmt is not None:
            check_struct_format(self.fmt)
            if self.kind is not ValueKind.NUMBER:
                raise ValueError("a binary (offset/fmt) value must be a number")
            if self.path:
                raise ValueError("a value has either a JSON path or offset/fmt, not both")
        if self.offset is not None and self.offset < 0:
            raise ValueError("offset must be >= 0")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError("scale must be a finite non-zero number")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} > maximum {self.maximum}")
        if self.precision is not None and not 0 <= self.precision <= 10:
            raise ValueError("precision must be between 0 and 10")

    @property
    def binary(self) -> bool:
        return self.fmt is not None


def check_struct_format(fmt: str) -> None:
    """Check that ``fmt`` unpacks exactly one number.

    Raises:
        ValueError: not a struct format, or not exactly one numeric item.
    """
    try:
        packer = struct.Struct(fmt)
    except struct.error as err:
        raise ValueError(f"bad struct format {fmt!r}: {err}") from err
    items = packer.unpack(bytes(packer.size))
    codes = [c for c in fmt.lstrip("@=<>!") if c.isalpha() or c == "?"]
    if len(items) != 1 or not codes or codes[-1] not in _NUMERIC_CODES:
        raise ValueError(f"struct format {fmt!r} must unpack exactly one number, e.g. '<h'")


@dataclass(frozen=True)
class Reading:
    """A valid value."""

    value: float | str


@dataclass(frozen=True)
class Invalid:
    """A payload that gave no valid value; ``kind`` groups repeats for counting."""

    kind: str  # missing, missing_key, wrong_type, not_a_number, out_of_range ...
    detail: str


Extraction = Reading | Invalid


def extract(spec: ValueSpec, payload: Any) -> Extraction:
    """Extract and validate ``spec``'s value from one payload. Never raises.

    Args:
        spec: the value's spec.
        payload: ``bytes`` as received (MQTT, BLE) or decoded JSON (WebSocket,
            HTTP).

    Returns:
        A :class:`Reading`, or an :class:`Invalid` saying why not.
    """
    try:
        return _extract(spec, payload)
    except RecursionError:
        return Invalid("too_deep", "payload nested too deeply")
    except Exception as err:  # the last net: a callback must never raise
        return Invalid("internal", f"{type(err).__name__}: {err}"[:200])


def _extract(spec: ValueSpec, payload: Any) -> Extraction:
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
        if spec.binary:
            return _from_binary(spec, raw)
        if spec.parsed_path:
            try:
                payload = decode_json(raw)
            except PayloadError as err:
                return Invalid(err.kind, err.detail)
        else:
            try:
                payload = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                return Invalid("encoding", str(err)[:120])
    elif spec.binary:
        return Invalid("wrong_type", f"binary value needs bytes, got {type(payload).__name__}")
    found = _walk(payload, spec.parsed_path)
    if isinstance(found, Invalid):
        return found
    if spec.kind is ValueKind.TEXT:
        return _as_text(found)
    return _check_number(spec, _as_number(found))


def _from_binary(spec: ValueSpec, raw: bytes) -> Extraction:
    # Binary specs have both (checked in ValueSpec.__post_init__).
    assert spec.fmt is not None
    assert spec.offset is not None
    packer = struct.Struct(spec.fmt)
    if spec.offset + packer.size > len(raw):
        return Invalid(
            "too_short", f"{len(raw)} bytes, need {spec.offset + packer.size} for {spec.fmt!r}"
        )
    (number,) = packer.unpack_from(raw, spec.offset)
    return _check_number(spec, float(number))


def _walk(payload: Any, path: tuple[PathPart, ...]) -> Any:
    node = payload
    for part in path:
        if isinstance(part, int) and isinstance(node, list):
            if not -len(node) <= part < len(node):
                return Invalid("missing_key", f"index {part} out of range")
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            if part not in node:
                return Invalid("missing_key", f"no key {part!r}")
            node = node[part]
        else:
            return Invalid("wrong_type", f"cannot take {part!r} of {type(node).__name__}")
    return node


def _as_text(found: Any) -> Extraction:
    if found is None or isinstance(found, dict | list):
        return Invalid("wrong_type", f"expected text, got {type(found).__name__}")
    # JSON true/false read as HA's own "true"/"false", not Python's "True".
    text = str(found).lower() if isinstance(found, bool) else str(found)
    if text.strip().lower() in MISSING_MARKERS:
        return Invalid("missing", f"{text!r} is missing data")
    if len(text) > MAX_STATE_LENGTH:
        return Invalid("too_long", f"{len(text)} characters > {MAX_STATE_LENGTH}")
    return Reading(text)


def _as_number(found: Any) -> float | Invalid:
    # bool is an int subclass; "true" is not a power reading.
    if isinstance(found, bool) or found is None or isinstance(found, dict | list):
        return Invalid("wrong_type", f"expected a number, got {type(found).__name__}")
    if isinstance(found, int | float):
        try:
            return float(found)
        except OverflowError:
            return Invalid("not_a_number", "integer too large")
    if isinstance(found, str):
        text = found.strip()
        if text.lower() in MISSING_MARKERS:
            return Invalid("missing", f"{found[:40]!r} is missing data")
        if len(text) > 64:
            return Invalid("not_a_number", f"{len(text)}-character string")
        number = parse_decimal(text)
        if number is None:
            # ASCII decimal notation only: float() would also read "١٢٣".
            return Invalid("not_a_number", f"{text[:40]!r}")
        return number
    return Invalid("wrong_type", f"expected a number, got {type(found).__name__}")


def _check_number(spec: ValueSpec, number: float | Invalid) -> Extraction:
    if isinstance(number, Invalid):
        return number
    value = number * spec.scale
    if not math.isfinite(value):
        return Invalid("not_a_number", f"{value} is not finite")
    if spec.minimum is not None and value < spec.minimum:
        return Invalid("out_of_range", f"{value:g} < minimum {spec.minimum:g}")
    if spec.maximum is not None and value > spec.maximum:
        return Invalid("out_of_range", f"{value:g} > maximum {spec.maximum:g}")
    if spec.precision is not None:
        value = round(value, spec.precision)
    return Reading(value)


def format_state(spec: ValueSpec, value: float | str) -> str:
    """The HA state string for a valid value (numbers as strings: AppDaemon
    drops a bare ``0`` state)."""
    if isinstance(value, str):
        return value
    if spec.precision is not None:
        return f"{value:.{spec.precision}f}"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".10g")


@dataclass(frozen=True)
class ValueState:
    """What is known of one value: its last good reading and the invalid tally."""

    last_good: float | str | None = None
    last_good_at: float | None = None  # monotonic time of the message
    invalid_total: int = 0
    invalid_counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    last_invalid: Invalid | None = None


@dataclass(frozen=True)
class ValueUpdate:
    """The result of one payload for one value.

    ``warn`` is set when this invalid reading should be logged: the first of
    each kind and then at 10, 100, 1000 ... of that kind, so a device sending
    garbage every second is visible in the log without flooding it.
    """

    state: ValueState
    extraction: Extraction
    changed: bool  # the last good value (or its presence) changed
    warn: bool


def apply_payload(state: ValueState, spec: ValueSpec, payload: Any, now: float) -> ValueUpdate:
    """Fold one payload into a value's state. Never raises.

    Args:
        state: the value's state so far.
        spec: the value's spec.
        payload: as received on the link.
        now: the message's monotonic receive time.

    Returns:
        The new state (last good value kept on an invalid reading), the
        extraction, whether the good value changed and whether to log.
    """
    result = extract(spec, payload)
    if isinstance(result, Reading):
        changed = result.value != state.last_good or state.last_good_at is None
        return ValueUpdate(
            replace(state, last_good=result.value, last_good_at=now), result, changed, False
        )
    counts = dict(state.invalid_counts)
    counts[result.kind] = counts.get(result.kind, 0) + 1
    new = replace(
        state,
        invalid_total=state.invalid_total + 1,
        invalid_counts=MappingProxyType(counts),
        last_invalid=result,
    )
    return ValueUpdate(new, result, False, _is_log_point(counts[result.kind]))


def _is_log_point(count: int) -> bool:
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1
