"""The data watchdog: a link that is connected but silent is not healthy.

A peer can keep a connection open (answer keepalive pings, TCP stays up)
while nothing flows: an MQTT broker whose in-flight window is stuck, a
gateway whose sensor task died. The connection looks fine, so only the
absence of data shows it. Pure: the link passes in the times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    OK = "ok"
    SILENT = "silent"  # report the link degraded
    RECONNECT = "reconnect"  # silent for so long that a new connection is due


@dataclass(frozen=True)
class DataWatchdog:
    """When silence on a connected link counts as a problem.

    Attributes:
        degraded_after_s: no message on any subscription for this long ->
            the link reports ``degraded``; None: never.
        reconnect_after_s: no message for this long -> the link drops the
            connection and reconnects; None: never.
    """

    degraded_after_s: float | None = None
    reconnect_after_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("degraded_after_s", "reconnect_after_s"):
            value = getattr(self, name)
            # "not (valid)" so a NaN is refused as well.
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    @property
    def enabled(self) -> bool:
        return self.degraded_after_s is not None or self.reconnect_after_s is not None

    def verdict(self, silent_for_s: float) -> Verdict:
        """What ``silent_for_s`` seconds without a message mean."""
        if self.reconnect_after_s is not None and silent_for_s >= self.reconnect_after_s:
            return Verdict.RECONNECT
        if self.degraded_after_s is not None and silent_for_s >= self.degraded_after_s:
            return Verdict.SILENT
        return Verdict.OK

    def next_check_in(self, silent_for_s: float) -> float | None:
        """Seconds until the verdict can next change (None: never)."""
        limits = [
            limit - silent_for_s
            for limit in (self.degraded_after_s, self.reconnect_after_s)
            if limit is not None and limit > silent_for_s
        ]
        return min(limits) if limits else None


# A link whose data is expected at least every ``interval`` (its
# ``stale_after_s``) and that has been silent three times that long while its
# connection looks fine is not slow: its path loses what the peer sends (a
# broker path that drops bytes, a bridge that stopped forwarding) while
# keepalives still pass. Three intervals ride out a late or missed report or
# two; a reconnect is cheap next to hours of silently missing data.
DEFAULT_RECONNECT_INTERVALS = 3.0


def default_reconnect_after(expected_interval_s: float | None) -> float | None:
    """The reconnect limit for a link whose data is expected at least every
    ``expected_interval_s`` (None: no known rate, no default)."""
    if expected_interval_s is None:
        return None
    return DEFAULT_RECONNECT_INTERVALS * expected_interval_s
