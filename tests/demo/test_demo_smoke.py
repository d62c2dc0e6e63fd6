"""``python -m demo --duration N`` end to end: URLs, live entities, clean exit."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.demo.demo_process import DemoRun, processes_under

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DURATION_S = 40
# Entities of every app and of every link: present, and not stuck at a
# placeholder.
LIVE = {
    "sensor.export_guard_health": lambda s: s == "healthy",
    "sensor.export_guard_export_headroom_power": lambda s: _number(s),
    "sensor.notifier_active_notices": lambda s: s.isdigit(),
    "sensor.gateway_link_status": lambda s: s == "connected",
    "sensor.gateway_grid_power": lambda s: _number(s),
    "sensor.controller_battery_soc": lambda s: _number(s),
    "sensor.controller_api_battery_discharged": lambda s: _number(s),
    "sensor.battery_bms_link_status": lambda s: s == "connected",
    "sensor.battery_bms_cell_voltage": lambda s: _number(s),
    "sensor.energy_tally_health": lambda s: s not in ("", "unknown", "unavailable"),
    "sensor.grid_power": lambda s: _number(s),
}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def wait_live(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """HA's states once every entity of LIVE shows a live value (30 s at most)."""
    states: dict[str, str] = {}
    async with asyncio.timeout(30):
        while not all(e in states and ok(states[e]) for e, ok in LIVE.items()):
            await asyncio.sleep(0.25)
            states = await _states(session, url)
    return states


async def _states(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(f"{url}/api/states") as resp:
        resp.raise_for_status()
        return {s["entity_id"]: s["state"] for s in await resp.json()}


async def _refuses_strangers(
    session: aiohttp.ClientSession, base: str, panel: str, creds: dict[str, str]
) -> None:
    """Without AppDaemon's password: a login form, no state, no button, no chart."""
    async with aiohttp.ClientSession(timeout=session.timeout) as stranger:
        async with stranger.get(panel) as resp:
            page = await resp.text()
        assert "gridwatch_init.js" not in page
        assert 'action="/logon_response"' in page
        async with stranger.get(f"{base}/api/appdaemon/state/default/sensor.grid_power") as resp:
            assert resp.status == 401
        press = f"{base}/api/appdaemon/service/default/input_boolean/turn_on"
        body = {"entity_id": "input_boolean.battery_discharge_request"}
        async with stranger.post(press, json=body) as resp:
            assert resp.status == 401
        async with stranger.get(f"{base}/app/export_guard_chart") as resp:
            assert resp.status == 401
            assert "<svg" not in await resp.text()
        # The same requests with the password get through.
        async with stranger.get(
            f"{base}/api/appdaemon/state/default/sensor.grid_power", headers=creds
        ) as resp:
            assert resp.status == 200
        async with stranger.get(f"{base}/app/export_guard_chart", headers=creds) as resp:
            assert resp.status == 200
            assert resp.content_type == "image/svg+xml"


async def test_demo_runs_shows_live_entities_and_stops_cleanly(tmp_path):
    state_dir = tmp_path / "state"
    run = DemoRun(state_dir, ["--duration", str(DURATION_S), "--speed", "30"])
    try:
        await run.start()
        ha_url = run.urls["Home Assistant"]
        headers = {"Authorization": f"Bearer {run.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            await wait_live(session, ha_url)
            pages = {}
            for name in ("Gridwatch panel", "AppDaemon admin"):
                async with session.get(run.urls[name], cookies=run.ad_cookies()) as resp:
                    assert resp.status == 200, name
                    pages[name] = await resp.text()
            assert "gridwatch_init.js" in pages["Gridwatch panel"]
            assert "/aui/" in pages["AppDaemon admin"]  # AppDaemon's admin UI
            # The panel's widgets are compiled into its init script.
            base = run.urls["AppDaemon admin"].rstrip("/")
            init = f"{base}/compiled_javascript/default/gridwatch_init.js"
            async with session.get(init, cookies=run.ad_cookies()) as resp:
                script = await resp.text()
            for widget in ("guard-health", "battery-soc", "gateway-status", "site-pv-month"):
                assert f'id="default-{widget}"' in script
            await _refuses_strangers(session, base, run.urls["Gridwatch panel"], run.ad_headers)
        code = await run.wait(DURATION_S + 60)
    finally:
        await run.stop()
    assert code == 0, run.output()
    assert "stopped cleanly" in run.lines[-1], run.output()
    assert processes_under(state_dir) == []
