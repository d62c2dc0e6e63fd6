"""Home Assistant's time zone: the one the recorder groups days in.

HA aligns ``day`` statistics windows to local midnight in its OWN zone
(``recorder/statistics.py``, ``dt_util.as_local``), so the tally must count
days in that zone: a different ``time_zone`` option gives wrong months. The
zone is read with HA's ``get_config`` websocket command through the port's
:class:`~gridwatch.hass.ports.WebsocketCommander` (no extra port method).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridwatch.hass.errors import CommandError
from gridwatch.hass.ports import WebsocketCommander

__all__ = ["ZoneChoice", "ZoneMismatchError", "choose_zone", "read_ha_time_zone"]

GET_CONFIG = "get_config"


class ZoneMismatchError(ValueError):
    """The configured ``time_zone`` differs from HA's.

    Attributes:
        configured: the option's value.
        ha_zone: HA's zone.
    """

    def __init__(self, configured: str, ha_zone: str) -> None:
        self.configured, self.ha_zone = configured, ha_zone
        super().__init__(
            f"{configured!r} differs from Home Assistant's time zone {ha_zone!r}; the "
            "recorder groups days in HA's zone, so days and months would not match. "
            "Remove time_zone (the tally uses HA's)"
        )


@dataclass(frozen=True)
class ZoneChoice:
    """The zone the tally counts days in.

    Attributes:
        zone: HA's zone.
    """

    zone: ZoneInfo


async def read_ha_time_zone(commander: WebsocketCommander, timeout_s: float) -> str:
    """Ask HA for its configured time zone.

    Args:
        commander: the port's websocket commander.
        timeout_s: how long to wait.

    Returns:
        The IANA name, e.g. ``Europe/Berlin``.

    Raises:
        CommandError: HA did not answer, or the answer has no usable zone.
        CommandTimeout: no answer in time (a :class:`HassError` too).
    """
    result: Any = await commander.websocket_command({"type": GET_CONFIG}, timeout_s=timeout_s)
    name = result.get("time_zone") if isinstance(result, Mapping) else None
    if not isinstance(name, str):
        raise CommandError(GET_CONFIG, f"no time_zone in the answer: {result!r:.80}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise CommandError(GET_CONFIG, f"unknown time zone {name!r}") from err
    return name


def choose_zone(ha_zone: str, configured: str | None) -> ZoneChoice:
    """Pick HA's zone; a ``time_zone`` option may only repeat it.

    Args:
        ha_zone: HA's zone name (already checked by :func:`read_ha_time_zone`).
        configured: the ``time_zone`` option, or ``None``.

    Returns:
        The choice.

    Raises:
        ZoneMismatchError: ``configured`` names another zone (a different name
            for the same rules, e.g. an alias, is another zone here too: HA
            and the tally must agree on local midnight, and only equal names
            make that certain).
    """
    if configured is not None and configured != ha_zone:
        raise ZoneMismatchError(configured, ha_zone)
    return ZoneChoice(ZoneInfo(ha_zone))
