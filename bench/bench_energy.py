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


async def cold_cycle(ws: HaSocket, meters: list[Any], periods: Any) -> tuple[Any, Any, float]:
    """Both commands; returns the tally, the month cache and parse+compute seconds."""
    from gridwatch.energy.month_cache import fill_month_cache
    from gridwatch.energy.recorder_statistics import build_requests, parse_statistics
    from gridwatch.energy.tally import compute_tally_from

    ids = [m.statistic_id for m in meters]
    requests = build_requests(ids, periods)
    hourly = await ws.command(requests.today)
    daily = await ws.command(requests.month)
    began = time.perf_counter()
    cache = fill_month_cache(meters, parse_statistics(daily, ids), periods)
    tally = compute_tally_from(meters, parse_statistics(hourly, ids), cache.days, {}, periods)
    return tally, cache, time.perf_counter() - began


async def warm_cycle(
    ws: HaSocket, meters: list[Any], periods: Any, cache: Any
) -> tuple[Any, float]:
    """The today command only, with the kept complete days of the month."""
    from gridwatch.energy.recorder_statistics import build_requests, parse_statistics
    from gridwatch.energy.tally import compute_tally_from

    ids = [m.statistic_id for m in meters]
    hourly = await ws.command(build_requests(ids, periods).today)
    began = time.perf_counter()
    tally = compute_tally_from(meters, parse_statistics(hourly, ids), cache.days, {}, periods)
    return tally, time.perf_counter() - began


async def per_meter_cycle(ws: HaSocket, meters: list[Any], periods: Any) -> Any:
    from gridwatch.energy.recorder_statistics import StatRow, build_requests, parse_statistics
    from gridwatch.energy.tally import compute_tally

    hourly: dict[str, tuple[StatRow, ...]] = {}
    daily: dict[str, tuple[StatRow, ...]] = {}
    for meter in meters:
        requests = build_requests([meter.statistic_id], periods)
        hourly |= parse_statistics(await ws.command(requests.today))
        daily |= parse_statistics(await ws.command(requests.month))
    return compute_tally(meters, hourly, daily, {}, periods)


def expected_today(meter: int, first: datetime, periods: Any) -> float:
    hours = int((periods.hour_start - first) / timedelta(hours=1))
    return sum(
        hourly_change(meter, h)
        for h in range(hours)
        if periods.today_start <= first + timedelta(hours=h) < periods.now
    )


def _timed_median(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def measure(ws: HaSocket, zone: ZoneInfo, first: datetime) -> list[Row]:
    from gridwatch.energy.periods import tally_periods
    from gridwatch.energy.tally import Meter

    rows: list[Row] = []
    meters_all = [Meter(METER_ID.format(i), f"m{i}", f"m{i}") for i in range(max(SIZES))]
    for size in SIZES:
        meters = meters_all[:size]
        periods = tally_periods(datetime.now(UTC), zone)
        cold, cold_local, warm, warm_local = [], [], [], []
        ws.received_bytes = 0
        for _ in range(COLD_RUNS):
            began = time.perf_counter()
            cold_tally, cache, local = await cold_cycle(ws, meters, periods)
            cold.append(time.perf_counter() - began)
            cold_local.append(local)
        cold_kib = ws.received_bytes / COLD_RUNS / 1024
        ws.received_bytes = 0
        for _ in range(WARM_RUNS):
            began = time.perf_counter()
            warm_tally, local = await warm_cycle(ws, meters, periods, cache)
            warm.append(time.perf_counter() - began)
            warm_local.append(local)
        warm_kib = ws.received_bytes / WARM_RUNS / 1024
        slow = []
        for _ in range(PER_METER_RUNS[size]):
            began = time.perf_counter()
            reference = await per_meter_cycle(ws, meters, periods)
            slow.append(time.perf_counter() - began)
        cold_ms, warm_ms, per_meter_ms = (_timed_median(t) for t in (cold, warm, slow))
        same = warm_tally == cold_tally and all(
            a.today_kwh == b.today_kwh and a.month_kwh == b.month_kwh
            for a, b in zip(cold_tally.meters, reference.meters, strict=True)
        )
        right = all(
            abs((m.today_kwh or 0) - expected_today(i, first, periods)) < 1e-6
            for i, m in enumerate(warm_tally.meters)
        )
        progress(
            f"{size} meters: cold {cold_ms:.0f} ms, warm {warm_ms:.0f} ms, "
            f"per meter {per_meter_ms:.0f} ms"
        )
        big = size == max(SIZES)
        rows += [
            row(
                f"cold cycle, {size} meters (2 requests)",
                cold_ms,
                "ms",
                note=f"median of {COLD_RUNS}; parse+compute "
                f"{_timed_median(cold_local):.1f} ms; answers {cold_kib:,.0f} KiB",
            ),
            row(
                f"warm cycle, {size} meters (1 request)",
                warm_ms,
                "ms",
                "< 500" if big else "",
                f"median of {WARM_RUNS}; parse+compute "
                f"{_timed_median(warm_local):.1f} ms; answer {warm_kib:,.0f} KiB",
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
                f"warm == cold == per-meter, today matches seeded sums ({size})",
                "yes" if same and right else "NO",
                "",
            ),
        ]
    rows += await month_query_variants(ws, meters_all, tally_periods(datetime.now(UTC), zone))
    return rows


async def month_query_variants(ws: HaSocket, meters: list[Any], periods: Any) -> list[Row]:
    """Time the month-to-date command alone, as used and as it could be.

    The day-period command makes HA read and reduce every hourly row since
    the month start (only cold cycles send it). The alternative (not used:
    it nets a negative change on an earlier day into the month instead of
    leaving it out) reads the sum at the month start from a 24 h hour window
    and subtracts it from the latest sum that the today command already
    returns.
    """
    from gridwatch.energy.recorder_statistics import build_requests

    ids = [m.statistic_id for m in meters]
    used = build_requests(ids, periods).month
    window_end = min(periods.month_start + timedelta(hours=24), periods.now)
    alternative = {
        **used,
        "period": "hour",
        "types": ["change", "sum"],
        "end_time": window_end.isoformat(),
    }
    figures = []
    for command in (used, alternative):
        times = []
        for _ in range(3):
            began = time.perf_counter()
            await ws.command(command)
            times.append(time.perf_counter() - began)
        figures.append(statistics.median(times) * 1000)
    return [
        row(
            f"month command, day period, {len(ids)} meters (used)",
            figures[0],
            "ms",
            note="cold cycles only",
        ),
        row(
            f"month command, sum at month start, {len(ids)} meters (alternative)",
            figures[1],
            "ms",
            note="not used: cannot leave out a negative day",
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
    periods = tally_periods(datetime.now(UTC), zone)
    # Month to date plus one day before it, up to the last complete hour.
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
