"""The HA entities of a link and what they hold.

Per link ``<link>``:

- ``sensor.<link>_<value>`` for each value: the last good value (or
  ``unknown`` / ``unavailable``) with its unit, classes, ``stale`` and
  ``connection_status``; ``problem`` while the device refuses its source.
- ``binary_sensor.<link>_connected``: device class connectivity.
- ``sensor.<link>_link_status``: connected / degraded / offline /
  disconnected, with the link's health figures as attributes.

Pure rendering: the functions take views and snapshots and return
:class:`EntityUpdate` objects the app writes through its HA port.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gridwatch.hass.entity_update import EntityUpdate
from gridwatch.links.availability import LinkView, ValueView
from gridwatch.links.values import ValueSpec, ValueState, format_state
from gridwatch.transport.health import HealthSnapshot

# Entity ids a value name may not take: they belong to the link itself.
RESERVED_VALUE_NAMES = frozenset({"link_status", "connected"})


def value_entity_id(link: str, value: str) -> str:
    """``sensor.<link>_<value>``."""
    return f"sensor.{link}_{value}"


def connected_entity_id(link: str) -> str:
    """``binary_sensor.<link>_connected``."""
    return f"binary_sensor.{link}_connected"


def status_entity_id(link: str) -> str:
    """``sensor.<link>_link_status``."""
    return f"sensor.{link}_link_status"


def link_entity_ids(link: str, values: list[str]) -> list[str]:
    """Every entity id a link with these value names owns."""
    return [
        connected_entity_id(link),
        status_entity_id(link),
        *(value_entity_id(link, v) for v in values),
    ]


def wall_time(mono: float | None, now_mono: float, now_wall: datetime) -> str | None:
    """A monotonic timestamp as an ISO wall time (``None`` stays ``None``).

    Args:
        mono: the monotonic time to convert.
        now_mono: monotonic now.
        now_wall: wall-clock now (tz-aware).

    Returns:
        ISO 8601 text, seconds precision.
    """
    if mono is None:
        return None
    return (now_wall - timedelta(seconds=now_mono - mono)).isoformat(timespec="seconds")


def render_value(
    link: str,
    spec: ValueSpec,
    state: ValueState,
    view: ValueView,
    link_view: LinkView,
    now_mono: float,
    now_wall: datetime,
    problem: str | None = None,
) -> EntityUpdate:
    """The value sensor of ``spec`` on ``link``.

    Args:
        problem: why the device refuses the value's source while the link
            works (an HTTP path this user may not read), if it does.

    Returns:
        ``unavailable`` past the grace period or while the source is
        refused (with the ``problem`` attribute saying why), ``unknown``
        before a first good reading, else the last good value as a string.
    """
    if not view.available or problem is not None:
        text = "unavailable"
    elif view.value is None:
        text = "unknown"
    else:
        text = format_state(spec, view.value)
    attributes: dict[str, Any] = {
        "friendly_name": f"{link} {spec.name}".replace("_", " "),
        "stale": view.stale,
        "connection_status": link_view.status.value,
        "last_good": wall_time(state.last_good_at, now_mono, now_wall),
        "invalid_count": state.invalid_total,
    }
    if state.last_invalid is not None:
        attributes["last_invalid"] = f"{state.last_invalid.kind}: {state.last_invalid.detail}"
    if problem is not None:
        attributes["problem"] = problem
    for key, item in (
        ("unit_of_measurement", spec.unit),
        ("device_class", spec.device_class),
        ("state_class", spec.state_class),
    ):
        if item is not None:
            attributes[key] = item
    return EntityUpdate(value_entity_id(link, spec.name), text, attributes)


def render_connected(link: str, view: LinkView) -> EntityUpdate:
    """``binary_sensor.<link>_connected``: on while the transport is up."""
    return EntityUpdate(
        connected_entity_id(link),
        "on" if view.connected else "off",
        {
            "friendly_name": f"{link} connected".replace("_", " "),
            "device_class": "connectivity",
        },
    )


def render_status(
    link: str,
    transport: str,
    view: LinkView,
    health: HealthSnapshot,
    now_mono: float,
    now_wall: datetime,
) -> EntityUpdate:
    """``sensor.<link>_link_status`` with the link's health figures.

    Args:
        link: the link's name.
        transport: mqtt / websocket / http / ble (shown as an attribute).
        view: the link's view from the same evaluation.
        health: the link's health snapshot.
        now_mono: monotonic now (for converting timestamps).
        now_wall: wall-clock now.

    Returns:
        The status entity; numbers rounded for display.
    """
    return EntityUpdate(
        status_entity_id(link),
        view.status.value,
        {
            "friendly_name": f"{link} link status".replace("_", " "),
            "device_class": "enum",
            "options": ["connected", "degraded", "offline", "disconnected"],
            "transport": transport,
            "success_rate": round(health.success_rate * 100.0, 1),
            "attempts": health.attempts,
            "mean_connect_time_s": _round(health.mean_connect_s),
            "last_connect_time_s": _round(health.last_connect_s),
            "consecutive_failures": health.consecutive_failures,
            "reconnect_count": health.reconnects,
            "last_message": wall_time(health.last_message_at, now_mono, now_wall),
            "adaptive_timeout_s": round(health.timeout_s, 1),
            "outage_since": wall_time(view.outage_since, now_mono, now_wall),
            "reason": view.reason,
            "last_error": health.last_error,
        },
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
