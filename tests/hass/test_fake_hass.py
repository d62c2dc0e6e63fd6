"""The in-memory HA behaves like the port contract says (apps' tests rely on it)."""

from __future__ import annotations

import pytest

from gridwatch.hass.errors import (
    CommandError,
    CommandTimeout,
    HassError,
    ServiceError,
    ServiceTimeout,
)
from tests.support.fake_hass import Fail, FakeHass, Succeed, TimeOut


def _raw(hass: FakeHass, entity_id: str) -> str | None:
    state = hass.state_of(entity_id)
    assert state is not None, entity_id
    return state.raw


async def test_state_listeners_fire_on_device_changes_and_writes():
    hass = FakeHass()
    hass.seed("sensor.grid", "100", {"unit_of_measurement": "W"})
    seen = []

    async def on_change(entity_id, old, new):
        seen.append((entity_id, old.raw if old else None, new.raw if new else None))

    handle = await hass.listen_state("sensor.grid", on_change)
    await hass.set_device_state("sensor.grid", "unavailable")
    await hass.set_device_state("sensor.grid", "unavailable")  # identical: no event
    await hass.remove_entity("sensor.grid")
    await handle.cancel()
    await hass.set_device_state("sensor.grid", "5")
    assert seen == [
        ("sensor.grid", "100", "unavailable"),
        ("sensor.grid", "unavailable", None),
    ]
    state = await hass.get_state("sensor.grid")
    assert state is not None
    assert state.number().value == 5.0


async def test_set_entity_writes_zero_and_false_as_text():
    hass = FakeHass()
    await hass.set_entity("sensor.x", 0, {"ok": False, "count": 0})
    state = hass.state_of("sensor.x")
    assert state is not None
    assert state.raw == "0"
    assert dict(state.attributes) == {"ok": False, "count": 0}
    await hass.set_entity("binary_sensor.y", False, {})
    assert _raw(hass, "binary_sensor.y") == "off"


async def test_set_entity_refuses_what_json_cannot_carry():
    hass = FakeHass()
    with pytest.raises(HassError, match=r"sensor\.x.*Out of range float"):
        await hass.set_entity("sensor.x", 1, {"ratio": float("nan")})
    assert hass.state_of("sensor.x") is None


async def test_restart_forgets_written_entities_and_notifications_then_republishes():
    hass = FakeHass()
    hass.seed("sensor.device", "1")
    await hass.set_entity("sensor.mine", "3", {"unit_of_measurement": "kWh"})
    await hass.call_service(
        "persistent_notification/create", {"notification_id": "n1", "title": "t", "message": "m"}
    )
    hooks = []

    async def on_started():
        # Owned entities are back before the hook runs.
        hooks.append(hass.state_of("sensor.mine"))

    await hass.listen_ha_started(on_started)
    await hass.simulate_restart(republish=False)
    assert hass.state_of("sensor.mine") is None
    assert hass.state_of("sensor.device") is not None
    assert hass.notifications == {}
    await hass.finish_restart()
    assert hooks[0] is not None
    assert hooks[0].attributes["unit_of_measurement"] == "kWh"


async def test_scripted_services_in_order_then_default():
    hass = FakeHass()
    hass.seed("number.discharge", "100")
    hass.script_service(
        "number/set_value",
        Fail("inverter busy"),
        TimeOut(),
        Succeed(result={"ok": 1}, set_state=("number.discharge", "50")),
    )
    with pytest.raises(ServiceError, match="inverter busy"):
        await hass.call_service("number/set_value", {"entity_id": "number.discharge", "value": 0})
    t0 = hass.monotonic()
    with pytest.raises(ServiceTimeout):
        await hass.call_service("number.set_value", {"entity_id": "number.discharge"}, timeout_s=3)
    assert hass.monotonic() - t0 == 3
    assert await hass.call_service("number/set_value", {"entity_id": "number.discharge"}) == {
        "ok": 1
    }
    assert _raw(hass, "number.discharge") == "50"
    # Script exhausted: the built-in behaviour sets the value like HA.
    await hass.call_service("number/set_value", {"entity_id": "number.discharge", "value": 0})
    assert _raw(hass, "number.discharge") == "0"
    assert [c.service for c in hass.calls] == ["number/set_value"] * 4


async def test_strict_services_reject_unknown_services():
    hass = FakeHass(strict_services=True)
    with pytest.raises(ServiceError, match="not found"):
        await hass.call_service("notify/nobody", {"message": "x"})
    lenient = FakeHass()
    assert await lenient.call_service("notify/nobody", {"message": "x"}) is None


async def test_events_reach_listeners_and_are_recorded():
    hass = FakeHass()
    got = []
    handle = await hass.listen_event("ping", lambda name, data: got.append((name, data)))
    await hass.fire_event("ping", {"n": 1})
    await handle.cancel()
    await hass.fire_event("ping", {"n": 2})
    assert got == [("ping", {"n": 1})]
    assert hass.events_of("ping") == [{"n": 1}, {"n": 2}]


async def test_websocket_scripts():
    hass = FakeHass()
    hass.script_websocket(
        "recorder/statistics_during_period",
        {"sensor.a": []},
        lambda cmd: {"ids": cmd["statistic_ids"]},
        Fail("boom"),
        TimeOut(),
    )
    kind = "recorder/statistics_during_period"
    assert await hass.websocket_command({"type": kind}) == {"sensor.a": []}
    assert await hass.websocket_command({"type": kind, "statistic_ids": ["x"]}) == {"ids": ["x"]}
    with pytest.raises(CommandError, match="boom"):
        await hass.websocket_command({"type": kind})
    with pytest.raises(CommandTimeout):
        await hass.websocket_command({"type": kind}, timeout_s=2)
    with pytest.raises(CommandError, match="unknown_command"):
        await hass.websocket_command({"type": kind})
    assert len(hass.ws_commands) == 5


async def test_timers_run_in_time_order_and_cancel():
    hass = FakeHass()
    log = []
    every = await hass.run_every(lambda: log.append(("every", hass.monotonic())), 10)
    await hass.run_in(lambda: log.append(("once", hass.monotonic())), 15)
    start = hass.monotonic()
    await hass.advance(25)
    assert log == [("every", start + 10), ("once", start + 15), ("every", start + 20)]
    assert hass.monotonic() == start + 25
    await every.cancel()
    await hass.advance(100)
    assert len(log) == 3
    assert hass.pending_timers == 0


async def test_async_timer_callbacks_are_awaited():
    hass = FakeHass()
    ran = []

    async def tick():
        ran.append(hass.now())

    await hass.run_every(tick, 5, first_in_s=0)
    await hass.advance(0)
    assert len(ran) == 1
    assert ran[0].tzinfo is not None
