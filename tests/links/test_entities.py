"""Entity rendering, outage notice text, the publisher and the per-link monitor."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gridwatch.links.availability import (
    AvailabilityPolicy,
    Fatal,
    FatalKind,
    LinkView,
    RaiseOutageNotice,
    ValueView,
)
from gridwatch.links.entities import (
    link_entity_ids,
    render_connected,
    render_status,
    render_value,
    wall_time,
)
from gridwatch.links.monitor import LinkMonitor, LinkPlan, RaiseNotice, ResolveNotice, fatal_of
from gridwatch.links.outage import outage_text
from gridwatch.links.values import ValueSpec, ValueState
from gridwatch.transport.errors import AuthError, ConnectError, UnsupportedHostError
from gridwatch.transport.health import HealthSnapshot, LinkState
from gridwatch.transport.link import Message

WALL = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEALTH = HealthSnapshot(
    state=LinkState.CONNECTED,
    attempts=10,
    successes=8,
    consecutive_failures=0,
    reconnects=3,
    success_rate=0.8,
    last_connect_s=0.25,
    mean_connect_s=0.123456,
    last_message_at=990.0,
    last_error=None,
    timeout_s=25.0,
)
VIEW = LinkView(
    status=LinkState.CONNECTED,
    connected=True,
    outage_since=None,
    outage_s=0.0,
    within_grace=True,
    up_since=900.0,
    long_outage_ended=None,
    silent_s=None,
    reason=None,
)
POWER = ValueSpec(
    "grid_power", "t", path="p", unit="W", device_class="power", state_class="measurement"
)


def test_entity_ids():
    assert link_entity_ids("gw", ["power"]) == [
        "binary_sensor.gw_connected",
        "sensor.gw_link_status",
        "sensor.gw_power",
    ]


def test_wall_time_converts_monotonic_stamps():
    assert wall_time(None, 1000.0, WALL) is None
    assert wall_time(940.0, 1000.0, WALL) == "2026-06-01T11:59:00+00:00"


@pytest.mark.parametrize(
    ("view", "state"),
    [
        (ValueView(True, 0.0, False, 1.0), "0"),  # zero stays a state (AppDaemon drops 0)
        (ValueView(True, -12.5, True, 1.0), "-12.5"),
        (ValueView(True, None, False, None), "unknown"),
        (ValueView(False, None, True, 700.0), "unavailable"),
    ],
)
def test_render_value_states(view, state):
    update = render_value("gw", POWER, ValueState(0.0, 999.0), view, VIEW, 1000.0, WALL)
    assert update.entity_id == "sensor.gw_grid_power"
    assert update.state == state
    assert update.attributes["unit_of_measurement"] == "W"
    assert update.attributes["device_class"] == "power"
    assert update.attributes["state_class"] == "measurement"
    assert update.attributes["stale"] is view.stale
    assert update.attributes["connection_status"] == "connected"
    assert update.attributes["last_good"] == "2026-06-01T11:59:59+00:00"


def test_render_value_without_unit_has_no_unit_attribute():
    spec = ValueSpec("mode", "t")
    update = render_value(
        "gw", spec, ValueState(), ValueView(True, None, False, None), VIEW, 0, WALL
    )
    assert "unit_of_measurement" not in update.attributes
    assert "device_class" not in update.attributes


def test_render_connected_and_status():
    down = replace(VIEW, connected=False, status=LinkState.OFFLINE, outage_since=970.0)
    assert render_connected("gw", VIEW).state == "on"
    assert render_connected("gw", down).state == "off"
    status = render_status("gw", "mqtt", down, HEALTH, 1000.0, WALL)
    assert status.entity_id == "sensor.gw_link_status"
    assert status.state == "offline"
    a = status.attributes
    assert a["success_rate"] == 80.0
    assert a["mean_connect_time_s"] == 0.123
    assert a["last_connect_time_s"] == 0.25
    assert a["consecutive_failures"] == 0
    assert a["reconnect_count"] == 3
    assert a["last_message"] == "2026-06-01T11:59:50+00:00"
    assert a["adaptive_timeout_s"] == 25.0
    assert a["outage_since"] == "2026-06-01T11:59:30+00:00"
    assert a["transport"] == "mqtt"


@pytest.mark.parametrize(
    ("transport", "target", "hint"),
    [
        ("mqtt", "mqtt://broker:1883", "broker"),
        ("websocket", "http://ctl", "browser"),
        ("http", "http://meter", "browser"),
        ("ble", "AA:BB:CC:DD:EE:FF", "Bluetooth"),
    ],
)
def test_outage_text_per_transport(transport, target, hint):
    health = replace(HEALTH, last_error="connection refused", consecutive_failures=7)
    action = RaiseOutageNotice("gw", 900.0, health, silent=False, fatal=None)
    text = outage_text(action, transport, target, ["t/1"], 600.0, 1000.0, WALL)
    assert text.title == "Link gw is offline"
    assert target in text.message
    assert "15 min" in text.message
    assert "connection refused" in text.message
    assert "consecutive failures 7" in text.message
    assert "10 min" in text.message  # when values go unavailable
    assert any(hint in step for step in text.steps)
    assert text.steps[-1].startswith("This notice clears itself")


def test_outage_text_for_a_silent_link():
    silent = RaiseOutageNotice("gw", 600.0, HEALTH, silent=True, fatal=None)
    text = outage_text(silent, "mqtt", "mqtt://b:1883", ["gw/state"], 600.0, 1000.0, WALL)
    assert "sends no data" in text.title
    assert "gw/state" in text.steps[0]


@pytest.mark.parametrize(
    ("kind", "title", "hint"),
    [
        (FatalKind.AUTH, "credentials refused", "secrets.yaml"),
        (FatalKind.HOST, "no Bluetooth", "bluetoothctl"),
        (FatalKind.START, "cannot start", "apps.yaml"),
        (FatalKind.OTHER, "stopped", "Restart"),
    ],
)
def test_outage_text_for_links_that_stopped_for_good(kind, title, hint):
    fatal = Fatal(kind, "the reason")
    action = RaiseOutageNotice("gw", 1.0, HEALTH, silent=False, fatal=fatal)
    text = outage_text(action, "http", "http://m", [], 600.0, 1000.0, WALL)
    assert text.title.startswith(f"Link gw: {title}")
    assert "the reason" in text.message
    assert any(hint in step for step in text.steps)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, None),
        (AuthError("401"), FatalKind.AUTH),
        (UnsupportedHostError("no BlueZ"), FatalKind.HOST),
        (ConnectError("x"), FatalKind.OTHER),
    ],
)
def test_fatal_errors_are_classified(error, kind):
    fatal = fatal_of(error)
    assert (fatal and fatal.kind) == kind
    if fatal is not None:
        assert fatal.detail == str(error)


def _monitor(**policy):
    plan = LinkPlan(
        "gw",
        "mqtt",
        "mqtt://b:1883",
        (
            ValueSpec("p", "gw/+/state", path="p", maximum=100),
            ValueSpec("q", "gw/+/state", path="q"),
            ValueSpec("r", "other"),
        ),
        AvailabilityPolicy(**policy),
    )
    return LinkMonitor(plan, 0.0, logging.getLogger("t"))


def test_monitor_routes_by_subscription_key_not_topic():
    mon = _monitor()
    fresh = mon.on_message("gw/+/state", Message("gw/a/state", {"p": 5, "q": "x"}, 1.0))
    assert fresh == ["p"]  # q is not a number
    assert mon.value_state("p").last_good == 5.0
    assert mon.value_state("q").invalid_total == 1
    assert mon.value_state("r").last_good is None
    assert mon.on_message("unknown", Message("unknown", b"1", 2.0)) == []


def test_monitor_evaluation_publishes_every_entity_and_notices():
    mon = _monitor(outage_notice_after_s=60)
    down = replace(HEALTH, state=LinkState.OFFLINE)
    first = mon.evaluate(down, 10.0, WALL)
    ids = [u.entity_id for u in first.updates]
    assert ids == link_entity_ids("gw", ["p", "q", "r"])
    assert first.notices == ()
    later = mon.evaluate(down, 61.0, WALL)
    assert [type(op) for op in later.notices] == [RaiseNotice]
    assert later.notices[0].condition == "gw_outage"
    back = mon.evaluate(HEALTH, 70.0, WALL)
    assert back.notices == (ResolveNotice("gw_outage"),)
    again = mon.evaluate(HEALTH, 75.0, WALL)
    assert again.notices == ()


def test_monitor_first_up_clears_a_notice_of_an_earlier_run():
    mon = _monitor()
    assert mon.evaluate(HEALTH, 1.0, WALL).notices == (
        ResolveNotice("gw_outage", earlier_run=True),
    )
    assert mon.evaluate(HEALTH, 2.0, WALL).notices == ()


def test_monitor_shutdown_marks_everything_stopped():
    mon = _monitor()
    mon.on_message("gw/+/state", Message("gw/a/state", {"p": 5}, 1.0))
    updates = {u.entity_id: u for u in mon.shutdown_updates(HEALTH, 2.0, WALL)}
    assert updates["sensor.gw_p"].state == "unavailable"
    assert updates["binary_sensor.gw_connected"].state == "off"
    assert updates["sensor.gw_link_status"].state == "disconnected"
