"""The demo's first look: the tally's tiles agree with HA's Energy dashboard.

The demo imports a past for its meters (demo.history) before AppDaemon
starts, so the tally publishes today and this month at once. What it
publishes must be what HA itself says for the same meters and periods:
``recorder/statistic_during_period`` with a calendar period and ``change``,
the figures of HA's Energy dashboard. The simulated clock runs at 1/1000
of real time, so the live meters add (almost) nothing between the two reads.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.demo.demo_process import DemoRun
from tests.e2e.ha_client import HaClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# statistic id -> the tally's entity slug (apps.yaml's meter names)
METERS = {
    "sensor.grid_import_energy": "grid_import",
    "sensor.grid_export_energy": "grid_export",
    "sensor.pv_energy": "pv",
    "sensor.battery_discharge_energy": "battery_discharge",
}
PERIODS = {"day": "today", "month": "this_month"}
# The tally publishes 3 decimals.
TOLERANCE_KWH = 0.002


async def _tally(client: HaClient) -> dict[str, float]:
    out = {}
    for slug in METERS.values():
        for suffix in PERIODS.values():
            entity_id = f"sensor.{slug}_energy_{suffix}"
            state = await client.get_state(entity_id)
            with contextlib.suppress(ValueError):
                out[entity_id] = float((state or {}).get("state", ""))
    return out


async def test_the_tiles_show_what_the_energy_dashboard_shows_from_the_start(tmp_path):
    run = DemoRun(
        tmp_path / "state",
        ["--duration", "150", "--no-frontend", "--no-story", "--speed", "0.001"],
    )
    try:
        await run.start()
        assert any("days of past" in line for line in run.lines), run.output()
        async with HaClient(run.urls["Home Assistant"], run.token) as client:
            tally: dict[str, float] = {}
            async with asyncio.timeout(60):
                while len(tally) < len(METERS) * len(PERIODS):
                    await asyncio.sleep(1)
                    tally = await _tally(client)
            ha = {}
            for statistic_id, slug in METERS.items():
                for period, suffix in PERIODS.items():
                    answer = await client.ws_command(
                        "recorder/statistic_during_period",
                        statistic_id=statistic_id,
                        calendar={"period": period},
                        types=["change"],
                        units={"energy": "kWh"},
                    )
                    ha[f"sensor.{slug}_energy_{suffix}"] = answer["change"]
    finally:
        await run.stop()
    assert set(ha) == set(tally)
    for entity_id, value in ha.items():
        assert tally[entity_id] == pytest.approx(value, abs=TOLERANCE_KWH), entity_id
    # A month of a site with PV: the past is there, not a few hours of it.
    assert tally["sensor.pv_energy_this_month"] >= tally["sensor.pv_energy_today"]
    assert tally["sensor.grid_import_energy_this_month"] > 0
