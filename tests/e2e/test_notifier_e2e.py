"""The notifier app (apps/notifier.py) in a real AppDaemon against a real HA.

Notices are sent the way other apps send them: a ``gridwatch_notice`` event
on HA's bus (fired here through the REST API). What counts is what HA shows:
its persistent notifications, the active-notices sensor, the notify service.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, wait_for
from tests.e2e.ha_config import NOTIFY_FILENAME, NOTIFY_SERVICE

NOTICE_EVENT = "gridwatch_notice"
SENSOR = "sensor.notifier_active_notices"


@pytest.fixture(scope="module")
def notifier_ad(appdaemon_module_factory: AppDaemonFactory) -> AppDaemon:
    ad = appdaemon_module_factory.start(
        apps={
            "notifier": {
                "module": "gridwatch_notifier",
                "class": "Notifier",
                # No rate limit: a re-post that shows up is then the dedupe failing.
                "min_repost_s": 0,
                "push_services": [NOTIFY_SERVICE],
                # Critical pushes repeat every 1.2 s: observable within a test.
                "repeat_minutes": 0.02,
                "tick_s": 1,
            }
        }
    )
    ad.wait_app("notifier")
    return ad


def raise_data(notice_id: str, *, severity: str = "warning", message: str = "") -> dict[str, Any]:
    return {
        "action": "raise",
        "notice_id": notice_id,
        "severity": severity,
        "title": f"Gridwatch: {notice_id}",
        "message": message or f"{notice_id} is wrong",
        "steps": [f"Fix {notice_id}.", "Wait a minute."],
    }


async def send(client: HaClient, data: dict[str, Any]) -> None:
    await client.rest("POST", f"/api/events/{NOTICE_EVENT}", data)


async def wait_notification(
    client: HaClient, notice_id: str, present: bool = True, timeout: float = 15.0
) -> dict[str, dict[str, Any]]:
    return await wait_for(
        client.notifications,
        lambda found: (notice_id in found) == present,
        timeout=timeout,
        what=f"notification {notice_id} {'present' if present else 'gone'}",
    )


async def next_added(queue: asyncio.Queue[dict[str, Any]], notice_id: str) -> dict[str, Any]:
    """Take subscription events until one adds ``notice_id``; return it."""
    async with asyncio.timeout(15):
        while True:
            event = await queue.get()
            if event.get("type") == "added" and notice_id in event["notifications"]:
                notification: dict[str, Any] = event["notifications"][notice_id]
                return notification


async def test_raise_posts_a_persistent_notification(
    ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    await send(ha_client, raise_data("e2e_raised", message="Battery link lost for 5 min"))

    found = await wait_notification(ha_client, "e2e_raised")

    notification = found["e2e_raised"]
    assert notification["title"] == "Gridwatch: e2e_raised"
    assert "Battery link lost for 5 min" in notification["message"]
    assert "Fix e2e_raised." in notification["message"]
    sensor = await ha_client.wait_state(
        SENSOR, lambda s: s is not None and "e2e_raised" in s["attributes"]["notices"]
    )
    assert sensor is not None
    assert sensor["attributes"]["notices"]["e2e_raised"] == "warning"
    assert int(sensor["state"]) == len(sensor["attributes"]["notices"])


async def test_unchanged_notice_is_not_reposted_but_a_changed_one_is(
    ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    await send(ha_client, raise_data("e2e_dedupe"))
    await wait_notification(ha_client, "e2e_dedupe")

    async with ha_client.websocket() as ws:
        updates = await ws.subscribe("persistent_notification/subscribe")
        # The same notice again, then a sentinel: once the sentinel is shown,
        # the notifier has handled the duplicate before it.
        await send(ha_client, raise_data("e2e_dedupe"))
        await send(ha_client, raise_data("e2e_dedupe_sentinel"))
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while True:
                event = await updates.get()
                seen.append(event)
                if event.get("type") == "added" and "e2e_dedupe_sentinel" in event["notifications"]:
                    break
        reposts = [
            e for e in seen if e.get("type") == "added" and "e2e_dedupe" in e["notifications"]
        ]
        assert reposts == []

        await send(ha_client, raise_data("e2e_dedupe", message="now worse"))
        changed = await next_added(updates, "e2e_dedupe")
        assert "now worse" in changed["message"]


async def test_resolve_dismisses_the_notification(
    ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    await send(ha_client, raise_data("e2e_resolved"))
    await wait_notification(ha_client, "e2e_resolved")

    await send(ha_client, {"action": "resolve", "notice_id": "e2e_resolved"})

    await wait_notification(ha_client, "e2e_resolved", present=False)
    sensor = await ha_client.wait_state(
        SENSOR, lambda s: s is not None and "e2e_resolved" not in s["attributes"]["notices"]
    )
    assert sensor is not None


async def test_critical_notice_is_pushed_repeatedly_until_resolved(
    ha: HomeAssistant, ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    # The file notify platform appends each push's message to this file.
    pushed = ha.config_dir / NOTIFY_FILENAME

    async def pushed_text() -> str:
        return pushed.read_text() if pushed.exists() else ""

    await send(ha_client, raise_data("e2e_critical", severity="critical", message="inverter fire"))

    await wait_notification(ha_client, "e2e_critical")
    await wait_for(
        pushed_text, lambda t: t.count("inverter fire") >= 2, what="a repeated critical push"
    )

    await send(ha_client, {"action": "resolve", "notice_id": "e2e_critical"})

    await wait_notification(ha_client, "e2e_critical", present=False)
    await wait_for(pushed_text, lambda t: "The condition has cleared." in t, what="all-clear push")


async def test_bad_event_is_dropped_and_the_notifier_keeps_working(
    ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    mark = len(notifier_ad.log_text())

    await send(ha_client, {"action": "raise", "notice_id": "e2e_bad", "severity": "apocalyptic"})
    await asyncio.to_thread(notifier_ad.wait_log, "dropping bad gridwatch_notice event", 15, mark)

    await send(ha_client, raise_data("e2e_after_bad"))
    found = await wait_notification(ha_client, "e2e_after_bad")
    assert "e2e_bad" not in found


async def test_active_notices_are_raised_again_after_ha_restarts(
    ha: HomeAssistant, ha_client: HaClient, notifier_ad: AppDaemon
) -> None:
    # Last in the module: it restarts the session's HA.
    await send(ha_client, raise_data("e2e_survivor", message="still broken"))
    await wait_notification(ha_client, "e2e_survivor")
    await send(ha_client, {"action": "resolve", "notice_id": "e2e_dedupe"})
    await wait_notification(ha_client, "e2e_dedupe", present=False)

    await ha.restart_async()

    async with HaClient(ha.url, ha.token) as fresh:
        found = await wait_notification(fresh, "e2e_survivor", timeout=30)
        assert "still broken" in found["e2e_survivor"]["message"]
        assert "e2e_dedupe" not in found
        sensor = await fresh.wait_state(
            SENSOR, lambda s: s is not None and "e2e_survivor" in s["attributes"]["notices"]
        )
        assert sensor is not None
