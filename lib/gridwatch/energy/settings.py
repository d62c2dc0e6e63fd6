"""The energy tally's validated options, as its run loop reads them.

:mod:`gridwatch.config.energy_tally_schema` validates ``apps.yaml`` into this.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridwatch.energy.tally import Meter

DEFAULT_REFRESH_EVENT = "gridwatch_energy_tally_refresh"


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
        time_zone: IANA zone overriding HA's, or ``None`` to use HA's.
    """

    meters: tuple[Meter, ...]
    interval_s: float = 300.0
    refresh_event: str = DEFAULT_REFRESH_EVENT
    failure_threshold: int = 3
    request_units: bool = True
    query_timeout_s: float = 15.0
    time_zone: str | None = None
