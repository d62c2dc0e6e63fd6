"""Energy tally cycle time against a real Home Assistant recorder.

Seeds hourly energy statistics for 500 meters (month to date) straight into
the recorder's database, then times the tally cycle for 10 / 100 / 500
meters three ways in the same run:

* cold: the batched design's first cycle of a day, two
  ``recorder/statistics_during_period`` commands for all meters (today and
  month to date), keeping the month's complete days
  (:mod:`gridwatch.energy.month_cache`);
* warm: every other cycle of the day, the today command only plus the kept
  complete days;
* recheck: once an hour, the today command plus the last 2 complete days
  re-read hour by hour (late statistics);
* per meter: the same cycle with one pair of commands per meter.

A cycle here is what the app does minus reading live states and writing
entities: build the commands, send them over HA's websocket, parse the
answers, compute the tally.

The websocket is opened directly with aiohttp (the app goes through
AppDaemon's HASS plugin, which adds its own small per-message overhead).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import Row, progress, row

SIZES = (10, 100, 500)
COLD_RUNS = 5
WARM_RUNS = 10
# One run at 500 meters is 1,000 sequential requests: enough for a figure.
PER_METER_RUNS = {10: 3, 100: 2, 500: 1}
COMMAND_TIMEOUT_S = 60.0
METER_ID = "sensor.bench_energy_{:03d}"
RECHECK_DAYS = 2  # the default of recheck_days


class HaSocket:
    """A minimal HA websocket client: authenticate, one command at a time."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self._next_id = 0
        self.received_bytes = 0

    async def __aenter__(self) -> HaSocket:
        import aiohttp

        self._session = aiohttp.ClientSession()
        # No size cap here: the bench reports the answer sizes instead
        # (AppDaemon's own cap is ws_max_msg_size, 4 MiB by default).
        self._ws = await self._session.ws_connect(self.url, max_msg_size=0)
        await self._receive()  # auth_required
        await self._ws.send_json({"type": "auth", "access_token": self.token})
        auth = await self._receive()
        if auth.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {auth}")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._ws.close()
        await self._session.close()

    async def _receive(self) -> dict[str, Any]:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            raw = await self._ws.receive_str()
        self.received_bytes += len(raw)
        message: dict[str, Any] = json.loads(raw)
        return message

    async def command(self, command: dict[str, Any]) -> Any:
        """Send one command and return its result (raises on ``success: false``)."""
        self._next_id += 1
        await self._ws.send_json({"id": self._next_id, **command})
        while True:
            message = await self._receive()
            if message.get("id") == self._next_id and message.get("type") == "result":
                break
        if not message.get("success"):
            raise RuntimeError(f"{command['type']} failed: {message.get('error')}")
        return message.get("result")


def hourly_change(meter: int, hour: int) -> float:
    """A deterministic, varied, non-negative kWh per hour."""
    return round(0.1 + 0.05 * (meter % 7) + 0.01 * (hour % 24), 3)


def seed_rows(meter: int, first: datetime, hours: int) -> list[dict[str, Any]]:
    total, rows = 0.0, []
    for h in range(hours):
        total += hourly_change(meter, h)
        start = first + timedelta(hours=h)
        rows.append({"start": start.isoformat(), "sum": total, "state": 1000.0 + total})
    return rows


def seed_database(db_path: Path, meters: int, first: datetime, hours: int) -> int:
    """Write hourly sum statistics straight into HA's stopped SQLite database.

    ``recorder/import_statistics`` checks each row against the table one by
    one (about 2 ms a row here: 500 meters x a month took ~10 minutes), so
    the bench writes the rows the recorder itself would write (schema 42:
    ``statistics_meta`` + ``statistics`` with ``*_ts`` columns). The e2e test
    seeds through ``import_statistics`` instead, for a few meters.

    Returns:
        Rows written.
    """
    import sqlite3

    now = time.time()
    with sqlite3.connect(db_path) as db:
        stats = []
        for i in range(meters):
            cursor = db.execute(
                "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement,"
                " has_mean, has_sum, name) VALUES (?, 'recorder', 'kWh', 0, 1, ?)",
                (METER_ID.format(i), f"Bench meter {i}"),
            )
            meta_id = cursor.lastrowid
            for seeded in seed_rows(i, first, hours):
                start = datetime.fromisoformat(seeded["start"]).timestamp()
                stats.append((now, meta_id, start, seeded["state"], seeded["sum"]))
        db.executemany(
            "INSERT INTO statistics (created_ts, metadata_id, start_ts, state, sum)"
            " VALUES (?, ?, ?, ?, ?)",
            stats,
        )
    return len(stats)


async def cold_cycle(
    ws: HaSocket, meters: list[Any], periods: Any, zone: ZoneInfo
) -> tuple[Any, Any, float]:
    """Today + month; returns the tally, the kept month and parse+compute seconds."""
    from gridwatch.energy.month_cache import MonthLedger
    from gridwatch.energy.recorder_statistics import (
        month_request,
        parse_statistics,
        today_request,
    )
    from gridwatch.energy.tally import compute_tally_from

    ids = [m.statistic_id for m in meters]
    hourly = await ws.command(today_request(ids, periods))
    daily = await ws.command(month_request(ids, periods))
    began = time.perf_counter()
    ledger = MonthLedger(zone)
    ledger.plan(periods, ids)
    ledger.store_month(parse_statistics(daily, ids), periods, dict.fromkeys(ids, 1.0))
    tally = compute_tally_from(meters, parse_statistics(hourly, ids), ledger.meters, {}, periods)
    return tally, ledger, time.perf_counter() - began


async def warm_cycle(
    ws: HaSocket, meters: list[Any], periods: Any, ledger: Any
) -> tuple[Any, float]:
    """The today command only, with the kept complete days of the month."""
    from gridwatch.energy.recorder_statistics import parse_statistics, today_request
    from gridwatch.energy.tally import compute_tally_from

    ids = [m.statistic_id for m in meters]
    hourly = await ws.command(today_request(ids, periods))
    began = time.perf_counter()
    tally = compute_tally_from(meters, parse_statistics(hourly, ids), ledger.meters, {}, periods)
    return tally, time.perf_counter() - began


async def recheck_cycle(
    ws: HaSocket, meters: list[Any], periods: Any, ledger: Any
) -> tuple[Any, float]:
    """Today + the hourly recheck of the last complete days (once an hour)."""
    from gridwatch.energy.recorder_statistics import (
        parse_statistics,
        recheck_request,
        today_request,
    )
    from gridwatch.energy.tally import compute_tally_from

    ids = [m.statistic_id for m in meters]
    window = ledger.plan(periods, ids).recheck_from
    if window is None:  # the bench ran on the 1st or 2nd of a month
        raise RuntimeError("no complete days to recheck")
    hourly = await ws.command(today_request(ids, periods))
    rows = await ws.command(recheck_request(ids, window, periods))
    began = time.perf_counter()
    ledger.store_recheck(parse_statistics(rows, ids), window, periods, dict.fromkeys(ids, 1.0))
    tally = compute_tally_from(meters, parse_statistics(hourly, ids), ledger.meters, {}, periods)
    ledger._checked_hour = None  # due again for the next run of the bench
    return tally, time.perf_counter() - began


async def per_meter_cycle(ws: HaSocket, meters: list[Any], periods: Any) -> Any:
    from gridwatch.energy.recorder_statistics import (
        StatRow,
        month_request,
        parse_statistics,
        today_request,
    )
    from gridwatch.energy.tally import compute_tally

    hourly: dict[str, tuple[StatRow, ...]] = {}
    daily: dict[str, tuple[StatRow, ...]] = {}
    for meter in meters:
        ids = [meter.statistic_id]
        hourly |= parse_statistics(await ws.command(today_request(ids, periods)))
        daily |= parse_statistics(await ws.command(month_request(ids, periods)))
    return compute_tally(meters, hourly, daily, {}, periods)


def expected_today(meter: int, first: datetime, periods: Any) -> float:
    hours = int((periods.hour_start - first) / timedelta(hours=1))
    return sum(
        hourly_change(meter, h)
        for h in range(hours)
        if periods.today_start <= first + timedelta(hours=h) < periods.now
    )


def bench_now(zone: ZoneInfo) -> datetime:
    """23:30 local today: the today command's largest answer (23 complete hours).

    The warm cycle's cost grows through the day; timing it at the wall
    clock's hour would flatter it after midnight.
    """
    from gridwatch.energy.periods import tally_periods

    return tally_periods(datetime.now(UTC), zone).tomorrow_start - timedelta(minutes=30)


def _timed_median(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def measure(ws: HaSocket, zone: ZoneInfo, first: datetime) -> list[Row]:
    from gridwatch.energy.periods import tally_periods
    from gridwatch.energy.tally import Meter

    rows: list[Row] = []
    meters_all = [Meter(METER_ID.format(i), f"m{i}", f"m{i}") for i in range(max(SIZES))]
    for size in SIZES:
        meters = meters_all[:size]
        periods = tally_periods(bench_now(zone), zone)
        cold, cold_local, warm, warm_local, recheck, recheck_local = [], [], [], [], [], []
        ws.received_bytes = 0
        for _ in range(COLD_RUNS):
            began = time.perf_counter()
            cold_tally, ledger, local = await cold_cycle(ws, meters, periods, zone)
            cold.append(time.perf_counter() - began)
            cold_local.append(local)
        cold_kib = ws.received_bytes / COLD_RUNS / 1024
        ws.received_bytes = 0
        for _ in range(WARM_RUNS):
            began = time.perf_counter()
            warm_tally, local = await warm_cycle(ws, meters, periods, ledger)
            warm.append(time.perf_counter() - began)
            warm_local.append(local)
        warm_kib = ws.received_bytes / WARM_RUNS / 1024
        ws.received_bytes = 0
        for _ in range(COLD_RUNS):
            began = time.perf_counter()
            recheck_tally, local = await recheck_cycle(ws, meters, periods, ledger)
            recheck.append(time.perf_counter() - began)
            recheck_local.append(local)
        recheck_kib = ws.received_bytes / COLD_RUNS / 1024
        slow = []
        for _ in range(PER_METER_RUNS[size]):
            began = time.perf_counter()
            reference = await per_meter_cycle(ws, meters, periods)
            slow.append(time.perf_counter() - began)
        cold_ms, warm_ms, recheck_ms, per_meter_ms = (
            _timed_median(t) for t in (cold, warm, recheck, slow)
        )
        # Clean seeded meters: every path gives the same figures.
        same = (
            warm_tally == cold_tally
            and all(
                a.today_kwh == b.today_kwh and abs((a.month_kwh or 0) - (b.month_kwh or 0)) < 1e-6
                for a, b in zip(recheck_tally.meters, cold_tally.meters, strict=True)
            )
            and all(
                a.today_kwh == b.today_kwh and a.month_kwh == b.month_kwh
                for a, b in zip(cold_tally.meters, reference.meters, strict=True)
            )
        )
        right = all(
            abs((m.today_kwh or 0) - expected_today(i, first, periods)) < 1e-6
            for i, m in enumerate(warm_tally.meters)
        )
        progress(
            f"{size} meters: cold {cold_ms:.0f} ms, warm {warm_ms:.0f} ms, "
            f"recheck {recheck_ms:.0f} ms, per meter {per_meter_ms:.0f} ms"
        )
        big = size == max(SIZES)
        rows += [
            row(
                f"cold cycle, {size} meters (today + month; the app adds the recheck)",
                cold_ms,
                "ms",
                note=f"median of {COLD_RUNS}; parse+compute "
                f"{_timed_median(cold_local):.1f} ms; answers {cold_kib:,.0f} KiB",
            ),
            row(
                f"warm cycle, {size} meters (1 request)",
                warm_ms,
                "ms",
                "< 250" if big else "",
                f"median of {WARM_RUNS}; parse+compute "
                f"{_timed_median(warm_local):.1f} ms; answer {warm_kib:,.0f} KiB",
            ),
            row(
                f"recheck cycle, {size} meters (2 requests, once an hour)",
                recheck_ms,
                "ms",
                note=f"today + {RECHECK_DAYS} days hourly; median of {COLD_RUNS}; parse+compute "
                f"{_timed_median(recheck_local):.1f} ms; answers {recheck_kib:,.0f} KiB",
            ),
            row(
                f"recheck cost per hour, {size} meters",
                recheck_ms - warm_ms,
                "ms/h",
                note="the recheck cycle minus a warm cycle",
            ),
            row(
                f"per-meter cycle, {size} meters ({2 * size} requests)",
                per_meter_ms,
                "ms",
                note=f"median of {PER_METER_RUNS[size]}",
            ),
            row(
                f"speed-up warm vs per-meter, {size} meters",
                per_meter_ms / warm_ms,
                "x",
                ">= 20" if big else "",
            ),
            row(f"speed-up cold vs per-meter, {size} meters", per_meter_ms / cold_ms, "x"),
            row(
                f"warm == cold == recheck == per-meter, today matches seeded sums ({size})",
                "yes" if same and right else "NO",
                "",
            ),
        ]
    rows += await widest_recheck(ws, meters_all, zone)
    return rows


async def widest_recheck(ws: HaSocket, meters: list[Any], zone: ZoneInfo) -> list[Row]:
    """The recheck at ``recheck_days``' upper bound (4), for AppDaemon's 4 MiB message cap."""
    from gridwatch.energy.periods import day_starts_between, local_days_before, tally_periods
    from gridwatch.energy.recorder_statistics import recheck_request

    periods = tally_periods(bench_now(zone), zone)
    ids = [m.statistic_id for m in meters]
    window = max(periods.month_start, local_days_before(periods.today_start, 4, zone))
    ws.received_bytes = 0
    began = time.perf_counter()
    await ws.command(recheck_request(ids, window, periods))
    took_ms = (time.perf_counter() - began) * 1000
    days = len(day_starts_between(window, periods.today_start, zone))
    return [
        row(
            f"recheck command, {len(ids)} meters, recheck_days 4 ({days} days this month)",
            took_ms,
            "ms",
        ),
        row(
            f"its answer, {len(ids)} meters, recheck_days 4",
            ws.received_bytes / 1024,
            "KiB",
            "< 4096",
            "AppDaemon's ws_max_msg_size is 4 MiB",
        ),
    ]


async def run() -> list[Row]:
    from gridwatch.energy.periods import tally_periods
    from tests.e2e.ha import HomeAssistant
    from tests.e2e.ha_config import DOMAINS, TIME_ZONE, HaConfig
    from tests.e2e.ha_install import ensure_installed, install_from_env
    from tests.e2e.process import free_port

    install = install_from_env()
    await asyncio.to_thread(ensure_installed, install, DOMAINS)
    zone = ZoneInfo(TIME_ZONE)
    periods = tally_periods(bench_now(zone), zone)
    # Month to date plus one day before it, up to the last complete hour of
    # the bench's "now" (rows in the future are rows like any other to HA).
    first = periods.month_start - timedelta(days=1)
    hours = int((periods.hour_start - first) / timedelta(hours=1))
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-energy-") as tmp:
        ha = HomeAssistant(install, Path(tmp), HaConfig(port=free_port(), time_zone=TIME_ZONE))
        progress("first start of Home Assistant (creates the database)")
        await asyncio.to_thread(ha.start)
        try:
            await asyncio.to_thread(ha.stop)
            progress(f"seeding {max(SIZES)} meters x {hours} hourly rows")
            began = time.perf_counter()
            written = seed_database(Path(tmp) / "home-assistant_v2.db", max(SIZES), first, hours)
            seeded_s = time.perf_counter() - began
            await asyncio.to_thread(ha.start)
            async with HaSocket(ha.ws_url, ha.token) as ws:
                rows = await measure(ws, zone, first)
        finally:
            await asyncio.to_thread(ha.stop)
    return [
        row("seeded hourly statistics rows", written, "", note=f"in {seeded_s:.1f} s (sqlite)"),
        *rows,
    ]
