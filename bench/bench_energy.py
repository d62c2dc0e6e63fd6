"""Energy tally: answer sizes and cycle times against a real Home Assistant recorder.

Seeds hourly energy statistics for 2,000 meters (the month to 23:30 on its
28th local day, and the 3 days before it) straight into the recorder's
database, then, for 500 and 2,000 meters at ``recheck_days`` 4, runs the
tally's own plan (:class:`gridwatch.energy.month_cache.MonthLedger`) over
HA's websocket and prints:

* bytes per row of HA's answer (sum only; sum and state), the figures
  :data:`gridwatch.energy.recorder_statistics.BYTES_PER_ROW` holds;
* cold: the whole month read hour by hour, in pages (cycles, requests per
  cycle, the largest answer, wall time);
* steady: the ``today`` command only;
* recheck: ``today`` + the last 4 complete days hour by hour (once an hour);
* whether the month figures equal the seeded sums.

A cycle here is what the app does minus reading live states and writing
entities: build the commands, send them over HA's websocket, parse the
answers, compute the tally. The websocket is opened directly with aiohttp
(AppDaemon's HASS plugin adds its own small per-message overhead); its size
cap is off so a too-large answer is measured rather than refused.

Run: ``GRIDWATCH_HA_VERSION=2024.1.6 .venv/bin/python -m bench energy``
(and 2026.2.3).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import Row, progress, row

SIZES = (500, 2000)
RECHECK_DAYS = 4  # the upper bound of recheck_days
COMMAND_TIMEOUT_S = 120.0
METER_ID = "sensor.bench_energy_{:04d}"
CAP = 4 * 1024 * 1024  # AppDaemon's ws_max_msg_size


class HaSocket:
    """A minimal HA websocket client: authenticate, one command at a time."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self._next_id = 0
        self.last_bytes = 0

    async def __aenter__(self) -> HaSocket:
        import aiohttp

        self._session = aiohttp.ClientSession()
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
        self.last_bytes = len(raw.encode())
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
        columns = {row[1] for row in db.execute("PRAGMA table_info(statistics_meta)")}
        # HA 2025.x added mean_type (NOT NULL; 0: no mean) and unit_class.
        extra = ", mean_type, unit_class" if "mean_type" in columns else ""
        values = ", 0, 'energy'" if extra else ""
        for i in range(meters):
            cursor = db.execute(
                "INSERT INTO statistics_meta (statistic_id, source, unit_of_measurement,"
                f" has_mean, has_sum, name{extra}) VALUES (?, 'recorder', 'kWh', 0, 1, ?{values})",
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


def bench_now(zone: ZoneInfo) -> datetime:
    """23:30 local on the 28th of this month: the today command's largest
    answer, and 27 complete days to read cold."""
    local = datetime.now(UTC).astimezone(zone)
    return datetime(local.year, local.month, 28, 23, 30, tzinfo=zone).astimezone(UTC)


def expected_month(meter: int, first: datetime, periods: Any) -> float:
    hours = int((periods.hour_start - first) / timedelta(hours=1))
    return sum(
        hourly_change(meter, h)
        for h in range(1, hours)  # the first row is a baseline
        if first + timedelta(hours=h) >= periods.month_start
    )


class Cycles:
    """Runs the tally's plan over the socket and keeps the figures."""

    def __init__(self, ws: HaSocket, meters: list[Any], zone: ZoneInfo) -> None:
        from gridwatch.energy.month_cache import MonthLedger

        self.ws, self.meters, self.zone = ws, meters, zone
        self.ids = [m.statistic_id for m in meters]
        self.ledger = MonthLedger(zone, RECHECK_DAYS)
        self.largest = 0
        self.requests = 0

    async def _send(self, command: dict[str, Any]) -> Any:
        from gridwatch.energy.recorder_statistics import parse_statistics

        result = await self.ws.command(command)
        self.requests += 1
        self.largest = max(self.largest, self.ws.last_bytes)
        return parse_statistics(result, command["statistic_ids"])

    async def cycle(self, periods: Any) -> Any:
        """One cycle as the runner does it (no live states, no entities)."""
        from gridwatch.energy.month_cache import PageKind
        from gridwatch.energy.recorder_statistics import (
            month_request,
            probe_request,
            split_for_answer,
            today_request,
            today_rows_per_meter,
        )
        from gridwatch.energy.tally import compute_tally_from

        plan = self.ledger.plan(periods, self.ids)
        hourly: dict[str, Any] = {}
        rows = today_rows_per_meter(periods)
        for chunk in split_for_answer(self.ids, rows, ("sum", "state")):
            hourly |= await self._send(today_request(chunk, periods))
        scales = dict.fromkeys(self.ids, 1.0)
        for page in plan.pages:
            if page.kind is PageKind.PROBE:
                answer = await self._send(probe_request(page.ids, periods))
                self.ledger.store_probe(page, answer, periods)
            else:
                answer = await self._send(month_request(page.ids, page.window_start, periods))
                self.ledger.store(page, answer, periods, scales)
        return compute_tally_from(
            self.meters, hourly, self.ledger.meters, {}, periods, waiting=plan.waiting
        )


async def bytes_per_row(ws: HaSocket, periods: Any) -> list[Row]:
    """HA's answer bytes per row, measured on 50 meters x 2 days."""
    from gridwatch.energy.recorder_statistics import BYTES_PER_ROW, month_request

    ids = [METER_ID.format(i) for i in range(50)]
    start = periods.today_start - timedelta(days=2)
    command = month_request(ids, start, periods)
    out = []
    for types in (["sum"], ["sum", "state"]):
        result = await ws.command({**command, "types": types})
        count = sum(len(v) for v in result.values())
        measured = ws.last_bytes / count
        assumed = BYTES_PER_ROW[tuple(sorted(types))]
        out.append(
            row(
                f"answer bytes per hourly row, {'+'.join(types)}",
                measured,
                "B",
                f"<= {assumed} (BYTES_PER_ROW)",
                "whole answer / rows, ids and envelope included",
            )
        )
    return out


async def measure(ws: HaSocket, zone: ZoneInfo, first: datetime) -> list[Row]:
    from dataclasses import replace

    from gridwatch.energy.periods import tally_periods
    from gridwatch.energy.tally import Meter, Role

    periods = tally_periods(bench_now(zone), zone)
    rows = await bytes_per_row(ws, periods)
    for size in SIZES:
        meters = [Meter(METER_ID.format(i), f"m{i}", f"m{i}", Role.IMPORT) for i in range(size)]
        cycles = Cycles(ws, meters, zone)
        progress(f"{size} meters: cold")
        cold_cycles, per_cycle = 0, []
        began = time.perf_counter()
        while True:
            before = cycles.requests
            tally = await cycles.cycle(periods)
            cold_cycles += 1
            per_cycle.append(cycles.requests - before)
            if not any(m.stale_reason for m in tally.meters) or cold_cycles > 10:
                break
        cold_ms = (time.perf_counter() - began) * 1000
        cold_largest = cycles.largest
        right = all(
            abs((m.month_kwh or 0.0) - expected_month(i, first, periods)) < 0.0005
            for i, m in enumerate(tally.meters)
        )
        progress(f"{size} meters: steady")
        cycles.largest, before = 0, cycles.requests
        began = time.perf_counter()
        steady = await cycles.cycle(replace(periods, now=periods.now + timedelta(minutes=5)))
        steady_ms = (time.perf_counter() - began) * 1000
        steady_requests, steady_largest = cycles.requests - before, cycles.largest
        progress(f"{size} meters: recheck")
        cycles.largest, before = 0, cycles.requests
        later = replace(
            periods,
            # Still today (23:50); a new UTC hour makes the recheck due.
            now=periods.now + timedelta(minutes=20),
            hour_start=periods.hour_start + timedelta(hours=1),
        )
        began = time.perf_counter()
        rechecked = await cycles.cycle(later)
        recheck_ms = (time.perf_counter() - began) * 1000
        recheck_requests, recheck_largest = cycles.requests - before, cycles.largest
        same = [m.month_kwh for m in steady.meters] == [m.month_kwh for m in rechecked.meters]
        rows += [
            row(
                f"cold read, {size} meters (27 days hourly)",
                cold_ms,
                "ms",
                note=f"{cold_cycles} cycle(s), requests {per_cycle}",
            ),
            row(f"cold: largest answer, {size} meters", cold_largest / 1024, "KiB", "< 4096"),
            row(
                f"steady cycle, {size} meters",
                steady_ms,
                "ms",
                note=f"{steady_requests} request(s)",
            ),
            row(f"steady: largest answer, {size} meters", steady_largest / 1024, "KiB", "< 4096"),
            row(
                f"recheck cycle, {size} meters, recheck_days {RECHECK_DAYS}",
                recheck_ms,
                "ms",
                note=f"{recheck_requests} request(s)",
            ),
            row(
                f"recheck: largest answer, {size} meters, recheck_days {RECHECK_DAYS}",
                recheck_largest / 1024,
                "KiB",
                "< 4096",
                "AppDaemon's ws_max_msg_size is 4 MiB",
            ),
            row(
                f"month == seeded sums, cold == after recheck ({size})",
                "yes" if right and same else "NO",
            ),
        ]
    return rows


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
    # Month to date plus three days before it (the opening's 48 h lead), up
    # to the last complete hour of the bench's "now" (rows in the future are
    # rows like any other to HA).
    first = periods.month_start - timedelta(days=3)
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
