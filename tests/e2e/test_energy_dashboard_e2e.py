"""The energy tally's sensors as Home Assistant itself judges them, on each HA.

Two checks HA offers its users: the recorder's statistics validation
(Developer tools > Statistics) and the Energy dashboard's validation of its
sources (Settings > Dashboards > Energy). The tally's sensors are meant to be
accepted by both (DESIGN: "so HA's Energy dashboard and statistics accept
them"): here the real HA says whether they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient
from tests.e2e.ha_config import GRID_POWER

APP = "energy_dashboard_tally"
HOUR = timedelta(hours=1)
# statistic id, meter name, role, kWh per hour
METERS = (
    ("sensor.e2e_dash_grid", "E2E dash grid", "import", 0.5),
    ("sensor.e2e_dash_export", "E2E dash export", "export", 0.25),
    ("sensor.e2e_dash_pv", "E2E dash pv", "pv", 1.5),
)
TODAY = {m[0]: f"sensor.{m[1].lower().replace(' ', '_')}_energy_today" for m in METERS}
MONTH = {m[0]: f"sensor.{m[1].lower().replace(' ', '_')}_energy_this_month" for m in METERS}


async def _seed(ha: HomeAssistant) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - HOUR * h for h in range(6, 0, -1)]
    async with HaClient(ha.url, ha.token) as client:
        for statistic_id, name, _role, per_hour in METERS:
            await client.import_statistics(
                statistic_id,
                [{"start": h, "sum": per_hour * (i + 1)} for i, h in enumerate(hours)],
                name=name,
            )
        for statistic_id, *_ in METERS:
            await client.wait_statistics(statistic_id, hours[0], len(hours), timeout=60)


@pytest.fixture(scope="module")
def tally_ad(ha: HomeAssistant, appdaemon_module_factory: AppDaemonFactory) -> AppDaemon:
    # A module fixture has no test loop: seed on a fresh loop in a thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _seed(ha)).result(timeout=120)
    ad = appdaemon_module_factory.start(
        apps={
            APP: {
                "module": "gridwatch_energy_tally",
                "class": "EnergyTally",
                "meters": [{"statistic_id": m[0], "name": m[1], "role": m[2]} for m in METERS],
                "interval_s": 3600,
            }
        }
    )
    ad.wait_app(APP)
    return ad


async def _published(client: HaClient) -> None:
    for entity_id in [*TODAY.values(), *MONTH.values()]:
        await client.wait_state(
            entity_id,
            lambda s: s is not None and s["state"] not in ("unknown", "unavailable"),
            timeout=30,
        )


async def test_recorder_statistics_validation_finds_nothing_wrong_with_the_tally(
    ha_client: HaClient, tally_ad: AppDaemon
) -> None:
    await _published(ha_client)

    issues = await ha_client.validate_statistics()

    ours = {k: v for k, v in issues.items() if k in {*TODAY.values(), *MONTH.values()}}
    assert ours == {}


async def test_the_energy_dashboard_accepts_the_tally_sensors_as_sources(
    ha_client: HaClient, tally_ad: AppDaemon
) -> None:
    await _published(ha_client)
    grid, export, pv = (TODAY[m[0]] for m in METERS)
    no_price = {"stat_cost": None, "entity_energy_price": None, "number_energy_price": None}

    result = await ha_client.energy_validate(
        {
            "energy_sources": [
                {
                    "type": "grid",
                    "flow_from": [{"stat_energy_from": grid, **no_price}],
                    "flow_to": [
                        {
                            "stat_energy_to": export,
                            "stat_compensation": None,
                            "entity_energy_price": None,
                            "number_energy_price": None,
                        }
                    ],
                    "cost_adjustment_day": 0,
                },
                {"type": "solar", "stat_energy_from": pv, "config_entry_solar_forecast": None},
            ],
            "device_consumption": [
                {"stat_consumption": MONTH[METERS[0][0]]},
                # A control the validator must refuse: a power sensor (W) is
                # no energy source. Proves the check looks at the entities.
                {"stat_consumption": GRID_POWER},
            ],
        }
    )

    judged: list[list[dict[str, Any]]] = [*result["energy_sources"], *result["device_consumption"]]
    *ours, control = judged
    assert "entity_unexpected_device_class" in _types(control)
    # A fresh sensor has no long-term statistics until HA's next five-minute
    # compile ("statistics not defined": the dashboard says to wait). Every
    # other check (recorded, numeric, device class, unit, state class, not
    # negative) must pass for each of the tally's sources.
    assert [_types(issues) - {"statistics_not_defined"} for issues in ours] == [set()] * 3


def _types(issues: list[dict[str, Any]]) -> set[str]:
    return {issue["type"] for issue in issues}
