"""The energy tally (apps/energy_tally.py) in a real AppDaemon against a real HA.

Hourly statistics are seeded with ``recorder/import_statistics`` for a few
meters (one recorded in Wh), the app runs its cycle, and the published
entities are read back from HA and compared with the seeded changes and with
HA's own ``recorder/statistic_during_period``. Some rows are then spoiled in
the database as real ones get spoiled (an empty sum, a missing hour, a drop),
a power statistic (mean only) is configured as a meter, and the tally's
figures are compared with sums worked out by hand; where HA's figure differs
by design, the test says how.
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
from tests.e2e.sums_by_hand import sums_by_hand

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
# Seeded clean, then spoiled in the database (see ``_spoil``).
GAP = ("sensor.e2e_tally_gap", "E2E gap", None, "kWh", 0.5)
GAP_LIFETIME = 5000.0  # the gap meter's reading when its history starts
RESET = ("sensor.e2e_tally_reset", "E2E reset", None, "kWh", 0.5)
DROP_KWH = 40.0
POWER = ("sensor.e2e_tally_power", "E2E power")


def seeded_hours(periods: TallyPeriods) -> list[datetime]:
    """Complete hours from 24 h before local midnight up to now.

    The first row has sum 0 (a meter's first compiled hour, as HA writes it):
    the changes count from the second row on.
    """
    first = periods.today_start - timedelta(hours=24)
    return [first + HOUR * h for h in range(int((periods.hour_start - first) / HOUR))]


def expected_kwh(periods: TallyPeriods, since: datetime, unit: str, per_hour: float) -> float:
    _first, *counted = seeded_hours(periods)
    hours = [h for h in counted if h >= since]
    return len(hours) * per_hour * (0.001 if unit == "Wh" else 1.0)


@pytest.fixture(scope="module")
def periods() -> TallyPeriods:
    return tally_periods(datetime.now(UTC), ZoneInfo(TIME_ZONE))


def spoiled_rows(periods: TallyPeriods) -> dict[str, dict[datetime, float | None]]:
    """The sums of the spoiled meters after ``_spoil``, by start hour."""
    hours = seeded_hours(periods)
    gap: dict[datetime, float | None] = {h: GAP_LIFETIME + GAP[4] * i for i, h in enumerate(hours)}
    # An empty sum two hours before midnight and no row for the last hour:
    # HA's change counts today's first row against 0 (the lifetime).
    gap[periods.today_start - 2 * HOUR] = None
    del gap[periods.today_start - HOUR]
    reset: dict[datetime, float | None] = {h: RESET[4] * i for i, h in enumerate(hours)}
    last = hours[-1]
    reset[last] = (reset[last] or 0.0) - DROP_KWH  # the meter was replaced
    return {GAP[0]: gap, RESET[0]: reset}


def _spoil(ha: HomeAssistant, periods: TallyPeriods) -> None:
    """Write the spoiled rows into the recorder's database (import refuses empty sums)."""
    db = sqlite3.connect(ha.config_dir / "home-assistant_v2.db", timeout=10)
    try:
        for statistic_id, rows in spoiled_rows(periods).items():
            (meta,) = db.execute(
                "SELECT id FROM statistics_meta WHERE statistic_id = ?", (statistic_id,)
            ).fetchone()
            kept = {h.timestamp() for h in rows}
            for start_ts, _ in db.execute(
                "SELECT start_ts, sum FROM statistics WHERE metadata_id = ?", (meta,)
            ).fetchall():
                if start_ts not in kept:
                    db.execute(
                        "DELETE FROM statistics WHERE metadata_id = ? AND start_ts = ?",
                        (meta, start_ts),
                    )
            for start, value in rows.items():
                db.execute(
                    "UPDATE statistics SET sum = ? WHERE metadata_id = ? AND start_ts = ?",
                    (value, meta, start.timestamp()),
                )
        db.commit()
    finally:
        db.close()


async def _seed(ha: HomeAssistant, periods: TallyPeriods) -> None:
    async with HaClient(ha.url, ha.token) as client:
        hours = seeded_hours(periods)
        for statistic_id, name, _role, unit, per_hour in (*METERS, GAP, RESET):
            offset = GAP_LIFETIME if statistic_id == GAP[0] else 0.0
            await client.import_statistics(
                statistic_id,
                [
                    {"start": h, "sum": offset + per_hour * i, "state": 100 + per_hour * i}
                    for i, h in enumerate(hours)
                ],
                unit=unit,
                name=name,
            )
        await client.import_statistics(
            POWER[0],
            [{"start": h, "mean": 800.0, "min": 100.0, "max": 2000.0} for h in hours],
            unit="W",
            name=POWER[1],
            has_sum=False,
            has_mean=True,
        )
        for statistic_id, *_ in (*METERS, GAP, RESET, POWER):
            await client.wait_statistics(statistic_id, hours[0], len(hours), timeout=60)
    await asyncio.to_thread(_spoil, ha, periods)


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
    meters += [{"statistic_id": m[0], "name": m[1]} for m in (GAP, RESET, POWER)]
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
    assert health["attributes"]["statistics_requests_per_cycle"] == 1
    assert health["attributes"]["statistics_requests_max"] == 13
    # The first cycle of the app has no kept complete days: today + the month
    # hour by hour (one page for these few meters).
    assert health["attributes"]["statistics_requests_last_cycle"] == 2


async def ha_change(client: HaClient, statistic_id: str, start: datetime, end: datetime) -> float:
    """HA's own figure: ``recorder/statistic_during_period``'s change, in kWh."""
    result = await client.ws_command(
        "recorder/statistic_during_period",
        statistic_id=statistic_id,
        fixed_period={"start_time": start.isoformat(), "end_time": end.isoformat()},
        types=["change"],
        units={"energy": "kWh"},
    )
    return float(result["change"])


async def test_clean_meters_agree_with_has_statistic_during_period(
    ha_client: HaClient, tally_ad: AppDaemon, periods: TallyPeriods
) -> None:
    for sid, name, *_ in METERS:
        today = await state_of(ha_client, f"sensor.{slug(name)}_energy_today")
        month = await state_of(ha_client, f"sensor.{slug(name)}_energy_this_month")
        ha_today = await ha_change(ha_client, sid, periods.today_start, periods.hour_start)
        ha_month = await ha_change(ha_client, sid, periods.month_start, periods.hour_start)
        assert float(today["state"]) == pytest.approx(ha_today, abs=0.0005), sid
        assert float(month["state"]) == pytest.approx(ha_month, abs=0.0005), sid


async def test_spoiled_rows_give_the_sums_worked_out_by_hand(
    ha_client: HaClient, tally_ad: AppDaemon, periods: TallyPeriods
) -> None:
    rows = spoiled_rows(periods)
    for sid, name, *_ in (GAP, RESET):
        today = await state_of(ha_client, f"sensor.{slug(name)}_energy_today")
        month = await state_of(ha_client, f"sensor.{slug(name)}_energy_this_month")
        hand_today, _ = sums_by_hand(rows[sid], periods.today_start)
        hand_month, drops = sums_by_hand(rows[sid], periods.month_start)
        assert float(today["state"]) == pytest.approx(hand_today, abs=0.0005), sid
        assert float(month["state"]) == pytest.approx(hand_month, abs=0.0005), sid
        if sid == RESET[0]:
            assert drops == 1
            assert month["attributes"]["resets"] == 1
            # By design: HA nets the drop into the period, the tally does not
            # (the drop row's own hour of use is not counted by the tally).
            ha_month = await ha_change(ha_client, sid, periods.month_start, periods.hour_start)
            assert ha_month == pytest.approx(hand_month - DROP_KWH + RESET[4], abs=0.0005)
    # The gap meter's lifetime reading is never published. HA's
    # statistics_during_period ``change`` for a window starting at midnight
    # would count today's first row against a sum of 0 (the row before has
    # none); its statistic_during_period starts from the first sum after the
    # gap instead, leaving out the hours across it.
    gap_month = await state_of(ha_client, f"sensor.{slug(GAP[1])}_energy_this_month")
    assert float(gap_month["state"]) < GAP_LIFETIME / 10


async def test_a_power_statistic_is_a_visible_problem_not_a_zero(
    ha_client: HaClient, tally_ad: AppDaemon
) -> None:
    power = await state_of(ha_client, f"sensor.{slug(POWER[1])}_energy_this_month")
    assert power["state"] == "unknown"
    assert "no sum" in power["attributes"]["problem"]


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
