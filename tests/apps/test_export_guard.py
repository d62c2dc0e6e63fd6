"""The export guard app on the fake HA: requests, following headroom, fail-safe
stops, breaker, notices, dry run, published entities."""

from __future__ import annotations

import pytest

from gridwatch.notices.client import NOTICE_EVENT
from gridwatch_export_guard import ExportGuard
from tests.support.app_harness import make_app
from tests.support.fake_hass import Fail, FakeHass, Succeed

GRID, SOC, EXPORTED = "sensor.grid_power", "sensor.battery_soc", "sensor.grid_export_today"
ENABLE, POWER = "input_boolean.battery_discharge", "input_number.battery_discharge_power"
REQUEST = "input_boolean.discharge_request"
EVENT = "gridwatch_export_guard"
ARGS = {
    "export_limit_w": 3000,
    "deadband_w": 100,
    "daily_export_cap_kwh": 10,
    "cap_margin_kwh": 0.5,
    "min_soc_pct": 20,
    "max_discharge_w": 5000,
    "readings": {
        "grid_power": {"entity": GRID},
        "soc": {"entity": SOC, "max_age_s": 600},
        "export_today": {"entity": EXPORTED, "max_age_s": 600},
    },
    "actuators": {"enable": {"entity": ENABLE}, "power": {"entity": POWER}},
    "request_entity": REQUEST,
    # One read-back, one attempt: a failing actuator fails at once in tests.
    "verify_within_s": 0,
    "attempts": 1,
    # These readings are written export positive (the default is HA's own,
    # import positive: see test_default_grid_sign_is_import_positive).
    "grid_sign": "export_positive",
    "settle_s": 2,
    # These tests write the grid reading by hand, with no plant behind it:
    # the response checks would (rightly) see a battery that does nothing.
    # Only changes of the whole max_discharge_w are checked here (the most
    # the schema lets them be raised to); tests/guard/test_plant.py drives
    # a plant and checks every change.
    "response_min_w": 5000,
    "max_raise_step_w": 5000,
}
# Past the start-up stop's settle time and the request's debounce.
WARM_UP_S = 3


def entity(hass: FakeHass, suffix: str) -> str | None:
    state = hass.state_of(f"{suffix.split('.')[0]}.export_guard_{suffix.split('.')[1]}")
    assert state is not None, suffix
    return state.raw


def attrs(hass: FakeHass, suffix: str):
    state = hass.state_of(f"{suffix.split('.')[0]}.export_guard_{suffix.split('.')[1]}")
    assert state is not None
    return state.attributes


def notices(hass: FakeHass) -> dict[str, str]:
    """Latest action per notice id."""
    latest: dict[str, str] = {}
    for data in hass.events_of(NOTICE_EVENT):
        latest[data["notice_id"]] = data["action"]
    return latest


def severity_of(hass: FakeHass, nid: str) -> str:
    raised = [
        d for d in hass.events_of(NOTICE_EVENT) if d["notice_id"] == nid and d["action"] == "raise"
    ]
    return raised[-1]["severity"]


async def settle(app: ExportGuard) -> None:
    """Let the action in flight (and any it triggers) finish, and its entities
    be written."""
    assert app.controller is not None
    await app.controller.wait_idle()


@pytest.fixture
def hass():
    world = FakeHass()
    world.seed(GRID, "0", {"unit_of_measurement": "W"})
    world.seed(SOC, "80")
    world.seed(EXPORTED, "1.0")
    world.seed(ENABLE, "off")
    world.seed(POWER, "0")
    world.seed(REQUEST, "off")
    return world


async def start_app(hass, **overrides):
    app = make_app(ExportGuard, {**ARGS, **overrides}, hass, name="export_guard")
    await app.initialize()
    assert app.hass_port is not None, "app refused to start"
    await settle(app)
    return app


@pytest.fixture
async def app(hass):
    guard = await start_app(hass)
    yield guard
    await guard.terminate()


async def start(hass, app, **data):
    await hass.fire_event(EVENT, {"action": "start", **data})
    await settle(app)
    await hass.advance(WARM_UP_S)
    await settle(app)


def power_values(hass):
    return [c.data["value"] for c in hass.calls_to("input_number/set_value")]


async def test_startup_verifies_a_stop_and_publishes_every_entity(hass, app):
    assert len(hass.calls_to("input_boolean/turn_off")) == 1
    assert entity(hass, "sensor.health") == "healthy"
    assert entity(hass, "sensor.error") == "none"
    assert entity(hass, "sensor.data_age") == "0"
    assert entity(hass, "binary_sensor.breaker_open") == "off"
    assert attrs(hass, "binary_sensor.breaker_open")["failure_count"] == 0
    assert attrs(hass, "binary_sensor.breaker_open")["can_attempt"] is True
    assert entity(hass, "sensor.export_headroom_power") == "2900"
    assert entity(hass, "sensor.export_headroom_energy") == "8.5"
    assert entity(hass, "sensor.last_action").startswith(
        "stop (discharge state unknown: making sure it is off)"
    )


async def test_event_start_sets_power_then_enables(hass, app):
    await start(hass, app, power_w=2000, duration_min=30)
    assert power_values(hass) == [2000.0]
    assert hass.state_of(ENABLE).raw == "on"
    assert entity(hass, "sensor.last_action") == "start 2000 W (requested): verified"
    assert attrs(hass, "sensor.health")["discharge"] == "on"


async def test_follows_headroom_down_at_once_and_up_after_the_write_interval(hass):
    app = await start_app(hass, max_raise_step_w=5000)
    try:
        await start(hass, app, power_w=2500)
        await hass.advance(2)  # settled: the next reading shows the battery
        # The battery's 2500 W shows up in export: 3300 W is 400 W over the target.
        await hass.set_device_state(GRID, "3300")
        await settle(app)
        assert power_values(hass) == [2500.0, 2100.0]
        assert entity(hass, "sensor.export_headroom_power") == "-400"
        # Load went up: room for the requested 2500 W again, not more; but
        # only on a settled reading and once the write interval has passed.
        await hass.set_device_state(GRID, "1000")
        await settle(app)
        assert power_values(hass) == [2500.0, 2100.0]
        await hass.advance(10)
        await hass.set_device_state(GRID, "1001")
        await settle(app)
        assert power_values(hass) == [2500.0, 2100.0, 2500.0]
        # A small dip is not worth a change (deadband).
        await hass.advance(10)
        await hass.set_device_state(GRID, "2850")
        await settle(app)
        assert power_values(hass)[-1] == 2500.0
    finally:
        await app.terminate()


async def test_export_over_the_limit_with_no_room_stops(hass, app):
    await start(hass, app)
    await hass.set_device_state(GRID, "9000")
    await settle(app)
    assert hass.state_of(ENABLE).raw == "off"
    assert "no export headroom" in entity(hass, "sensor.last_action")


async def test_unavailable_reading_stops_and_raises_stale_notice_until_it_returns(hass, app):
    await start(hass, app)
    await hass.set_device_state(GRID, "unavailable")
    await settle(app)
    assert hass.state_of(ENABLE).raw == "off"
    assert entity(hass, "sensor.health") == "stale_data"
    assert entity(hass, "sensor.error") == "stale_data"
    assert notices(hass)["export_guard_stale_data"] == "raise"
    await hass.set_device_state(GRID, "-500")
    await settle(app)
    assert notices(hass)["export_guard_stale_data"] == "resolve"
    await hass.advance(10.1)  # settle time and the write interval since the last start
    await settle(app)
    # The request is still active: the discharge resumes.
    assert hass.state_of(ENABLE).raw == "on"
    assert entity(hass, "sensor.health") == "healthy"


async def test_silence_is_noticed_by_the_tick(hass, app):
    await start(hass, app)
    await hass.advance(35)
    await settle(app)
    assert hass.state_of(ENABLE).raw == "off"
    assert "stale data: grid_power" in entity(hass, "sensor.last_action")
    assert int(entity(hass, "sensor.data_age")) > 30  # the grid reading stopped at start-up


async def test_invalid_reading_raises_its_notice(hass, app):
    await hass.set_device_state(SOC, "250")
    await settle(app)
    assert entity(hass, "sensor.error") == "invalid_reading"
    assert entity(hass, "sensor.health") == "error"
    assert notices(hass)["export_guard_invalid_reading"] == "raise"
    await start(hass, app)
    assert hass.state_of(ENABLE).raw == "off", "started on an invalid reading"


async def test_actuator_that_never_turns_on_opens_the_breaker(hass, app):
    # Answers five times without switching, then works (the default service).
    hass.script_service("input_boolean/turn_on", *[Succeed()] * 5)
    await start(hass, app)
    for _ in range(12):
        await hass.advance(5)
        await settle(app)
    assert len(hass.calls_to("input_boolean/turn_on")) == 5
    assert entity(hass, "binary_sensor.breaker_open") == "on"
    assert attrs(hass, "binary_sensor.breaker_open")["failure_count"] == 5
    assert "read back 'off'" in attrs(hass, "binary_sensor.breaker_open")["last_failure_reason"]
    assert entity(hass, "sensor.health") == "breaker_open"
    assert notices(hass)["export_guard_breaker_open"] == "raise"
    assert notices(hass)["export_guard_actuator_failure"] == "raise"
    # Each failed start was followed by a verified stop.
    assert hass.state_of(ENABLE).raw == "off"
    # After the reset period one probe goes through; it works now, so all clears.
    await hass.advance(60)
    await hass.set_device_state(GRID, "1")  # fresh data: the guard may try again
    await settle(app)
    await hass.advance(WARM_UP_S)
    await settle(app)
    assert len(hass.calls_to("input_boolean/turn_on")) == 6
    assert hass.state_of(ENABLE).raw == "on"
    assert entity(hass, "binary_sensor.breaker_open") == "off"
    assert notices(hass)["export_guard_breaker_open"] == "resolve"
    assert notices(hass)["export_guard_actuator_failure"] == "resolve"


async def test_unverified_stop_is_critical_and_retried_until_verified(hass, app):
    await start(hass, app)
    hass.script_service("input_boolean/turn_off", Succeed(), Fail("device offline"))
    await hass.fire_event(EVENT, {"action": "stop"})
    await settle(app)
    assert entity(hass, "sensor.error") == "stop_failed"
    assert entity(hass, "sensor.health") == "error"
    assert notices(hass)["export_guard_stop_failed"] == "raise"
    assert severity_of(hass, "export_guard_stop_failed") == "critical"
    await hass.advance(5.1)  # retry: fails again
    await settle(app)
    assert len(hass.calls_to("input_boolean/turn_off")) == 3
    assert notices(hass)["export_guard_stop_failed"] == "raise"
    await hass.advance(5.1)  # retry: the default service works again
    await settle(app)
    assert hass.state_of(ENABLE).raw == "off"
    assert notices(hass)["export_guard_stop_failed"] == "resolve"
    assert entity(hass, "sensor.error") == "none"


async def test_request_entity_starts_and_stops(hass, app):
    await hass.set_device_state(REQUEST, "on")
    await settle(app)
    await hass.advance(WARM_UP_S)
    await settle(app)
    assert hass.state_of(ENABLE).raw == "on"
    await hass.set_device_state(REQUEST, "off")
    await settle(app)
    assert hass.state_of(ENABLE).raw == "off"
    assert "stop requested" in entity(hass, "sensor.last_action")


async def test_request_entity_on_at_startup_is_honoured(hass):
    hass.seed(REQUEST, "on")
    guard = await start_app(hass)
    try:
        await hass.advance(WARM_UP_S)
        await settle(guard)
        assert hass.state_of(ENABLE).raw == "on"
    finally:
        await guard.terminate()


async def test_bad_event_is_ignored(hass, app, caplog):
    calls = len(hass.calls)
    await hass.fire_event(EVENT, {"action": "start", "power_w": "lots"})
    await settle(app)
    assert "power_w must be a positive number" in caplog.text
    assert hass.state_of(ENABLE).raw == "off"
    assert not any(c.service == "input_boolean/turn_on" for c in hass.calls[calls:])


async def test_dry_run_decides_and_publishes_but_touches_nothing(hass):
    guard = await start_app(hass, dry_run=True)
    try:
        await start(hass, guard, power_w=1500)
        await hass.set_device_state(GRID, "unavailable")
        await settle(guard)
        actuator_calls = [c for c in hass.calls if c.service.startswith(("input_", "switch"))]
        assert actuator_calls == []
        assert "stale data" in entity(hass, "sensor.last_action")
        await hass.set_device_state(GRID, "0")
        await settle(guard)
        await hass.advance(10)
        await settle(guard)
        assert entity(hass, "sensor.health") == "dry_run"
        assert entity(hass, "sensor.last_action") == "start 1500 W (requested): verified"
    finally:
        await guard.terminate()


async def test_bad_config_does_not_run(hass):
    guard = make_app(ExportGuard, {"export_limit_w": -1}, hass, name="export_guard")
    await guard.initialize()
    assert guard.hass_port is None
    assert hass.listener_count(GRID) == 0


async def test_the_heartbeat_advances_while_the_guard_runs_and_stops_with_it(hass):
    guard = await start_app(hass, heartbeat_s=10)
    first = entity(hass, "sensor.heartbeat")
    await hass.advance(25)
    await settle(guard)
    later = entity(hass, "sensor.heartbeat")
    assert later is not None
    assert first is not None
    assert later > first  # ISO times of one zone sort by time
    await guard.terminate()
    await hass.advance(60)
    assert entity(hass, "sensor.heartbeat") == later


async def test_terminate_stops_the_discharge(hass, app):
    await start(hass, app)
    assert hass.state_of(ENABLE).raw == "on"
    await app.terminate()
    assert hass.state_of(ENABLE).raw == "off"
