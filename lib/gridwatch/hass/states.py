"""Parsing of Home Assistant state strings, done once at the boundary.

HA reports missing data as the strings ``unknown`` and ``unavailable``, as an
empty string, or (AppDaemon, entity not found) as ``None``. None of these may
ever reach ``float()`` in a callback: these helpers turn every state into a
value or an explicit "missing, because ..." that logic can report.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

# States HA uses for "no value"; compared case-insensitively because some
# integrations report "Unavailable".
MISSING_STATES: Final = frozenset({"unknown", "unavailable", ""})
# HA refuses a state longer than this (its entity state limit).
MAX_STATE_LENGTH: Final = 255

# ASCII decimal notation only: sign, digits, point, exponent. Python's
# float() also reads other scripts' digits ("١٢٣" -> 123.0), underscores
# ("1_0.5" -> 10.5) and words ("nan", "infinity"); a device or sensor sending
# those is sending garbage, not a reading.
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# The words float() reads as NaN or infinity: refused like the numbers.
_NON_FINITE: Final = frozenset({"nan", "inf", "infinity"})
# Whitespace a device may pad a number with (ASCII only, like the digits).
_ASCII_SPACE: Final = " \t\r\n"

_TRUE_STATES: Final = frozenset({"on", "true", "yes", "home", "open", "1"})
_FALSE_STATES: Final = frozenset({"off", "false", "no", "not_home", "closed", "0"})


@dataclass(frozen=True)
class ParsedFloat:
    """A number read from a state, or the reason there is none.

    Attributes:
        value: the finite number, or ``None`` when missing.
        reason: why the value is missing (``None`` when present), e.g.
            ``"state is 'unavailable'"``.
    """

    value: float | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when a finite number was read."""
        return self.value is not None


def missing_reason(raw: Any) -> str | None:
    """Say why ``raw`` is missing data, or ``None`` if it holds a value.

    Args:
        raw: a state as HA or AppDaemon gives it (str, number, bool or None).

    Returns:
        ``None`` for a present value, else a short reason.
    """
    if raw is None:
        return "no state (entity missing?)"
    if isinstance(raw, str) and raw.strip().lower() in MISSING_STATES:
        return f"state is {raw!r}"
    return None


def parse_state(raw: Any) -> str | None:
    """Return the state as a string, or ``None`` when it is missing data.

    Args:
        raw: a state as HA or AppDaemon gives it.

    Returns:
        The state text (numbers and booleans as HA would show them), or ``None``.
    """
    if missing_reason(raw) is not None:
        return None
    if isinstance(raw, bool):
        return "on" if raw else "off"
    return str(raw)


def parse_decimal(text: str) -> float | None:
    """Read a number written in ASCII decimal notation.

    Accepts an optional sign, digits with an optional decimal point, and an
    optional exponent (``-12``, ``0.5``, ``.5``, ``1e3``), padded with ASCII
    whitespace. Anything else, including digits of other scripts,
    underscores, ``nan`` and ``inf``, gives ``None``.

    Args:
        text: the text to read.

    Returns:
        The number (may be infinite if the exponent overflows), or ``None``.
    """
    core = text.strip(_ASCII_SPACE)
    if _DECIMAL.fullmatch(core) is None:
        return None
    return float(core)


def parse_float(raw: Any) -> ParsedFloat:
    """Parse a numeric state.

    Missing on ``unknown``/``unavailable``/``''``/``None``, on text that is not
    a number, and on NaN or infinity (a sensor glitch, never a reading).

    Args:
        raw: a state or attribute value.

    Returns:
        A :class:`ParsedFloat` with the value or the reason it is missing.
    """
    reason = missing_reason(raw)
    if reason is not None:
        return ParsedFloat(None, reason)
    if isinstance(raw, bool):
        # bool is an int subclass: True would silently read as 1.0 W.
        return ParsedFloat(None, f"state {raw!r} is a boolean, not a number")
    value: float | None
    if isinstance(raw, str):
        value = parse_decimal(raw)
    elif isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:  # an int beyond float range
            value = None
    else:
        value = None
    if value is None:
        if isinstance(raw, str) and raw.strip(_ASCII_SPACE).lower().lstrip("+-") in _NON_FINITE:
            return ParsedFloat(None, f"state {raw!r} is not a finite number")
        return ParsedFloat(None, f"state {_short(raw)} is not a number")
    if not math.isfinite(value):
        return ParsedFloat(None, f"state {raw!r} is not a finite number")
    return ParsedFloat(value)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_bool(raw: Any) -> bool | None:
    """Parse an on/off style state (``on``/``off``, ``true``/``false`` ...).

    Args:
        raw: a state as HA or AppDaemon gives it.

    Returns:
        ``True``/``False``, or ``None`` when missing or not a recognised word.
    """
    if isinstance(raw, bool):
        return raw
    text = parse_state(raw)
    if text is None:
        return None
    word = text.strip().lower()
    if word in _TRUE_STATES:
        return True
    if word in _FALSE_STATES:
        return False
    return None


def parse_timestamp(raw: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp (``last_changed``) into a tz-aware datetime.

    Args:
        raw: an ISO string, a datetime, or anything else.

    Returns:
        The time (naive values are taken as UTC, as HA stores them), or ``None``.
    """
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str) and raw:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            return None
    else:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def state_text(value: Any) -> str:
    """The text HA should store for a state we write.

    Numbers are sent as text because AppDaemon 4.5.13's HTTP cleaner drops a
    state equal to ``0``/``False`` (HA then answers 400). Booleans become
    ``on``/``off`` (HA's binary convention), ``None`` becomes ``unknown``.

    Args:
        value: the state to write.

    Returns:
        The state text.
    """
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and not math.isfinite(value):
        # HA rejects nothing here, but "nan" would read as a number elsewhere.
        return "unknown"
    return str(value)


def slugify(text: str) -> str:
    """Turn a display or app name into the entity-id alphabet ``[a-z0-9_]``,
    transliterating accents as HA does (``"Wärmepumpe (EG)"`` ->
    ``"warmepumpe_eg"``). Every entity id and notice id of the suite is built
    with this one function, so an app's entities and notices always agree.

    Returns:
        The slug; empty when nothing usable is left.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
