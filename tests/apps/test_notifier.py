"""The notifier app on the fake HA: raise, dedupe, rate limit, resolve,
re-raise after restarts, critical pushes, bad events, bad config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from gridwatch.notices.client import NOTICE_EVENT, RESYNC_EVENT, NoticeClient
from gridwatch_notifier import Notifier
from tests.support.app_harness import make_app
from tests.support.fake_hass import Fail, FakeHass

SENSOR = "sensor.notifier_active_notices"
CREATE = "persistent_notification/create"
DISMISS = "persistent_notification/dismiss"


def raise_data(
    nid: str = "guard_stale_data", severity: str = "warning", message: str = "grid power 40 s old"
) -> dict[str, Any]:
    return {
        "action": "raise",
        "notice_id": nid,
        "severity": severity,
        "title": "Export guard: stale data",
        "message": message,
        "steps": ["Check the meter link", "Look at sensor.grid_power"],
    }


@pytest.fixture
def hass():
    return FakeHass()


@pytest.fixture
def args(tmp_path):
    return {"state_file": str(tmp_path / "notices.json"), "min_repost_s": 60, "tick_s": 10}


@pytest.fixture
async def app(hass, args):
    notifier = make_app(Notifier, args, hass, name="notifier")
    await notifier.initialize()
    yield notifier
    await notifier.terminate()


def count(hass: FakeHass) -> str | None:
    state = hass.state_of(SENSOR)
    assert state is not None, "summary sensor not published"
    return state.raw


def dismissed(hass: FakeHass) -> list[str]:
    # The app base also dismisses its own configuration notice at start.
    ids = [c.data["notification_id"] for c in hass.calls_to(DISMISS)]
    return [i for i in ids if i != "notifier_configuration_error"]


def creates(hass: FakeHass) -> list[Mapping[str, Any]]:
    return [c.data for c in hass.calls_to(CREATE)]


async def test_start_publishes_an_empty_summary_and_asks_apps_to_resync(hass, app):
    state = hass.state_of(SENSOR)
    assert state is not None
    assert state.raw == "0"
    assert state.attributes["notices"] == {}
    assert hass.events_of(RESYNC_EVENT) == [{}]


async def test_raise_creates_the_notification_and_counts_it(hass, app):
    await hass.fire_event(NOTICE_EVENT, raise_data())
    note = hass.notifications["guard_stale_data"]
    assert note["title"] == "Export guard: stale data"
    assert "grid power 40 s old" in note["message"]
    assert "1. Check the meter link" in note["message"]
    state = hass.state_of(SENSOR)
    assert state.raw == "1"
    assert state.attributes["notices"] == {"guard_stale_data": "warning"}
    assert state.attributes["warning_count"] == 1


async def test_unchanged_raise_is_not_reposted(hass, app):
    for _ in range(3):
        await hass.fire_event(NOTICE_EVENT, raise_data())
    assert len(creates(hass)) == 1


async def test_changes_are_rate_limited_per_notice(hass, app):
    await hass.fire_event(NOTICE_EVENT, raise_data(message="40 s old"))
    await hass.fire_event(NOTICE_EVENT, raise_data(message="45 s old"))
    await hass.fire_event(NOTICE_EVENT, raise_data(nid="tally_failed", message="other"))
    assert [c["notification_id"] for c in creates(hass)] == ["guard_stale_data", "tally_failed"]
    await hass.advance(50)
    assert len(creates(hass)) == 2
    await hass.advance(10)  # the window of guard_stale_data ends at 60 s
    assert len(creates(hass)) == 3
    assert "45 s old" in hass.notifications["guard_stale_data"]["message"]


async def test_resolve_dismisses_and_updates_the_count(hass, app):
    await hass.fire_event(NOTICE_EVENT, raise_data())
    await hass.fire_event(NOTICE_EVENT, {"action": "resolve", "notice_id": "guard_stale_data"})
    assert "guard_stale_data" not in hass.notifications
    assert dismissed(hass) == ["guard_stale_data"]
    assert count(hass) == "0"
    # Resolving something unknown is harmless and calls nothing.
    await hass.fire_event(NOTICE_EVENT, {"action": "resolve", "notice_id": "nothing_here"})
    assert dismissed(hass) == ["guard_stale_data"]


async def test_ha_restart_reraises_every_active_notice(hass, app):
    await hass.fire_event(NOTICE_EVENT, raise_data())
    await hass.fire_event(NOTICE_EVENT, raise_data(nid="tally_failed", severity="info"))
    await hass.simulate_restart(republish=False)
    assert hass.notifications == {}
    assert hass.state_of(SENSOR) is None
    await hass.finish_restart()
    assert set(hass.notifications) == {"guard_stale_data", "tally_failed"}
    assert count(hass) == "2"


async def test_a_recreated_notifier_reposts_kept_notices(hass, args):
    # AppDaemon 4.5.13 terminates apps when HA goes away and creates new app
    # objects when it comes back: the notices must survive the app object.
    first = make_app(Notifier, args, hass, name="notifier")
    await first.initialize()
    await hass.fire_event(NOTICE_EVENT, raise_data())
    await first.terminate()
    await hass.simulate_restart(republish=False)
    fresh = FakeHass(hass.clock)
    second = make_app(Notifier, args, fresh, name="notifier")
    await second.initialize()
    assert set(fresh.notifications) == {"guard_stale_data"}
    assert count(fresh) == "1"
    # The condition cleared while the notifier was away: the reporting app's
    # first resolve after its own restart still reaches the notifier.
    client = NoticeClient(fresh, "guard")
    await client.resolve("stale_data")
    assert fresh.notifications == {}
    await second.terminate()


async def test_critical_is_pushed_every_repeat_until_resolved(hass, tmp_path):
    args = {
        "state_file": str(tmp_path / "n.json"),
        "push_services": ["notify.mobile_app_phone"],
        "repeat_minutes": 15,
    }
    app = make_app(Notifier, args, hass, name="notifier")
    await app.initialize()
    await hass.fire_event(NOTICE_EVENT, raise_data(nid="guard_stop_failed", severity="critical"))
    pushes = hass.calls_to("notify/mobile_app_phone")
    assert len(pushes) == 1
    assert pushes[0].data["title"] == "Export guard: stale data"
    await hass.advance(14 * 60)
    assert len(hass.calls_to("notify/mobile_app_phone")) == 1
    await hass.advance(60)
    assert len(hass.calls_to("notify/mobile_app_phone")) == 2
    await hass.advance(15 * 60)
    assert len(hass.calls_to("notify/mobile_app_phone")) == 3
    await hass.fire_event(NOTICE_EVENT, {"action": "resolve", "notice_id": "guard_stop_failed"})
    last = hass.calls_to("notify/mobile_app_phone")[-1]
    assert last.data["title"].startswith("Resolved:")
    await hass.advance(3600)
    assert len(hass.calls_to("notify/mobile_app_phone")) == 4
    await app.terminate()


async def test_warning_is_never_pushed(hass, tmp_path):
    args = {"state_file": str(tmp_path / "n.json"), "push_services": ["notify.phone"]}
    app = make_app(Notifier, args, hass, name="notifier")
    await app.initialize()
    await hass.fire_event(NOTICE_EVENT, raise_data())
    await hass.advance(7200)
    assert hass.calls_to("notify/phone") == []
    await app.terminate()


async def test_failing_push_and_post_are_logged_not_raised(hass, tmp_path, caplog):
    args = {"state_file": str(tmp_path / "n.json"), "push_services": ["notify.phone"]}
    app = make_app(Notifier, args, hass, name="notifier")
    await app.initialize()
    hass.script_service("notify/phone", Fail("device offline"))
    hass.script_service(CREATE, Fail("HA busy"))
    with caplog.at_level(logging.WARNING):
        await hass.fire_event(NOTICE_EVENT, raise_data(severity="critical"))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "device offline" in messages
    assert "HA busy" in messages
    assert count(hass) == "1"
    await app.terminate()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"action": "raise", "severity": "warning", "title": "t", "message": "m"}, "notice_id"),
        ({**raise_data(), "severity": "urgent"}, "severity"),
        ({"action": "explode", "notice_id": "a_b"}, "action"),
        ({**raise_data(), "steps": "just one"}, "steps"),
    ],
)
async def test_bad_events_are_logged_and_dropped(hass, app, caplog, data, why):
    with caplog.at_level(logging.WARNING):
        await hass.fire_event(NOTICE_EVENT, data)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "dropping bad gridwatch_notice event" in record.getMessage()
    assert why in record.getMessage()
    assert creates(hass) == []
    assert count(hass) == "0"


async def test_other_apps_resync_when_the_notifier_starts(hass, args):
    guard = NoticeClient(hass, "guard")
    await guard.start()
    await guard.raise_notice("stale_data", "warning", "Stale", "40 s old")
    # The notifier was not running when that was fired.
    app = make_app(Notifier, args, hass, name="notifier")
    await app.initialize()
    assert set(hass.notifications) == {"guard_stale_data"}
    await app.terminate()


async def test_bad_config_refuses_to_run_and_notifies_directly(hass, caplog):
    app = make_app(Notifier, {"push_services": ["light.kitchen"]}, hass, name="notifier")
    with caplog.at_level(logging.ERROR):
        await app.initialize()
    assert "notifier_configuration_error" in hass.notifications
    assert hass.state_of(SENSOR) is None
    assert hass.listener_count(NOTICE_EVENT) == 0
    assert sum(r.levelno >= logging.ERROR for r in caplog.records) == 1
