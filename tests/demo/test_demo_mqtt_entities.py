"""``python -m demo --entities mqtt``: the apps' entities come by MQTT discovery.

The same live entities as the REST demo, now registered by HA's MQTT
integration (unique id, device), and the panel's source (AppDaemon's state,
which HADashboard shows) holds the same values as HA.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from demo.config_files import DEMO_APPS_YAML, with_entity_backend
from tests.demo.demo_process import DemoRun
from tests.demo.test_demo_smoke import LIVE, _states, wait_live

DURATION_S = 40
# Entities of the panel whose values change slowly enough to compare two reads.
PANEL = (
    "sensor.notifier_active_notices",
    "sensor.gateway_link_status",
    "sensor.export_guard_health",
)


def test_the_mqtt_copy_of_apps_yaml_changes_only_the_backend(tmp_path):
    copy = with_entity_backend(DEMO_APPS_YAML, "mqtt", tmp_path / "apps.yaml")
    before = DEMO_APPS_YAML.read_text().splitlines()
    after = copy.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].split("#")[0].strip() == "backend: rest"
    assert changed[0][1].split("#")[0].strip() == "backend: mqtt"
    assert with_entity_backend(DEMO_APPS_YAML, "rest", tmp_path / "x.yaml") == DEMO_APPS_YAML


async def _registry(session: aiohttp.ClientSession, url: str, token: str) -> dict[str, Any]:
    async with session.ws_connect(f"{url}/api/websocket") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": token})
        await ws.receive_json()
        await ws.send_json({"id": 1, "type": "config/entity_registry/list"})
        answer = await ws.receive_json()
    return {e["entity_id"]: e for e in answer["result"]}


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.one_leg
async def test_demo_with_mqtt_entities(tmp_path):
    run = DemoRun(
        tmp_path / "state",
        ["--duration", str(DURATION_S), "--speed", "30", "--no-frontend", "--entities", "mqtt"],
    )
    try:
        await run.start()
        ha_url = run.urls["Home Assistant"]
        headers = {"Authorization": f"Bearer {run.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            states = await wait_live(session, ha_url)
            registry = await _registry(session, ha_url, run.token)
            for entity_id in LIVE:
                if entity_id == "sensor.grid_power":
                    continue  # the simulator's meter, not an app's entity
                assert registry[entity_id]["platform"] == "mqtt", entity_id
                assert registry[entity_id]["device_id"], entity_id
            base = run.urls["AppDaemon admin"].rstrip("/")
            for entity_id in PANEL:
                url = f"{base}/api/appdaemon/state/default/{entity_id}"
                async with session.get(url, headers=run.ad_headers) as resp:
                    shown = ((await resp.json())["state"] or {}).get("state")
                states = await _states(session, ha_url)
                assert shown == states[entity_id], entity_id
        code = await run.wait(DURATION_S + 60)
    finally:
        await run.stop()
    assert code == 0, run.output()
    assert "stopped cleanly" in run.lines[-1], run.output()
