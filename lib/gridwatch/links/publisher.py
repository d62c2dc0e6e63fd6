"""Performs what the monitor decides: notice operations, and which of a
link's attributes are heartbeats for the changed-only entity writer."""

from __future__ import annotations

from typing import Final

from gridwatch.hass.ports import EventBus
from gridwatch.links.monitor import NoticeOp, RaiseNotice
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient, Severity, resolve_event_data

# Attributes that only say "still alive". A gateway reporting an unchanged
# value every second would otherwise cost one HA write and one recorder row
# per second per sensor; a heartbeat-only change is written at most this often.
HEARTBEAT_ATTRIBUTES: Final = frozenset({"last_good", "last_message"})
HEARTBEAT_REFRESH_S: Final = 60.0


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
