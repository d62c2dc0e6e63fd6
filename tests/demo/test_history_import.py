"""Importing the demo's past: once per recorder, and only when it has landed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from demo.history import METERS
from demo.history_import import import_history
from demo.site_model import SiteState

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


class Recorder:
    """HA's recorder as the importer sees it: rows land after a few reads."""

    def __init__(self, has_rows: bool, lag_reads: int = 2) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        if has_rows:
            self.rows["sensor.pv_energy"] = [{"start": 0, "sum": 1.0}]
        self.imported: list[tuple[str, int]] = []
        self._pending: list[tuple[str, list[dict[str, Any]]]] = []
        self._lag = lag_reads

    async def import_statistics(self, statistic_id: str, stats: Any, **_kw: Any) -> None:
        rows = list(stats)
        self.imported.append((statistic_id, len(rows)))
        self._pending.append((statistic_id, rows))

    async def statistics_during_period(
        self, statistic_ids: list[str], start: datetime, **_kw: Any
    ) -> dict[str, list[dict[str, Any]]]:
        if self._lag > 0:
            self._lag -= 1
        else:
            for statistic_id, rows in self._pending:
                self.rows[statistic_id] = rows
            self._pending = []
        return {s: self.rows[s] for s in statistic_ids if self.rows.get(s)}


async def test_a_recorder_with_history_keeps_it():
    recorder = Recorder(has_rows=True)
    result = await import_history(recorder, NOW, ZoneInfo("Europe/Amsterdam"), SiteState())  # type: ignore[arg-type]
    assert result is None
    assert recorder.imported == []


async def test_an_empty_recorder_gets_every_meter_and_the_import_waits_until_it_landed():
    recorder = Recorder(has_rows=False, lag_reads=3)
    result = await import_history(recorder, NOW, ZoneInfo("Europe/Amsterdam"), SiteState())  # type: ignore[arg-type]
    assert result is not None
    assert [s for s, _ in recorder.imported] == [sensor.entity_id for sensor, _ in METERS]
    # When it returns, every meter's rows are in the recorder.
    assert all(recorder.rows.get(sensor.entity_id) for sensor, _ in METERS)
