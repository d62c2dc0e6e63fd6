"""The notifier app's ``apps.yaml`` schema.

Example entry::

    notifier:
      module: gridwatch_notifier
      class: Notifier
      min_repost_s: 60            # rate limit: one post per notice per minute
      push_services:              # critical notices also go here ...
        - notify.mobile_app_phone
      repeat_minutes: 15          # ... again every 15 min until resolved (0: once)
      tick_s: 10
      # state_file: /config/gridwatch_notices.json   (default: next to appdaemon.yaml)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from marshmallow import ValidationError, fields, post_load

from gridwatch.config.base import ConfigSchema, bounded_float

_NOTIFY_SERVICE: Final = re.compile(r"^notify[./][a-z0-9_]+$")


@dataclass(frozen=True)
class NotifierConfig:
    """The notifier's validated options.

    Attributes:
        min_repost_s: at most one post of a notice per this many seconds.
        push_services: ``notify/<name>`` services for critical notices.
        repeat_s: repeat period of critical pushes (``None``: push once).
        tick_s: how often held posts and repeats are checked.
        service_timeout_s: timeout of each HA service call.
        state_file: where active notices are kept ("" : the default path).
    """

    min_repost_s: float = 60.0
    push_services: tuple[str, ...] = ()
    repeat_s: float | None = 900.0
    tick_s: float = 10.0
    service_timeout_s: float = 10.0
    state_file: str = ""


def _notify_service(value: str) -> None:
    if not _NOTIFY_SERVICE.match(value):
        raise ValidationError(f"{value!r} is not a notify service like notify.mobile_app_phone")


class NotifierSchema(ConfigSchema):
    """Validates the notifier entry; builds :class:`NotifierConfig`."""

    min_repost_s = bounded_float(
        60.0, 0, 86400, example=60, description="rate limit per notice, seconds"
    )
    push_services = fields.List(
        fields.String(validate=_notify_service),
        load_default=list,
        metadata={"example": ["notify.mobile_app_phone"]},
    )
    repeat_minutes = bounded_float(
        15.0, 0, 1440, example=15, description="critical push repeat; 0 pushes once"
    )
    tick_s = bounded_float(10.0, 1, 300, example=10)
    service_timeout_s = bounded_float(10.0, 1, 60, example=10)
    state_file = fields.String(
        load_default="", metadata={"example": "/config/gridwatch_notices.json"}
    )

    @post_load
    def _make_config(self, data: dict[str, Any], **_kwargs: Any) -> NotifierConfig:
        repeat_min = data["repeat_minutes"]
        return NotifierConfig(
            min_repost_s=data["min_repost_s"],
            push_services=tuple(s.replace(".", "/", 1) for s in data["push_services"]),
            repeat_s=repeat_min * 60.0 if repeat_min > 0 else None,
            tick_s=data["tick_s"],
            service_timeout_s=data["service_timeout_s"],
            state_file=data["state_file"],
        )
