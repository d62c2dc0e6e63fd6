"""The entities the export guard publishes, rendered from its state.

Pure: every entity's state and full attribute set, ready for
``set_entity``. Entity ids use the app's name as prefix.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gridwatch.guard.decisions import DischargeRequest, GuardState
from gridwatch.guard.readings import Evaluation
from gridwatch.guard.status import Status
from gridwatch.hass.entity_update import EntityUpdate
from gridwatch.hass.states import MAX_STATE_LENGTH
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState


def entity_ids(prefix: str) -> dict[str, str]:
    """The guard's entity ids, by role.

    Args:
        prefix: the app's name, slugged.
    """
    return {
        "health": f"sensor.{prefix}_health",
        "error": f"sensor.{prefix}_error",
        "data_age": f"sensor.{prefix}_data_age",
        "breaker": f"binary_sensor.{prefix}_breaker_open",
        "headroom_power": f"sensor.{prefix}_export_headroom_power",
        "headroom_energy": f"sensor.{prefix}_export_headroom_energy",
        "last_action": f"sensor.{prefix}_last_action",
        "heartbeat": f"sensor.{prefix}_heartbeat",
        "request": f"sensor.{prefix}_request",
    }


def render_request(prefix: str, request: DischargeRequest | None) -> EntityUpdate:
    """The standing request as a fact a restarted guard reads back: ``on``
    with its power and wall-clock end (``until``: ``None`` until stopped),
    or ``off``. Written before the guard acts on a change of it.

    Args:
        prefix: entity id prefix (the app's name, slugged).
        request: the request standing now, if any.
    """
    name = prefix.replace("_", " ").title()
    until = None
    if request is not None and request.until_wall is not None:
        until = request.until_wall.isoformat(timespec="seconds")
    return EntityUpdate(
        entity_ids(prefix)["request"],
        "off" if request is None else "on",
        {
            "friendly_name": f"{name} request",
            "icon": "mdi:battery-clock",
            "power_w": None if request is None else request.power_w,
            "until": until,
        },
    )


def render(
    prefix: str,
    state: GuardState,
    ev: Evaluation,
    breaker: BreakerSnapshot,
    status: Status,
    *,
    dry_run: bool,
    now_mono: float,
    now_wall: datetime,
    heartbeat_s: float = 30.0,
) -> list[EntityUpdate]:
    """Every entity with its state and full attributes.

    Args:
        prefix: entity id prefix (the app's name, slugged).
        state: the guard state.
        ev: the readings' evaluation.
        breaker: the breaker now.
        status: health and error.
        dry_run: the guard only simulates.
        now_mono: monotonic now (to date the breaker's last failure).
        now_wall: wall-clock now.
        heartbeat_s: the heartbeat advances in steps of this (a changed-only
            writer then writes it once a step, not once a decision).

    Returns:
        The entities, in a stable order.
    """
    ids = entity_ids(prefix)
    name = prefix.replace("_", " ").title()
    last_failure = None
    if breaker.last_failure_at is not None:
        ago = max(0.0, now_mono - breaker.last_failure_at)
        last_failure = (now_wall - timedelta(seconds=ago)).isoformat(timespec="seconds")
    reasons = {c.name.value: c.reason for c in ev.checks if c.reason}
    request = state.request
    left = None
    if request is not None and request.until is not None:
        left = round(max(request.until - now_mono, 0.0) / 60.0, 2)
    step = max(heartbeat_s, 1.0)
    beat = datetime.fromtimestamp(now_wall.timestamp() // step * step, now_wall.tzinfo)
    est = state.estimate
    return [
        EntityUpdate(
            ids["health"],
            status.health.value,
            {
                "friendly_name": f"{name} health",
                "icon": "mdi:shield-check",
                "conditions": sorted(c.value for c in status.conditions),
                "dry_run": dry_run,
                # A stop the plant has not been seen to follow is not "off".
                "discharge": (
                    "unknown"
                    if state.stop_failed or state.supervision.alarm
                    else state.actuator.value
                ),
                "discharge_power_w": round(state.power_w),
                "requested": request is not None,
                "request_power_w": None if request is None else request.power_w,
                "request_minutes_left": left,
                "uncontrolled_export_w": (
                    None if est.uncontrolled_w is None else round(est.uncontrolled_w)
                ),
                "reading_settled": est.settled,
            },
        ),
        EntityUpdate(
            ids["error"],
            status.error,
            {
                "friendly_name": f"{name} error",
                "icon": "mdi:alert-circle-outline",
                "readings": reasons,
                "actuator_error": state.actuator_error,
                "plant_error": state.plant_error,
                "stop_failed": state.supervision.alarm or state.stop_failed,
                "supervisor_fault": state.supervision.fault,
            },
        ),
        EntityUpdate(
            ids["data_age"],
            None if ev.data_age_s is None else round(ev.data_age_s),
            {
                "friendly_name": f"{name} data age",
                "unit_of_measurement": "s",
                "device_class": "duration",
                "state_class": "measurement",
            },
        ),
        EntityUpdate(
            ids["breaker"],
            breaker.state is not BreakerState.CLOSED,
            {
                "friendly_name": f"{name} breaker open",
                "device_class": "problem",
                "state": breaker.state.value,
                "failure_count": breaker.failure_count,
                "last_failure": last_failure,
                "last_failure_reason": breaker.last_failure_reason,
                "can_attempt": breaker.can_attempt,
            },
        ),
        EntityUpdate(
            ids["headroom_power"],
            None if ev.power_headroom_w is None else round(ev.power_headroom_w),
            {
                "friendly_name": f"{name} export headroom power",
                "unit_of_measurement": "W",
                "device_class": "power",
                "state_class": "measurement",
                "export_w": None if ev.export_w is None else round(ev.export_w),
                "pv_power_w": None if ev.pv is None or ev.pv.value is None else round(ev.pv.value),
            },
        ),
        EntityUpdate(
            ids["headroom_energy"],
            None if ev.energy_headroom_kwh is None else round(ev.energy_headroom_kwh, 3),
            {
                "friendly_name": f"{name} export headroom energy",
                "unit_of_measurement": "kWh",
                "exported_today_kwh": ev.exported_today_kwh,
            },
        ),
        EntityUpdate(
            ids["last_action"],
            state.last_action[:MAX_STATE_LENGTH],
            {
                "friendly_name": f"{name} last action",
                "icon": "mdi:battery-arrow-down",
                "last_stop_reason": state.last_stop_reason,
                "dry_run": dry_run,
            },
        ),
        render_request(prefix, request),
        EntityUpdate(
            ids["heartbeat"],
            beat.isoformat(timespec="seconds"),
            {
                "friendly_name": f"{name} heartbeat",
                "device_class": "timestamp",
                "icon": "mdi:heart-pulse",
                "interval_s": step,
            },
        ),
    ]
