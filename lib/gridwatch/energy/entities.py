"""The entities the energy tally publishes, built from a :class:`Tally`.

Entity ids (documented in the app):

* ``sensor.<meter slug>_energy_today`` / ``..._energy_this_month`` per meter,
  where the slug is the meter's *name* slugified (``Grid import`` ->
  ``grid_import``): names are what the user chose to show, statistic ids
  can be external (``tibber:energy_x``) and rarely read well.
* ``sensor.<app slug>_<role>_today`` / ``..._this_month`` per role.

Energy entities carry what HA's Energy dashboard and long-term statistics
need: kWh, ``device_class: energy``, ``state_class: total`` and
``last_reset`` at the period start.

``sensor.<app slug>_meters`` lists the meter slugs and roles the tally
publishes. It is read back at start: entities of a meter (or role) that is
no longer configured are then marked ``unavailable`` with a ``reason``, so a
renamed or removed meter leaves no value that looks current. It lives in HA
beside the entities it describes: when HA restarts and forgets them, it is
forgotten too, and nothing stale is left to retire (a state file would
outlive them and need a writable path on every install).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gridwatch.energy.cycle import CycleState
from gridwatch.energy.month_cache import MAX_PAGES_PER_CYCLE
from gridwatch.energy.recorder_statistics import REQUESTS_PER_CYCLE
from gridwatch.energy.tally import Meter, Role, RoleTotal, Tally
from gridwatch.hass.entity_update import EntityUpdate
from gridwatch.hass.ports import EntityState

__all__ = [
    "REMOVED_REASON",
    "meter_entity_ids",
    "registry_entity",
    "removed_entities",
    "role_entity_ids",
    "status_entities",
    "tally_entities",
]

# Published precision: 1 Wh. More digits are noise from float sums.
KWH_DECIMALS = 3
UNKNOWN = "unknown"


def meter_entity_ids(meter: Meter) -> tuple[str, str]:
    """Return a meter's (today, this month) entity ids."""
    return (f"sensor.{meter.slug}_energy_today", f"sensor.{meter.slug}_energy_this_month")


def role_entity_ids(app_slug: str, role: Role) -> tuple[str, str]:
    """Return a role total's (today, this month) entity ids."""
    return (f"sensor.{app_slug}_{role.value}_today", f"sensor.{app_slug}_{role.value}_this_month")


def _kwh(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.{KWH_DECIMALS}f}"


def _energy_attributes(
    friendly_name: str, period_start: datetime, zone: ZoneInfo, stale: bool
) -> dict[str, Any]:
    return {
        "friendly_name": friendly_name,
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total",
        "last_reset": period_start.astimezone(zone).isoformat(),
        "stale": stale,
    }


def _role_updates(
    app_slug: str, total: RoleTotal, tally: Tally, zone: ZoneInfo, stale: bool
) -> list[EntityUpdate]:
    today_id, month_id = role_entity_ids(app_slug, total.role)
    label = total.role.value.replace("_", " ")
    members = [m for m in tally.meters if m.meter.role is total.role]
    waiting = [m.meter.name for m in members if m.stale_reason]
    stale = stale or bool(waiting)
    extra = {
        # Members whose month is not up to date (their stale_reason says why).
        "stale_meters": waiting,
        "meters": [m.meter.name for m in members],
        "missing_meters": list(total.missing),
        # Changes every successful cycle, so HA's last_updated of a total
        # shows its age (the export guard reads the export total and checks
        # age); per-meter entities skip it to avoid rewriting all of them.
        "as_of": tally.periods.now.astimezone(zone).isoformat(),
    }
    return [
        EntityUpdate(
            today_id,
            _kwh(total.today_kwh),
            _energy_attributes(f"Site {label} today", tally.periods.today_start, zone, stale)
            | extra,
        ),
        EntityUpdate(
            month_id,
            _kwh(total.month_kwh),
            _energy_attributes(f"Site {label} this month", tally.periods.month_start, zone, stale)
            | extra,
        ),
    ]


def tally_entities(
    tally: Tally, app_slug: str, zone: ZoneInfo, *, stale: bool = False
) -> list[EntityUpdate]:
    """Build every energy entity of a tally.

    Args:
        tally: the (last good) tally.
        app_slug: the app's slug for the role totals.
        zone: local zone, for readable ``last_reset`` values.
        stale: mark the values as kept from an earlier cycle.

    Returns:
        Per meter today and month, then per role today and month.
    """
    updates: list[EntityUpdate] = []
    for result in tally.meters:
        meter = result.meter
        today_id, month_id = meter_entity_ids(meter)
        meter_stale = stale or result.stale_reason is not None
        common = {
            "statistic_id": meter.statistic_id,
            "role": meter.role.value if meter.role else None,
            "resets": len(result.resets),
            # Why the value is unknown though the recorder has rows (no sum).
            "problem": result.problem,
            # Why the month is not up to date yet (it is read on the next cycle).
            "stale_reason": result.stale_reason,
        }
        today_attrs = _energy_attributes(
            f"{meter.name} energy today", tally.periods.today_start, zone, meter_stale
        )
        today_attrs |= common
        # Which part of today is the live partial hour, for the curious.
        today_attrs["partial_hour_kwh"] = (
            None if result.partial_hour_kwh is None else round(result.partial_hour_kwh, 3)
        )
        month_attrs = _energy_attributes(
            f"{meter.name} energy this month", tally.periods.month_start, zone, meter_stale
        )
        month_attrs |= common
        updates.append(EntityUpdate(today_id, _kwh(result.today_kwh), today_attrs))
        updates.append(EntityUpdate(month_id, _kwh(result.month_kwh), month_attrs))
    for total in tally.totals.values():
        updates.extend(_role_updates(app_slug, total, tally, zone, stale))
    return updates


def status_entities(
    app_slug: str,
    state: CycleState,
    *,
    meters: int,
    failure_threshold: int,
    cycle_ms: float,
    requests_sent: int | None = None,
) -> list[EntityUpdate]:
    """Build ``sensor.<app>_health`` and ``sensor.<app>_last_update``.

    Args:
        app_slug: the app's slug.
        state: the state after the cycle.
        meters: number of configured meters.
        failure_threshold: failures in a row that make an error.
        cycle_ms: how long the cycle took.
        requests_sent: statistics requests the cycle sent (1 when the
            month's complete days were kept from an earlier cycle).

    Returns:
        The two entities.
    """
    last = state.last_success_at.isoformat() if state.last_success_at else UNKNOWN
    health = {
        "friendly_name": "Energy tally health",
        "consecutive_failures": state.failures,
        "failure_threshold": failure_threshold,
        "last_error": state.last_error,
        "last_success": last,
        "meters": meters,
        # The design's promise, shown where a user can check it.
        "statistics_requests_per_cycle": REQUESTS_PER_CYCLE,
        "statistics_requests_max": REQUESTS_PER_CYCLE + MAX_PAGES_PER_CYCLE,
        "statistics_requests_last_cycle": requests_sent,
        "cycle_ms": round(cycle_ms, 1),
    }
    return [
        EntityUpdate(f"sensor.{app_slug}_health", state.health.value, health),
        EntityUpdate(
            f"sensor.{app_slug}_last_update",
            last,
            {"friendly_name": "Energy tally last update", "device_class": "timestamp"},
        ),
    ]


REMOVED_REASON = "no longer configured in apps.yaml (meter removed or renamed)"
_SLUGS_ATTR = "meter_slugs"
_ROLES_ATTR = "roles"
# gridwatch.runtime.app_base.PUBLISHED_ENTITIES_ATTR (runtime sits above energy).
_PUBLISHED_ATTR = "published_entities"


def registry_entity(app_slug: str, meters: Sequence[Meter]) -> EntityUpdate:
    """Build ``sensor.<app>_meters``: what this tally publishes, read back at start.

    Args:
        app_slug: the app's slug.
        meters: the configured meters.

    Returns:
        The entity (state: the number of meters).
    """
    roles = sorted({m.role.value for m in meters if m.role is not None})
    published = [e for m in meters for e in meter_entity_ids(m)]
    published += [e for r in roles for e in role_entity_ids(app_slug, Role(r))]
    return EntityUpdate(
        f"sensor.{app_slug}_meters",
        len(meters),
        {
            "friendly_name": "Energy tally meters",
            _SLUGS_ATTR: [m.slug for m in meters],
            _ROLES_ATTR: roles,
            # Read by the app base when a later start is refused for a
            # configuration error: these are then marked unavailable too.
            _PUBLISHED_ATTR: published,
        },
    )


def _strings(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, str)]


def _retired(entity_id: str, friendly_name: str) -> EntityUpdate:
    return EntityUpdate(
        entity_id,
        "unavailable",
        {
            "friendly_name": friendly_name,
            "unit_of_measurement": "kWh",
            "device_class": "energy",
            "state_class": "total",
            "stale": True,
            "reason": REMOVED_REASON,
        },
    )


def removed_entities(
    previous: EntityState | None, meters: Iterable[Meter], app_slug: str
) -> list[EntityUpdate]:
    """Retire the entities of meters and roles the last run published and this one does not.

    Args:
        previous: ``sensor.<app>_meters`` as HA holds it, or ``None``.
        meters: the configured meters.
        app_slug: the app's slug.

    Returns:
        An ``unavailable`` update, with the reason, per retired entity.
    """
    if previous is None:
        return []
    meters = list(meters)
    slugs = {m.slug for m in meters}
    roles = {m.role.value for m in meters if m.role is not None}
    updates: list[EntityUpdate] = []
    for slug in _strings(previous.attributes.get(_SLUGS_ATTR)):
        if slug in slugs:
            continue
        today_id, month_id = f"sensor.{slug}_energy_today", f"sensor.{slug}_energy_this_month"
        updates += [
            _retired(today_id, f"{slug} energy today"),
            _retired(month_id, f"{slug} energy this month"),
        ]
    for role in _strings(previous.attributes.get(_ROLES_ATTR)):
        if role in roles or role not in {r.value for r in Role}:
            continue
        today_id, month_id = role_entity_ids(app_slug, Role(role))
        updates += [
            _retired(today_id, f"Site {role} today"),
            _retired(month_id, f"Site {role} this month"),
        ]
    return updates
