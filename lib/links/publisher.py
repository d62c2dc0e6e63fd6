"""Performs what the monitor decides: entity writes (unchanged ones skipped,
each bounded) and notice operations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from lib.hass.errors import HassError
from lib.hass.ports import EntityWriter, EventBus
from lib.links.entities import EntityUpdate
from lib.links.monitor import NoticeOp, RaiseNotice
from lib.notices import NOTICE_EVENT, NoticeClient, Severity, resolve_event_data

# HA writes are small; one that takes longer means HA is stuck, and waiting
# would hold up every other link's updates.
WRITE_TIMEOUT_S = 10.0


class EntityPublisher:
    """Writes :class:`EntityUpdate` objects through the HA port.

    Unchanged entities are not rewritten (the port itself republishes them
    after HA restarts). A failed write is logged and not remembered, so the
    next evaluation retries it; it is never raised.

    Args:
        hass: the port's entity writer.
        logger: where failed writes are logged.
        timeout_s: limit for each write.
    """

    def __init__(
        self, hass: EntityWriter, logger: logging.Logger, timeout_s: float = WRITE_TIMEOUT_S
    ) -> None:
        self._hass = hass
        self._log = logger
        self._timeout_s = timeout_s
        self._written: dict[str, tuple[str, Mapping[str, Any]]] = {}

    async def write(self, update: EntityUpdate) -> bool:
        """Write one entity unless HA already has exactly this.

        Returns:
            True if a write was sent and succeeded.
        """
        if self._written.get(update.entity_id) == (update.state, update.attributes):
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._hass.set_entity(update.entity_id, update.state, update.attributes)
        except (HassError, TimeoutError) as err:
            self._log.warning("could not write %s: %s", update.entity_id, err)
            return False
        self._written[update.entity_id] = (update.state, dict(update.attributes))
        return True


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
