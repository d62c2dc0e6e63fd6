"""How notices look in Home Assistant: notification text and the summary sensor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridwatch.notices.client import Notice, Severity


def notification_text(notice: Notice) -> str:
    """The persistent notification body: message, numbered steps, footer.

    Args:
        notice: the notice.

    Returns:
        Markdown text (HA renders persistent notifications as markdown).
    """
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(notice.steps, 1))
    body = f"{notice.message}\n\n**What to do**\n{steps}" if steps else notice.message
    return f"{body}\n\n_Gridwatch · {notice.severity.value} · {notice.notice_id}_"


def push_text(notice: Notice, *, resolved: bool) -> tuple[str, str]:
    """Title and message of a push to a ``notify.*`` service.

    Args:
        notice: the notice pushed.
        resolved: True for the all-clear after a critical notice resolved.

    Returns:
        ``(title, message)``.
    """
    if resolved:
        return f"Resolved: {notice.title}", "The condition has cleared."
    return notice.title, notification_text(notice)


def summary_attributes(active: Mapping[str, Notice]) -> dict[str, Any]:
    """Attributes of ``sensor.<app>_active_notices`` (its state is the count).

    Args:
        active: active notices by id.

    Returns:
        ``notices`` (id -> severity), a count per severity, name and icon.
    """
    severities = {nid: n.severity.value for nid, n in sorted(active.items())}
    counts = {
        f"{s.value}_count": sum(1 for n in active.values() if n.severity is s) for s in Severity
    }
    return {
        "friendly_name": "Gridwatch active notices",
        "icon": "mdi:bell-alert" if active else "mdi:bell-check",
        "notices": severities,
        **counts,
    }
