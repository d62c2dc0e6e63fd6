"""One entity to write, and the writer that spares HA unchanged writes.

Every app renders its entities as :class:`EntityUpdate` objects (pure) and
hands them to a :class:`ChangedOnlyWriter`, which performs them through the
HA port. The port itself republishes every entity after HA restarts, so the
writer may skip what HA already has.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import EntityWriter, StateValue

# HA writes are small; one that takes longer means HA is stuck, and waiting
# would hold up every other entity's update.
WRITE_TIMEOUT_S: Final = 10.0
# A heartbeat-only attribute change (see ``heartbeat_attributes``) is written
# at most this often: one HA write and one recorder row per second per sensor
# otherwise.
HEARTBEAT_REFRESH_S: Final = 60.0


@dataclass(frozen=True)
class EntityUpdate:
    """One entity's full state, ready for ``EntityWriter.set_entity``.

    Attributes:
        entity_id: e.g. ``sensor.export_guard_health``.
        state: the state (the port sends numbers and booleans safely).
        attributes: every attribute the entity should have (not a patch).
    """

    entity_id: str
    state: StateValue
    attributes: Mapping[str, Any]


class _Sent(enum.Enum):
    """What became of one update."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"  # HA has it already: nothing sent
    FAILED = "failed"


class ChangedOnlyWriter:
    """Writes :class:`EntityUpdate` objects, skipping those HA already has.

    A change of heartbeat attributes alone (attributes that only say "still
    alive", named by ``heartbeat_attributes``) is written at most every
    ``heartbeat_refresh_s``; a heartbeat appearing or vanishing is news and is
    written at once. A failed or timed-out write is logged and not
    remembered, so the next round retries it; it is never raised.

    Args:
        hass: the port's entity writer.
        logger: the app's logger (failed writes are warnings).
        timeout_s: limit for each write.
        clock: monotonic clock for the heartbeat throttle.
        heartbeat_attributes: attribute names whose ticking alone is throttled.
        heartbeat_refresh_s: how often a heartbeat-only change is written.
    """

    def __init__(
        self,
        hass: EntityWriter,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        timeout_s: float = WRITE_TIMEOUT_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_attributes: frozenset[str] = frozenset(),
        heartbeat_refresh_s: float = HEARTBEAT_REFRESH_S,
    ) -> None:
        self._hass = hass
        self._log = logger
        self._timeout_s = timeout_s
        self._clock = clock
        self._heartbeat = heartbeat_attributes
        self._heartbeat_refresh_s = heartbeat_refresh_s
        self._written: dict[str, tuple[StateValue, dict[str, Any], float]] = {}

    def _worth_writing(self, update: EntityUpdate) -> bool:
        written = self._written.get(update.entity_id)
        if written is None:
            return True
        state, attributes, at = written
        if state != update.state:
            return True
        if attributes == update.attributes:
            return False
        if self._without_heartbeat(attributes) != self._without_heartbeat(update.attributes):
            return True
        return self._clock() - at >= self._heartbeat_refresh_s

    def _without_heartbeat(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        # Only a heartbeat ticking forward is throttled: its appearing or
        # vanishing (first message, reset) stays visible.
        return {k: (v is None if k in self._heartbeat else v) for k, v in attributes.items()}

    async def write(self, update: EntityUpdate) -> bool:
        """Write one entity unless HA already has it (heartbeats aside).

        Returns:
            True if a write was sent and succeeded.
        """
        return await self._send(update) is _Sent.WRITTEN

    async def write_all(self, updates: Iterable[EntityUpdate]) -> bool:
        """Write each update in turn (see :meth:`write`), in order.

        Stops at the first failed write: HA is then gone or stuck and the
        rest would fail too (one warning, not one per entity); the next round
        retries them, since nothing failed is remembered as written.

        Returns:
            False if a write failed.
        """
        for update in updates:
            if await self._send(update) is _Sent.FAILED:
                return False
        return True

    async def _send(self, update: EntityUpdate) -> _Sent:
        if not self._worth_writing(update):
            return _Sent.UNCHANGED
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._hass.set_entity(update.entity_id, update.state, update.attributes)
        except (HassError, TimeoutError) as err:
            self._log.warning("could not write %s: %s", update.entity_id, err or "timed out")
            return _Sent.FAILED
        self._written[update.entity_id] = (update.state, dict(update.attributes), self._clock())
        return _Sent.WRITTEN

    def forget(self, entity_id: str) -> None:
        """Write ``entity_id`` next time even if unchanged (e.g. it was removed)."""
        self._written.pop(entity_id, None)
