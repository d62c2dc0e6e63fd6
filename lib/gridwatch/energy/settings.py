"""The energy tally's validated options, as its run loop reads them.

:mod:`gridwatch.config.energy_tally_schema` validates ``apps.yaml`` into this.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridwatch.energy.month_cache import DEFAULT_RECHECK_DAYS
from gridwatch.energy.tally import Meter

DEFAULT_REFRESH_EVENT = "gridwatch_energy_tally_refresh"
# 1 Wh, the published precision: smaller steps back are meter or import
# rounding (0.4 Wh was seen), not a reset.
DEFAULT_RESET_TOLERANCE_KWH = 0.001


@dataclass(frozen=True)
class EnergyTallyConfig:
    """The energy tally's validated options.

    Attributes:
        meters: the meters, in the order given.
        interval_s: seconds between cycles.
        refresh_event: HA event type that triggers an extra cycle.
        failure_threshold: consecutive failed cycles before an error and a notice.
        request_units: ask the recorder to convert to kWh (else each meter's
            ``unit`` converts).
        query_timeout_s: timeout of each statistics request.
        time_zone: IANA zone; must equal HA's (the recorder groups days in
            HA's zone); used only until HA's zone is read. ``None``: HA's.
        recheck_days: complete days re-read hour by hour once an hour, so
            late statistics reach the month.
        reset_tolerance_kwh: a sum stepping back by up to this is a rounding
            (neither a reset nor counted), not a meter reset.
    """

    meters: tuple[Meter, ...]
    interval_s: float = 300.0
    refresh_event: str = DEFAULT_REFRESH_EVENT
    failure_threshold: int = 3
    request_units: bool = True
    query_timeout_s: float = 15.0
    time_zone: str | None = None
    recheck_days: int = DEFAULT_RECHECK_DAYS
    reset_tolerance_kwh: float = DEFAULT_RESET_TOLERANCE_KWH
