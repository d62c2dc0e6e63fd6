"""Start/stop requests to the export guard, from the HA event and the
request entity, parsed once at the boundary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridwatch.hass.ports import EntityState
from gridwatch.hass.states import parse_bool, parse_float


@dataclass(frozen=True)
class StartCommand:
    """Start (or re-target) a discharge.

    Attributes:
        power_w: wanted power (W); ``None`` for the most allowed.
        duration_min: minutes; ``None`` until stopped.
    """

    power_w: float | None = None
    duration_min: float | None = None


@dataclass(frozen=True)
class StopCommand:
    """Stop the discharge."""


Command = StartCommand | StopCommand


class RequestError(ValueError):
    """A request could not be understood; the message says why."""


# A day: longer requests are almost always a unit mistake (seconds for minutes).
DEFAULT_MAX_DURATION_MIN = 1440.0
# No home battery discharges a megawatt; a bigger number is a typo.
MAX_POWER_W = 1_000_000.0


def parse_event(
    data: Mapping[str, Any], *, max_duration_min: float = DEFAULT_MAX_DURATION_MIN
) -> Command:
    """Parse the data of a ``gridwatch_export_guard`` event.

    Args:
        data: ``{"action": "start"|"stop", "power_w": ..., "duration_min": ...}``
            (power and duration optional, numbers or numeric strings).
        max_duration_min: the longest duration accepted.

    Returns:
        The command.

    Raises:
        RequestError: naming each bad field.
    """
    action = str(data.get("action", "")).strip().lower()
    if action == "stop":
        return StopCommand()
    problems: list[str] = []
    if action != "start":
        problems.append(f"action must be 'start' or 'stop', got {data.get('action')!r}")
    power = _optional_positive(data, "power_w", problems, MAX_POWER_W)
    duration = _optional_positive(data, "duration_min", problems, max_duration_min)
    if problems:
        raise RequestError("; ".join(problems))
    return StartCommand(power, duration)


def parse_request_state(raw: object) -> Command | None:
    """Interpret the request entity's state (an input_boolean).

    Returns:
        Start for on, stop for off, ``None`` when missing or not on/off
        (``unavailable`` is no request either way: the guard keeps its state).
    """
    value = parse_bool(raw)
    if value is None:
        return None
    return StartCommand() if value else StopCommand()


def standing_request(
    fact: EntityState | None, now_wall: datetime
) -> tuple[float | None, float | None] | None:
    """The request a restarted guard resumes, from its published request
    entity (see :func:`gridwatch.guard.entities.render_request`).

    Args:
        fact: the request entity as HA holds it (``None``: never written).
        now_wall: wall-clock now (tz-aware).

    Returns:
        ``(power_w, minutes_left)`` (each ``None``: the most allowed / until
        stopped), or ``None`` when nothing stands: off, missing, unreadable,
        or its end has passed.
    """
    if fact is None or parse_bool(fact.raw) is not True:
        return None
    power = parse_float(fact.attributes.get("power_w")).value
    until = fact.attributes.get("until")
    if until is None:
        return power, None
    try:
        end = datetime.fromisoformat(str(until))
    except ValueError:
        return None  # an end it cannot read: resuming could run past it
    if end.tzinfo is None:
        return None
    left = (end - now_wall).total_seconds() / 60.0
    return (power, left) if left > 0 else None


def _optional_positive(
    data: Mapping[str, Any], key: str, problems: list[str], most: float
) -> float | None:
    if data.get(key) is None:
        return None
    parsed = parse_float(data[key])
    if parsed.value is None or parsed.value <= 0 or not math.isfinite(parsed.value):
        problems.append(f"{key} must be a positive number, got {data[key]!r}")
        return None
    if parsed.value > most:
        problems.append(f"{key} must be at most {most:g}, got {data[key]!r}")
        return None
    return parsed.value
