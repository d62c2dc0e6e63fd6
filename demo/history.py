"""A believable past for the demo's meters: hourly recorder statistics.

A fresh Home Assistant has no statistics, so the energy tally has nothing to
count and its tiles read ``unknown`` for an hour or more. The demo therefore
gives its four meters ``HISTORY_DAYS`` days of hourly rows (``state`` = the
meter reading at the end of the hour, ``sum`` = HA's running sum), made from
the same site model the simulator runs, with a weather of its own each day.

Two days show what the tally (and HA) do with real-world rows:

* a **gap** (:data:`GAP_DAYS_AGO`, local :data:`GAP_HOURS`): HA was down and
  compiled no rows; the energy of those hours lands on the first row after
  them (its ``sum`` carries it), in the tally as in HA's Energy dashboard;
* a **meter reset** (:data:`RESET_DAYS_AGO`, local :data:`RESET_HOUR`): the
  grid import meter was replaced and its reading dropped from the old
  meter's count to the new one's; HA's recorder absorbs a reset of a
  ``total_increasing`` meter, so the ``sum`` runs on and no energy is lost
  or invented.

The rows end at the last complete hour with ``sum`` 0 and ``state`` = the
simulator's counters. That is where HA's recorder starts its own sums for a
sensor with no short-term statistics yet (the first reading is its zero
point), so the imported hours and the hours HA compiles from the live
sensors join without a step. Sums below 0 are fine: HA and the tally only
ever use differences.

Pure: the caller gives the current time and the counters.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from demo.entities import BATTERY_ENERGY, GRID_EXPORT_ENERGY, GRID_IMPORT_ENERGY, PV_ENERGY, Sensor
from demo.site_model import SiteParams, SiteState, house_load, pv_power

# "A month and more": the month tiles read whole months whatever the date.
HISTORY_DAYS: Final = 40
GAP_DAYS_AGO: Final = 2
GAP_HOURS: Final = range(10, 13)  # local 10:00-13:00 (the midday PV lands on 13:00)
RESET_DAYS_AGO: Final = 5
RESET_HOUR: Final = 14  # local hour in which the grid import meter was replaced
# The old grid import meter's reading above the new one's: a drop HA's
# recorder takes for a reset (the new reading under 90 % of the old).
OLD_METER_OFFSET_KWH: Final = 8000.0
# Samples per hour when integrating the site's powers (import and export
# are split per sample, as a meter does).
SAMPLES_PER_HOUR: Final = 12
# The evening battery discharge of every past day: local hours and power.
BATTERY_HOURS: Final = range(18, 22)
BATTERY_W: Final = 1400.0
HOUR: Final = timedelta(hours=1)


@dataclass(frozen=True)
class HourEnergy:
    """Energy of one hour, kWh, per meter."""

    imported: float
    exported: float
    pv: float
    battery_out: float


@dataclass(frozen=True)
class MeterHistory:
    """The rows to import for one meter.

    Attributes:
        sensor: the meter's sensor (its entity id is the statistic id).
        rows: ``{"start", "state", "sum"}`` per hour, start in UTC.
    """

    sensor: Sensor
    rows: tuple[dict[str, Any], ...]


# The meters with a past, and which counter of the site each one reads.
METERS: Final[tuple[tuple[Sensor, Callable[[SiteState], float]], ...]] = (
    (GRID_IMPORT_ENERGY, lambda s: s.imported_kwh),
    (GRID_EXPORT_ENERGY, lambda s: s.exported_kwh),
    (PV_ENERGY, lambda s: s.pv_kwh),
    (BATTERY_ENERGY, lambda s: s.battery_out_kwh),
)
_PICK: Final[tuple[Callable[[HourEnergy], float], ...]] = (
    lambda e: e.imported,
    lambda e: e.exported,
    lambda e: e.pv,
    lambda e: e.battery_out,
)


def day_weather(day_ordinal: int) -> float:
    """The day's mean cloud cover, 0 (clear) .. 0.9, the same for a date on every run."""
    return random.Random(day_ordinal).choice((0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9))


def hour_energy(local_start: datetime, params: SiteParams) -> HourEnergy:
    """The site's energy in the hour starting at ``local_start`` (local time)."""
    cloud_base = day_weather(local_start.toordinal())
    imported = exported = pv_kwh = battery_kwh = 0.0
    battery_w = BATTERY_W if local_start.hour in BATTERY_HOURS else 0.0
    for i in range(SAMPLES_PER_HOUR):
        hour = local_start.hour + (i + 0.5) / SAMPLES_PER_HOUR
        # Clouds come and go within the day around its mean.
        cloud = min(max(cloud_base + 0.2 * math.sin(hour * 2.3 + local_start.day), 0.0), 1.0)
        pv = pv_power(hour, params, cloud)
        grid = house_load(hour, params) - pv - battery_w
        share = 1.0 / SAMPLES_PER_HOUR / 1000.0  # W over a sample -> kWh
        imported += max(grid, 0.0) * share
        exported += max(-grid, 0.0) * share
        pv_kwh += pv * share
        battery_kwh += battery_w * share
    return HourEnergy(imported, exported, pv_kwh, battery_kwh)


def _in_gap(local_start: datetime, today: datetime) -> bool:
    return (
        today.date() - local_start.date()
    ).days == GAP_DAYS_AGO and local_start.hour in GAP_HOURS


def build_history(
    now: datetime,
    zone: tzinfo,
    counters: SiteState,
    *,
    days: int = HISTORY_DAYS,
    params: SiteParams | None = None,
) -> list[MeterHistory]:
    """Hourly rows for each meter from ``days`` days ago to the last complete hour.

    Args:
        now: the current time (timezone-aware).
        zone: HA's time zone (days, the gap and the reset are local).
        counters: the simulator's counters at ``now``: the last row's state.
        days: how many days back the history starts (local midnight).
        params: the site's sizes (default: the simulator's).

    Returns:
        One :class:`MeterHistory` per meter of :data:`METERS`.
    """
    params = params or SiteParams()
    local_now = now.astimezone(zone)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)  # last row ends here
    first_local = (local_now - timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    start = first_local.astimezone(UTC)
    hours: list[datetime] = []
    at = start
    while at < end:
        hours.append(at)
        at += HOUR
    energies = [hour_energy(h.astimezone(zone), params) for h in hours]
    histories = []
    for (sensor, counter), pick in zip(METERS, _PICK, strict=True):
        after = 0.0  # energy of the hours after the row's end
        rows: list[dict[str, Any]] = []
        reset_seen = False
        for h, energy in zip(reversed(hours), reversed(energies), strict=True):
            local = h.astimezone(zone)
            if sensor is GRID_IMPORT_ENERGY and _is_reset_hour(local, local_now):
                reset_seen = True
            state = counter(counters) - after
            if reset_seen and not _is_reset_hour(local, local_now):
                state += OLD_METER_OFFSET_KWH  # the old meter, before its replacement
            if not _in_gap(local, local_now):
                rows.append({"start": h, "state": round(state, 3), "sum": round(-after, 3)})
            after += pick(energy)
        histories.append(MeterHistory(sensor, tuple(reversed(rows))))
    return histories


def _is_reset_hour(local_start: datetime, today: datetime) -> bool:
    return (
        today.date() - local_start.date()
    ).days == RESET_DAYS_AGO and local_start.hour == RESET_HOUR
