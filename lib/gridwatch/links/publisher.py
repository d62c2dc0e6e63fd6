"""Performs what the monitor decides: entity writes (unchanged ones skipped,
each bounded) and notice operations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import EntityWriter, EventBus
from gridwatch.links.entities import EntityUpdate
from gridwatch.links.monitor import NoticeOp, RaiseNotice
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient, Severity, resolve_event_data

# HA writes are small; one that takes longer means HA is stuck, and waiting
# would hold up every other link's updates.
WRITE_TIMEOUT_S = 10.0
# Attributes that only say "still alive". A gateway reporting an unchanged
# value every second would otherwise cost one HA write and one recorder row
# per second per sensor; a heartbeat-only change is written at most this often.
HEARTBEAT_ATTRIBUTES: Final = frozenset({"last_good", "last_message"})
HEARTBEAT_REFRESH_S: Final = 60.0


class EntityPublisher:
    """Writes :class:`EntityUpdate` objects through the HA port.

    Unchanged entities are not rewritten (the port itself republishes them
    after HA restarts), and a change of heartbeat attributes alone
    (:data:`HEARTBEAT_ATTRIBUTES`) is written at most every
    ``heartbeat_refresh_s``. A failed write is logged and not remembered, so
    the next evaluation retries it; it is never raised.

    Args:
        hass: the port's entity writer.
        logger: where failed writes are logged.
        timeout_s: limit for each write.
        clock: monotonic clock for the heartbeat throttle.
        heartbeat_refresh_s: how often a heartbeat-only change is written.
    """

    def __init__(
        self,
        hass: EntityWriter,
        logger: logging.Logger,
        timeout_s: float = WRITE_TIMEOUT_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_refresh_s: float = HEARTBEAT_REFRESH_S,
    ) -> None:
        self._hass = hass
        self._log = logger
        self._timeout_s = timeout_s
        self._clock = clock
        self._heartbeat_refresh_s = heartbeat_refresh_s
        self._written: dict[str, tuple[str, Mapping[str, Any], float]] = {}

    def _worth_writing(self, update: EntityUpdate) -> bool:
        written = self._written.get(update.entity_id)
        if written is None:
            return True
        state, attributes, at = written
        if state != update.state or _without_heartbeat(attributes) != _without_heartbeat(
            update.attributes
        ):
            return True
        if attributes == update.attributes:
            return False
        return self._clock() - at >= self._heartbeat_refresh_s

    async def write(self, update: EntityUpdate) -> bool:
        """Write one entity unless HA already has it (heartbeats aside).

        Returns:
            True if a write was sent and succeeded.
        """
        if not self._worth_writing(update):
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._hass.set_entity(update.entity_id, update.state, update.attributes)
        except (HassError, TimeoutError) as err:
            self._log.warning("could not write %s: %s", update.entity_id, err)
            return False
        self._written[update.entity_id] = (update.state, dict(update.attributes), self._clock())
        return True


def _without_heartbeat(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # A heartbeat appearing or vanishing (first message, reset) is news; only
    # its ticking forward is throttled.
    return {k: (v is None if k in HEARTBEAT_ATTRIBUTES else v) for k, v in attributes.items()}


async def send_notice(op: NoticeOp, notices: NoticeClient, bus: EventBus) -> None:
    """Raise or resolve a link's notice.

    Args:
        op: what the monitor decided.
        notices: the app's notice client.
        bus: HA's event bus, for withdrawing a notice of an earlier run.

    Raises:
        HassError: the event could not be fired.
    """
    if isinstance(op, RaiseNotice):
        await notices.raise_notice(op.condition, Severity.WARNING, op.title, op.message, op.steps)
    elif not op.earlier_run:
        await notices.resolve(op.condition)
    elif notices.notice_id(op.condition) not in notices.active:
        # Raised by an earlier run of this app: this client never knew of it,
        # so its resolve() would send nothing.
        await bus.fire_event(NOTICE_EVENT, resolve_event_data(notices.notice_id(op.condition)))
