"""Whole-suite scenarios on the running demo stack (real HA, AppDaemon, broker,
simulator): Ctrl-C, and a sunny-day discharge under the export limit."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from demo.entities import BATTERY_POWER, DISCHARGE_REQUEST, GRID_POWER
from tests.demo.demo_process import DemoRun, processes_under

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# apps.yaml's export_guard.export_limit_w and deadband_w.
EXPORT_LIMIT_W = 5000.0
# Clouds move PV between two meter reports (1 s); the guard can only answer
# the next report, so a reading a little over the limit is tolerated.
TOLERANCE_W = 250.0
SESSION_S = 30.0


async def _state(session: aiohttp.ClientSession, url: str, entity_id: str) -> str:
    async with session.get(f"{url}/api/states/{entity_id}") as resp:
        resp.raise_for_status()
        return str((await resp.json())["state"])


async def test_ctrl_c_stops_every_process_it_started(tmp_path):
    state_dir = tmp_path / "state"
    run = DemoRun(state_dir, ["--no-frontend"])
    try:
        await run.start()
        assert processes_under(state_dir)  # HA, AppDaemon and mosquitto run
        assert run.proc is not None
        run.proc.send_signal(signal.SIGINT)
        code = await run.wait(60)
    finally:
        await run.stop()
    assert code == 0, run.output()
    assert any("SIGINT: stopping" in line for line in run.lines)
    assert "stopped cleanly" in run.lines[-1]
    assert processes_under(state_dir) == []


async def test_sunny_day_discharge_keeps_export_under_the_limit(tmp_path):
    # 10:00 on a clear day: PV ~4.2 kW, house ~0.45 kW, so ~3.7 kW export and
    # about 1.2 kW of headroom for the battery under the 5 kW limit.
    # No story: the test makes the requests itself.
    run = DemoRun(tmp_path / "state", ["--no-frontend", "--no-story", "--start-hour", "10"])
    exports: list[float] = []
    discharged: list[float] = []
    try:
        await run.start()
        url = run.urls["Home Assistant"]
        headers = {"Authorization": f"Bearer {run.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            async with session.post(
                f"{url}/api/services/input_boolean/turn_on", json={"entity_id": DISCHARGE_REQUEST}
            ) as resp:
                resp.raise_for_status()
            loop = asyncio.get_running_loop()
            end = loop.time() + SESSION_S
            while loop.time() < end:
                exports.append(-float(await _state(session, url, GRID_POWER.entity_id)))
                discharged.append(float(await _state(session, url, BATTERY_POWER.entity_id)))
                await asyncio.sleep(0.2)
    finally:
        await run.stop()
    assert max(discharged) > 0, "the guard never discharged"
    over = [round(e) for e in exports if e > EXPORT_LIMIT_W + TOLERANCE_W]
    assert not over, (
        f"export over the limit in {len(over)} of {len(exports)} samples: {over[:10]}\n"
        + _guard_log(run)
    )


def _guard_log(run: DemoRun) -> str:
    """The export guard's decisions, from AppDaemon's log."""
    log = run.state_dir / "appdaemon" / "appdaemon.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join([line for line in lines if "export_guard" in line][-40:])
