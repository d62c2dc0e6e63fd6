"""Notices: how every Gridwatch app tells the person something is wrong.

Apps never call the notifier app directly (no ``get_app``). They fire the HA
event :data:`NOTICE_EVENT` through a :class:`NoticeClient`; the notifier app
turns it into a persistent notification (and a push for critical notices).

Event data (``gridwatch_notice``)::

    action:    "raise" | "resolve"
    notice_id: "<app>_<condition>"        stable per condition
    severity:  "info" | "warning" | "critical"   (raise only)
    title:     str                          (raise only)
    message:   str                          (raise only)
    steps:     list[str]                    (raise only; resolution steps)

When the notifier (re)starts it fires :data:`RESYNC_EVENT`; every started
client answers by re-firing its active notices, so a reloaded notifier does
not forget conditions that are still true.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from gridwatch.hass.ports import EventBus, Handle
from gridwatch.hass.states import slugify as slug

NOTICE_EVENT: Final = "gridwatch_notice"
RESYNC_EVENT: Final = "gridwatch_notice_resync"

# notice ids become HA notification ids and entity attribute keys: keep them
# to the slug alphabet HA uses for object ids.
_ID_RE: Final = re.compile(r"^[a-z0-9_]+$")
# A title longer than this is cut by HA's notification drawer anyway.
MAX_TITLE_LEN: Final = 120
MAX_MESSAGE_LEN: Final = 4000
MAX_STEPS: Final = 20


class Severity(StrEnum):
    """How urgent a notice is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Action(StrEnum):
    """What a notice event asks for."""

    RAISE = "raise"
    RESOLVE = "resolve"


class NoticeError(ValueError):
    """A notice or notice event is malformed. The message names each problem."""


def notice_id(app_name: str, condition: str) -> str:
    """The stable id of an app's condition: ``<app>_<condition>``.

    Raises:
        NoticeError: either part is empty after slugging.
    """
    app, cond = slug(app_name), slug(condition)
    if not app or not cond:
        raise NoticeError(
            f"notice id needs an app and a condition, got {app_name!r}, {condition!r}"
        )
    return f"{app}_{cond}"


@dataclass(frozen=True)
class Notice:
    """One condition to tell the person about.

    Attributes:
        notice_id: ``<app>_<condition>``; also the HA ``notification_id``.
        severity: info, warning or critical.
        title: short headline.
        message: what is wrong, with the values that show it.
        steps: what to do about it, in order.
    """

    notice_id: str
    severity: Severity
    title: str
    message: str
    steps: tuple[str, ...] = ()

    def to_event_data(self) -> dict[str, Any]:
        """The ``gridwatch_notice`` event data raising this notice."""
        return {
            "action": Action.RAISE.value,
            "notice_id": self.notice_id,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "steps": list(self.steps),
        }


@dataclass(frozen=True)
class NoticeRequest:
    """A parsed ``gridwatch_notice`` event.

    Attributes:
        action: raise or resolve.
        notice_id: the notice concerned.
        notice: the full notice for a raise, ``None`` for a resolve.
    """

    action: Action
    notice_id: str
    notice: Notice | None = None


def resolve_event_data(nid: str) -> dict[str, Any]:
    """The ``gridwatch_notice`` event data resolving notice ``nid``."""
    return {"action": Action.RESOLVE.value, "notice_id": nid}


def parse_notice_event(data: Mapping[str, Any]) -> NoticeRequest:
    """Validate ``gridwatch_notice`` event data.

    Args:
        data: the event data as received (untrusted: any app or a user
            firing the event by hand may have sent it).

    Returns:
        The parsed request.

    Raises:
        NoticeError: naming every problem found.
    """
    problems: list[str] = []
    action_raw = data.get("action")
    action = Action(action_raw) if action_raw in {a.value for a in Action} else None
    if action is None:
        problems.append(f"action must be 'raise' or 'resolve', got {action_raw!r}")
    nid = data.get("notice_id")
    if not isinstance(nid, str) or not _ID_RE.match(nid):
        problems.append(f"notice_id must be a non-empty [a-z0-9_] string, got {nid!r}")
    if action is not Action.RAISE:
        if problems:
            raise NoticeError("; ".join(problems))
        return NoticeRequest(Action.RESOLVE, str(nid))

    sev_raw = data.get("severity")
    severity = Severity(sev_raw) if sev_raw in {s.value for s in Severity} else None
    if severity is None:
        problems.append(f"severity must be one of info, warning, critical, got {sev_raw!r}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(f"title must be a non-empty string, got {title!r}")
    message = data.get("message")
    if not isinstance(message, str):
        problems.append(f"message must be a string, got {type(message).__name__}")
    steps_raw = data.get("steps", [])
    if not isinstance(steps_raw, list | tuple) or not all(isinstance(s, str) for s in steps_raw):
        problems.append("steps must be a list of strings")
        steps_raw = []
    if problems:
        raise NoticeError("; ".join(problems))
    # Narrowing for the type checker: each was checked above.
    assert severity is not None
    assert isinstance(title, str)
    assert isinstance(message, str)
    notice = Notice(
        notice_id=str(nid),
        severity=severity,
        title=title.strip()[:MAX_TITLE_LEN],
        message=message[:MAX_MESSAGE_LEN],
        steps=tuple(steps_raw[:MAX_STEPS]),
    )
    return NoticeRequest(Action.RAISE, notice.notice_id, notice)


class NoticeClient:
    """Raises and resolves an app's notices by firing ``gridwatch_notice``.

    Dedupes at the source: an unchanged raise of an active notice fires
    nothing, and neither does a resolve of a notice this client knows is
    inactive. The FIRST resolve of a condition after the client starts is
    always sent: AppDaemon 4.5.13 re-creates apps when HA reconnects, so an
    earlier instance of the app may have raised it and the notifier (which
    keeps its notices across restarts) still shows it.

    Args:
        hass: the event bus (an app's :class:`~gridwatch.hass.ports.HassPort`).
        app_name: the app's name; notice ids are ``<app_name>_<condition>``.
    """

    def __init__(self, hass: EventBus, app_name: str) -> None:
        self._hass = hass
        self.app_name = app_name
        self._active: dict[str, Notice] = {}
        self._known_inactive: set[str] = set()
        self._resync_handle: Handle | None = None

    @property
    def active(self) -> Mapping[str, Notice]:
        """Notices raised and not resolved, by notice id."""
        return dict(self._active)

    def notice_id(self, condition: str) -> str:
        """The notice id this client uses for ``condition``."""
        return notice_id(self.app_name, condition)

    async def start(self) -> None:
        """Answer the notifier's resync request (re-fire active notices)."""
        if self._resync_handle is None:
            self._resync_handle = await self._hass.listen_event(RESYNC_EVENT, self._on_resync)

    async def stop(self) -> None:
        """Stop answering resync requests."""
        handle, self._resync_handle = self._resync_handle, None
        if handle is not None:
            await handle.cancel()

    async def raise_notice(
        self,
        condition: str,
        severity: Severity | str,
        title: str,
        message: str,
        steps: Sequence[str] = (),
    ) -> bool:
        """Raise (or update) the notice for ``condition``.

        Args:
            condition: what is wrong, e.g. ``"stale_data"``.
            severity: ``info``/``warning``/``critical``.
            title: short headline.
            message: what is wrong, with values.
            steps: what the person should do.

        Returns:
            True if an event was fired; False if the same notice is already active.

        Raises:
            NoticeError: unknown severity or empty condition.
        """
        try:
            sev = Severity(severity)
        except ValueError as err:
            raise NoticeError(f"unknown severity {severity!r}") from err
        notice = Notice(self.notice_id(condition), sev, title, message, tuple(steps))
        if self._active.get(notice.notice_id) == notice:
            return False
        # Recorded only once the event is out: a failed fire must not make the
        # next identical raise look like a duplicate (a critical notice would
        # then never reach the person).
        await self._hass.fire_event(NOTICE_EVENT, notice.to_event_data())
        self._active[notice.notice_id] = notice
        self._known_inactive.discard(notice.notice_id)
        return True

    async def resolve(self, condition: str) -> bool:
        """Resolve the notice for ``condition``.

        Returns:
            True if an event was fired; False if the notice is known inactive.
        """
        nid = self.notice_id(condition)
        if nid not in self._active and nid in self._known_inactive:
            return False
        await self._hass.fire_event(NOTICE_EVENT, resolve_event_data(nid))
        self._active.pop(nid, None)
        self._known_inactive.add(nid)
        return True

    async def _on_resync(self, _event: str, _data: Mapping[str, Any]) -> None:
        for notice in list(self._active.values()):
            await self._hass.fire_event(NOTICE_EVENT, notice.to_event_data())
