"""The energy tally (apps/energy_tally.py) in a real AppDaemon against a real HA.

Hourly statistics are seeded with ``recorder/import_statistics`` for a few
meters (one recorded in Wh), the app runs its cycle, and the published
entities are read back from HA and compared with the seeded changes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.periods import TallyPeriods, tally_periods
from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient, wait_for
from tests.e2e.ha_config import TIME_ZONE

APP = "energy_tally"
REFRESH = "gridwatch_energy_tally_refresh"
NOTICE_ID = "energy_tally_statistics_unavailable"
HIDDEN_TABLE = "gridwatch_e2e_hidden_statistics"
HOUR = timedelta(hours=1)
# id, name, role, unit, change per hour in that unit
METERS = (
    ("sensor.e2e_tally_grid", "E2E grid", "import", "kWh", 0.5),
    ("sensor.e2e_tally_pv", "E2E PV", "pv", "Wh", 1500.0),
    ("sensor.e2e_tally_export", "E2E export", "export", "kWh", 0.25),
)
MISSING = ("sensor.e2e_tally_never_recorded", "E2E never", "export")


def seeded_hours(periods: TallyPeriods) -> list[datetime]:
    """Complete hours from 24 h before local midnight up to now."""
    first = periods.today_start - timedelta(hours=24)
    return [first + HOUR * h for h in range(int((periods.hour_start - first) / HOUR))]


def expected_kwh(periods: TallyPeriods, since: datetime, unit: str, per_hour: float) -> float:
    hours = [h for h in seeded_hours(periods) if h >= since]
    return len(hours) * per_hour * (0.001 if unit == "Wh" else 1.0)


@pytest.fixture(scope="module")
def periods() -> TallyPeriods:
    return tally_periods(datetime.now(UTC), ZoneInfo(TIME_ZONE))


async def _seed(ha: HomeAssistant, periods: TallyPeriods) -> None:
    async with HaClient(ha.url, ha.token) as client:
        hours = seeded_hours(periods)
        for statistic_id, name, _role, unit, per_hour in METERS:
            await client.import_statistics(
                statistic_id,
                [
                    {"start": h, "sum": per_hour * (i + 1), "state": 100 + per_hour * (i + 1)}
                    for i, h in enumerate(hours)
                ],
                unit=unit,
                name=name,
            )
        for statistic_id, *_ in METERS:
            await client.wait_statistics(statistic_id, hours[0], len(hours), timeout=60)


@pytest.fixture(scope="module")
def seeded(ha: HomeAssistant, periods: TallyPeriods) -> TallyPeriods:
    # A module-scoped fixture has no test's event loop: seed on a fresh loop
    # in a worker thread (pytest-asyncio may own the main thread's loop).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _seed(ha, periods)).result(timeout=120)
    return periods


@pytest.fixture(scope="module")
def tally_ad(appdaemon_module_factory: AppDaemonFactory, seeded: TallyPeriods) -> AppDaemon:
    meters = [{"statistic_id": m[0], "name": m[1], "role": m[2]} for m in METERS]
    meters.append({"statistic_id": MISSING[0], "name": MISSING[1], "role": MISSING[2]})
    ad = appdaemon_module_factory.start(
        apps={
            "notifier": {"module": "gridwatch_notifier", "class": "Notifier", "min_repost_s": 0},
            APP: {
                "module": "gridwatch_energy_tally",
                "class": "EnergyTally",
                "meters": meters,
                "interval_s": 3600,  # cycles come from the refresh event here
                "query_timeout_s": 3,
            },
        }
    )
    ad.wait_app(APP)
    ad.wait_app("notifier")
    return ad


async def state_of(client: HaClient, entity_id: str) -> dict[str, Any]:
    state = await client.wait_state(entity_id, lambda s: s is not None, timeout=30)
    assert state is not None
    return state


def slug(name: str) -> str:
    return name.lower().replace(" ", "_")


async def test_published_values_match_the_seeded_statistics(
    ha_client: HaClient, tally_ad: AppDaemon, periods: TallyPeriods
) -> None:
    zone = ZoneInfo(TIME_ZONE)
    for _sid, name, _role, unit, per_hour in METERS:
        today = await state_of(ha_client, f"sensor.{slug(name)}_energy_today")
        month = await state_of(ha_client, f"sensor.{slug(name)}_energy_this_month")

        assert float(today["state"]) == pytest.approx(
            expected_kwh(periods, periods.today_start, unit, per_hour), abs=0.001
        )
        assert float(month["state"]) == pytest.approx(
            expected_kwh(periods, periods.month_start, unit, per_hour), abs=0.001
        )
        for entity, start in ((today, periods.today_start), (month, periods.month_start)):
            attrs = entity["attributes"]
            assert attrs["unit_of_measurement"] == "kWh"
            assert attrs["device_class"] == "energy"
            assert attrs["state_class"] == "total"
            assert attrs["last_reset"] == start.astimezone(zone).isoformat()
            assert attrs["stale"] is False

    never = await state_of(ha_client, f"sensor.{slug(MISSING[1])}_energy_today")
    assert never["state"] == "unknown"
    export_total = await state_of(ha_client, f"sensor.{APP}_export_today")
    assert export_total["state"] == "unknown"
    assert export_total["attributes"]["missing_meters"] == [MISSING[1]]
    pv_total = await state_of(ha_client, f"sensor.{APP}_pv_today")
    assert float(pv_total["state"]) == pytest.approx(
        expected_kwh(periods, periods.today_start, "Wh", 1500.0), abs=0.001
    )
    health = await state_of(ha_client, f"sensor.{APP}_health")
    assert health["state"] == "ok"
    assert health["attributes"]["statistics_requests_per_cycle"] == 2
    # The first cycle of the app has no kept complete days: both requests.
    assert health["attributes"]["statistics_requests_last_cycle"] == 2


@contextlib.contextmanager
def statistics_table_hidden(ha: HomeAssistant) -> Iterator[None]:
    """Make the recorder's statistics queries fail, then heal.

    The long-term ``statistics`` table is renamed away, so every query HA
    runs against it fails ("no such table") as on a broken database; renamed
    back afterwards, with every row intact. (HA stopping is no use here:
    AppDaemon 4.5.13 terminates the apps when it loses HA; and a running HA's
    WAL database cannot be locked against readers from outside.)
    """
    db = sqlite3.connect(ha.config_dir / "home-assistant_v2.db", timeout=10)
    try:
        db.execute(f"ALTER TABLE statistics RENAME TO {HIDDEN_TABLE}")
        db.commit()
        yield
    finally:
        db.execute(f"ALTER TABLE {HIDDEN_TABLE} RENAME TO statistics")
        db.commit()
        db.close()


async def refresh_and_wait_failures(client: HaClient, failures: int) -> dict[str, Any]:
    await client.rest("POST", f"/api/events/{REFRESH}", {})
    return await wait_for(
        lambda: state_of(client, f"sensor.{APP}_health"),
        lambda s: s["attributes"]["consecutive_failures"] >= failures,
        timeout=30,
        interval=0.3,
        what=f"{failures} failed cycles",
    )


async def test_failed_queries_keep_stale_values_then_notice_then_recover(
    ha: HomeAssistant, ha_client: HaClient, tally_ad: AppDaemon, periods: TallyPeriods
) -> None:
    grid = f"sensor.{slug(METERS[0][1])}_energy_today"
    before = await state_of(ha_client, grid)

    with statistics_table_hidden(ha):
        for n in (1, 2):
            health = await refresh_and_wait_failures(ha_client, n)
            assert health["state"] == "stale"
        stale = await state_of(ha_client, grid)
        assert stale["state"] == before["state"]
        assert stale["attributes"]["stale"] is True
        health = await refresh_and_wait_failures(ha_client, 3)
        assert health["state"] == "error"
        assert "statistics_during_period" in health["attributes"]["last_error"]
        found = await wait_for(
            ha_client.notifications, lambda n: NOTICE_ID in n, timeout=20, what="the notice"
        )
        assert "recorder" in found[NOTICE_ID]["message"].lower()

    await ha_client.rest("POST", f"/api/events/{REFRESH}", {})
    health = await wait_for(
        lambda: state_of(ha_client, f"sensor.{APP}_health"),
        lambda s: s["state"] == "ok",
        timeout=30,
        what="recovery",
    )
    assert health["attributes"]["consecutive_failures"] == 0
    await wait_for(
        ha_client.notifications, lambda n: NOTICE_ID not in n, timeout=20, what="notice resolved"
    )
    recovered = await state_of(ha_client, grid)
    assert recovered["attributes"]["stale"] is False
