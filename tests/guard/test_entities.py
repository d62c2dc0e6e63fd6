from dataclasses import replace
from datetime import UTC, datetime

from gridwatch.guard.entities import entity_ids, render
from gridwatch.guard.status import status
from gridwatch.hass.states import MAX_STATE_LENGTH
from gridwatch.safety.breaker import BreakerSnapshot, BreakerState
from tests.guard.guard_helpers import CLOSED, NOW, discharging, ev

WALL = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def published(state, evaluation, breaker, *, dry_run=False):
    st = status(state, evaluation, breaker, dry_run=dry_run)
    items = render(
        "eg", state, evaluation, breaker, st, dry_run=dry_run, now_mono=NOW, now_wall=WALL
    )
    return {item.entity_id: item for item in items}


def test_every_entity_of_the_issue_is_published_with_the_prefix():
    items = published(discharging(), ev(grid=1000.0), CLOSED)
    assert (
        set(items)
        == set(entity_ids("eg").values())
        == {
            "sensor.eg_health",
            "sensor.eg_error",
            "sensor.eg_data_age",
            "binary_sensor.eg_breaker_open",
            "sensor.eg_export_headroom_power",
            "sensor.eg_export_headroom_energy",
            "sensor.eg_last_action",
            "sensor.eg_heartbeat",
            "sensor.eg_request",
        }
    )
    assert items["sensor.eg_export_headroom_power"].state == 1900
    assert items["sensor.eg_export_headroom_power"].attributes["unit_of_measurement"] == "W"
    assert items["sensor.eg_export_headroom_energy"].state == 8.5
    assert items["sensor.eg_health"].attributes["discharge"] == "on"
    assert items["binary_sensor.eg_breaker_open"].state is False


def test_breaker_attributes_date_the_last_failure_in_wall_time():
    breaker = BreakerSnapshot(BreakerState.OPEN, 5, NOW - 90, "read back 'off'", False)
    attrs = published(discharging(), ev(), breaker)["binary_sensor.eg_breaker_open"].attributes
    assert attrs["failure_count"] == 5
    assert attrs["last_failure"] == "2026-06-01T11:58:30+00:00"
    assert attrs["last_failure_reason"] == "read back 'off'"
    assert attrs["can_attempt"] is False


def test_unknown_values_are_published_as_unknown_not_zero():
    items = published(discharging(), ev(grid="unavailable", at=None), CLOSED)
    assert items["sensor.eg_export_headroom_power"].state is None
    assert items["sensor.eg_data_age"].state is None


def test_last_action_fits_an_ha_state():
    state = replace(discharging(), last_action="x" * 400)
    assert len(published(state, ev(), CLOSED)["sensor.eg_last_action"].state) == MAX_STATE_LENGTH
