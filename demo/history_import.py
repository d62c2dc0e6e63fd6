"""Import the demo's past (:mod:`demo.history`) into Home Assistant's recorder.

Through HA's own websocket command ``recorder/import_statistics`` (the same
on HA 2024.1 and 2026.2), once per state dir: a recorder that already holds
rows for the meters (an earlier run) keeps them, and the hours the demo was
stopped stay a gap, as they would on a real install.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, tzinfo
from typing import Final

from demo.history import HISTORY_DAYS, METERS, MeterHistory, build_history
from demo.site_model import SiteState
from tests.e2e.ha_client import HaClient

# HA checks each imported row against its table (~2 ms a row on the 2-core
# box: ~4000 rows here), then the rows land in the database.
IMPORT_TIMEOUT_S: Final = 120.0
POLL_S: Final = 0.5


async def has_history(client: HaClient, now: datetime) -> bool:
    """True when the recorder holds any daily row of a demo meter."""
    found = await client.statistics_during_period(
        [sensor.entity_id for sensor, _ in METERS],
        now - timedelta(days=HISTORY_DAYS + 5),
        period="day",
        types=("sum",),
    )
    return any(found.values())


async def import_history(
    client: HaClient, now: datetime, zone: tzinfo, counters: SiteState
) -> list[MeterHistory] | None:
    """Import the past unless the recorder has one; wait until it landed.

    Returns:
        What was imported, or None when the recorder already had history.

    Raises:
        TimeoutError: HA did not store the rows within :data:`IMPORT_TIMEOUT_S`.
        HaCommandError: HA refused the import.
    """
    if await has_history(client, now):
        return None
    histories = build_history(now, zone, counters)
    for history in histories:
        await client.import_statistics(
            history.sensor.entity_id, history.rows, name=history.sensor.name, unit="kWh"
        )
    # The recorder queues imports: wait until the last row of each is there.
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    for history in histories:
        last = history.rows[-1]
        while True:
            found = await client.statistics_during_period(
                [history.sensor.entity_id], last["start"], types=("sum",)
            )
            if found.get(history.sensor.entity_id):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the recorder did not store {history.sensor.entity_id}'s past")
            await asyncio.sleep(POLL_S)
    return histories
