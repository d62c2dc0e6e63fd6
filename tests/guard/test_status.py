from dataclasses import replace

import pytest

from gridwatch.guard.decisions import Actuator, GuardState
from gridwatch.guard.status import (
    NO_ERROR,
    Condition,
    Health,
    Severity,
    conditions,
    notice_text,
    status,
)
from tests.guard.guard_helpers import CLOSED, HALF_OPEN, NOW, OPEN, ev, idle

ENTITIES = {
    "grid_power": "sensor.grid_power",
    "soc": "sensor.battery_soc",
    "export_today": "sensor.export_today",
    "enable": "input_boolean.discharge",
}


def test_all_clear_is_healthy_or_dry_run():
    assert status(idle(), ev(), CLOSED, dry_run=False).health is Health.HEALTHY
    result = status(idle(), ev(), CLOSED, dry_run=True)
    assert (result.health, result.error, result.conditions) == (Health.DRY_RUN, NO_ERROR, set())


@pytest.mark.parametrize(
    ("state", "evaluation", "breaker", "health", "error"),
    [
        (idle(), ev(grid_at=NOW - 40), CLOSED, Health.STALE_DATA, "stale_data"),
        (idle(), ev(grid="unavailable"), CLOSED, Health.STALE_DATA, "stale_data"),
        (idle(), ev(soc="abc"), CLOSED, Health.ERROR, "invalid_reading"),
        (idle(actuator_error="x"), ev(), CLOSED, Health.ERROR, "actuator_failure"),
        (idle(), ev(), OPEN, Health.BREAKER_OPEN, "breaker_open"),
        (idle(), ev(), HALF_OPEN, Health.BREAKER_OPEN, "breaker_open"),
        (
            GuardState(actuator=Actuator.UNKNOWN, stop_failed="x", actuator_error="x"),
            ev(grid="unavailable"),
            OPEN,
            Health.ERROR,
            "stop_failed",
        ),
        # Breaker open outranks stale data; invalid outranks stale.
        (idle(), ev(grid="unavailable"), OPEN, Health.BREAKER_OPEN, "breaker_open"),
        (idle(), ev(grid="unavailable", soc="abc"), CLOSED, Health.ERROR, "invalid_reading"),
    ],
)
def test_health_and_error_code(state, evaluation, breaker, health, error):
    result = status(state, evaluation, breaker, dry_run=True)
    assert (result.health, result.error) == (health, error)


def test_every_active_condition_is_listed():
    state = GuardState(actuator=Actuator.UNKNOWN, stop_failed="x", actuator_error="x")
    active = conditions(state, ev(grid="unavailable", soc="abc"), OPEN)
    assert active == set(Condition)


@pytest.mark.parametrize("condition", list(Condition))
def test_every_condition_has_a_notice_with_steps(condition):
    state = GuardState(actuator=Actuator.UNKNOWN, stop_failed="read back 'on'", actuator_error="y")
    text = notice_text(
        condition, "export_guard", state, ev(grid="unavailable", soc="abc"), OPEN, ENTITIES
    )
    assert text.title
    assert "export_guard" in text.message
    assert len(text.steps) >= 2
    expected = Severity.CRITICAL if condition is Condition.STOP_FAILED else Severity.WARNING
    assert text.severity is expected


def test_notices_name_the_entity_and_reason():
    stale = notice_text(Condition.STALE_DATA, "g", idle(), ev(grid="unavailable"), CLOSED, ENTITIES)
    assert "sensor.grid_power state is 'unavailable'" in stale.message
    invalid = notice_text(Condition.INVALID_READING, "g", idle(), ev(soc="150"), CLOSED, ENTITIES)
    assert "sensor.battery_soc out of range: 150 %" in invalid.message
    stop = notice_text(
        Condition.STOP_FAILED,
        "g",
        replace(idle(), stop_failed="read back 'on'"),
        ev(),
        OPEN,
        ENTITIES,
    )
    assert "read back 'on'" in stop.message
    assert "input_boolean.discharge" in stop.steps[0]


def test_stale_notice_text_does_not_change_while_data_ages():
    first = notice_text(Condition.STALE_DATA, "g", idle(), ev(grid_at=NOW - 40), CLOSED, ENTITIES)
    later = notice_text(Condition.STALE_DATA, "g", idle(), ev(grid_at=NOW - 90), CLOSED, ENTITIES)
    assert first == later
