"""What the export guard publishes: health, error code, and the notices a
person sees, each with the steps that resolve it.

Pure: derived from the guard state, the readings' evaluation and the breaker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gridwatch.guard.decisions import GuardState
from gridwatch.guard.readings import Evaluation, ReadingCheck
from gridwatch.notices.client import Severity
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState


class Health(StrEnum):
    HEALTHY = "healthy"
    ERROR = "error"
    STALE_DATA = "stale_data"
    BREAKER_OPEN = "breaker_open"
    DRY_RUN = "dry_run"


class Condition(StrEnum):
    """Error codes; each active one is also a notice. Declared most severe first."""

    STOP_FAILED = "stop_failed"
    BREAKER_OPEN = "breaker_open"
    ACTUATOR_FAILURE = "actuator_failure"
    INVALID_READING = "invalid_reading"
    STALE_DATA = "stale_data"


NO_ERROR = "none"


@dataclass(frozen=True)
class NoticeText:
    """A notice for one condition.

    Attributes:
        severity: info / warning / critical.
        title: short headline.
        message: what is wrong, with the values.
        steps: what the person can do, in order.
    """

    severity: Severity
    title: str
    message: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class Status:
    """Health, the most severe error code, and every active condition."""

    health: Health
    error: str
    conditions: frozenset[Condition]


def conditions(state: GuardState, ev: Evaluation, breaker: BreakerSnapshot) -> frozenset[Condition]:
    """Every condition active now.

    Args:
        state: the guard state.
        ev: the readings' evaluation.
        breaker: the breaker now.

    Returns:
        The set of active conditions (empty when all is well).
    """
    active: set[Condition] = set()
    if state.stop_failed is not None or state.supervision.alarm is not None:
        active.add(Condition.STOP_FAILED)
    if breaker.state is not BreakerState.CLOSED:
        active.add(Condition.BREAKER_OPEN)
    sup = state.supervision
    # While a failed stop stands the actuator is failing, whatever the last
    # read-back said: one steady notice, not one raised and resolved with
    # each retry.
    if state.actuator_error or state.plant_error or sup.fault or sup.alarm:
        active.add(Condition.ACTUATOR_FAILURE)
    if ev.invalid:
        active.add(Condition.INVALID_READING)
    if ev.stale:
        active.add(Condition.STALE_DATA)
    return frozenset(active)


def status(state: GuardState, ev: Evaluation, breaker: BreakerSnapshot, *, dry_run: bool) -> Status:
    """Health and error code to publish.

    Args:
        state: the guard state.
        ev: the readings' evaluation.
        breaker: the breaker now.
        dry_run: the guard only simulates actions.

    Returns:
        The status; ``error`` is the most severe active condition or ``none``.
    """
    active = conditions(state, ev, breaker)
    error = next((c.value for c in Condition if c in active), NO_ERROR)
    if Condition.STOP_FAILED in active:
        health = Health.ERROR
    elif Condition.BREAKER_OPEN in active:
        health = Health.BREAKER_OPEN
    elif active & {Condition.ACTUATOR_FAILURE, Condition.INVALID_READING}:
        health = Health.ERROR
    elif Condition.STALE_DATA in active:
        health = Health.STALE_DATA
    else:
        health = Health.DRY_RUN if dry_run else Health.HEALTHY
    return Status(health, error, active)


def notice_text(
    condition: Condition,
    app: str,
    state: GuardState,
    ev: Evaluation,
    breaker: BreakerSnapshot,
    entities: Mapping[str, str],
) -> NoticeText:
    """The notice for one active condition.

    Args:
        condition: which one.
        app: the app's name (entity prefix).
        state: the guard state (reasons of failures).
        ev: the readings' evaluation (which reading, what value).
        breaker: the breaker (failure count, last reason).
        entities: reading name -> entity id, and ``enable`` -> the discharge
            enable entity, to name them in the steps.

    Returns:
        Severity, title, message and resolution steps.
    """
    enable = entities.get("enable", "the discharge switch")
    if condition is Condition.STOP_FAILED:
        # The supervisor's finding first: it stands (one text) until the
        # plant shows the stop, while the controller's own may come and go.
        why = state.supervision.alarm or state.stop_failed
        return NoticeText(
            Severity.CRITICAL,
            "Battery discharge could NOT be stopped",
            f"{app} tried to stop the battery discharge and could not verify it "
            f"stopped: {why}. The battery may still be exporting to the "
            "grid, and the export limit may be exceeded. The guard keeps retrying.",
            (
                f"Check {enable} in Home Assistant and turn it off by hand.",
                "If it does not turn off, stop the discharge in the inverter's own app "
                "or at the inverter.",
                "Check the inverter's integration and connection (Settings > Devices).",
                "This notice clears by itself once a stop is verified.",
            ),
        )
    if condition is Condition.BREAKER_OPEN:
        retry = (
            "a test call is allowed now"
            if breaker.can_attempt
            else "no new discharge is started until a test call succeeds"
        )
        return NoticeText(
            Severity.WARNING,
            "Battery control paused after repeated failures",
            f"{app}: {breaker.failure_count} actuator calls in a row failed "
            f"(last: {breaker.last_failure_reason}); {retry}. Stopping is still attempted.",
            (
                f"Check that {enable} and the discharge power entity respond in Home Assistant.",
                "Check the inverter's integration and its connection.",
                "The guard tries again by itself once breaker_reset_s (apps.yaml, "
                "60 s by default) has passed since the last failure; "
                "this notice clears when a call succeeds.",
            ),
        )
    sup = state.supervision
    sign_text = (state.plant_error if state.wrong_way else None) or (
        sup.fault if sup.wrong_way else None
    )
    if condition is Condition.ACTUATOR_FAILURE and sign_text:
        grid = entities.get("grid_power", "the grid power sensor")
        return NoticeText(
            Severity.WARNING,
            "Export guard: the grid sensor's sign looks wrong",
            f"{app}: {sign_text}. The discharge was stopped, and each stop "
            "worked: the battery follows, but the grid reading moves the other way.",
            (
                f"Open {grid} while the battery discharges: if export shows as a "
                "positive number, set grid_sign: export_positive in apps.yaml; if it "
                "shows as negative, set grid_sign: import_positive.",
                "Check that grid_power is the grid connection's meter, not a load or PV sensor.",
                "This notice clears when a change shows on the grid as expected.",
            ),
        )
    if condition is Condition.ACTUATOR_FAILURE:
        return NoticeText(
            Severity.WARNING,
            "Battery actuator did not respond as expected",
            f"{app}: {sup.alarm or state.plant_error or sup.fault or state.actuator_error}. "
            "The discharge was stopped to stay safe.",
            (
                f"Check that {enable} and the discharge power entity can be changed "
                "in Home Assistant.",
                "Check the inverter's integration and connection.",
                "This notice clears after the next verified action.",
            ),
        )
    checks = ev.invalid if condition is Condition.INVALID_READING else ev.stale
    listed = "; ".join(_describe(c, entities) for c in checks)
    if condition is Condition.INVALID_READING:
        return NoticeText(
            Severity.WARNING,
            "Export guard received an implausible reading",
            f"{app}: {listed}. No discharge runs while a reading is implausible.",
            (
                "Open the entity in Home Assistant and check its value and unit "
                "(W for power, % for SoC, kWh for energy).",
                "If the sensor reports another unit or sign, adjust the guard's "
                "configuration in apps.yaml (min / max under readings.<name>, grid_sign).",
                "This notice clears when the reading is plausible again.",
            ),
        )
    return NoticeText(
        Severity.WARNING,
        "Export guard has no current data",
        f"{app}: {listed}. No discharge runs without current data.",
        (
            "Check that the integration or device that provides the entity is online.",
            "If the sensor only reports on change (or Home Assistant is older than 2024.4), "
            "raise its max_age_s in apps.yaml.",
            "This notice clears when fresh readings arrive.",
        ),
    )


def _describe(check: ReadingCheck, entities: Mapping[str, str]) -> str:
    entity = entities.get(check.name.value, check.name.value)
    return f"{entity} {check.reason}"
