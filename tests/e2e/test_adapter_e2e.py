"""The AppDaemon adapter (lib/gridwatch/runtime/adapter.py) against a real HA and AppDaemon.

The probe app (apps_fixtures/adapter_probe.py) runs each adapter operation on
request and writes the outcome to an entity; the test reads HA directly.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.appdaemon_factory import AppDaemonFactory
from tests.e2e.appdaemon_proc import AppDaemon
from tests.e2e.ha import HomeAssistant
from tests.e2e.ha_client import HaClient
from tests.e2e.ha_config import SLOW_SCRIPT
from tests.e2e.ha_matrix import parse_version

FIXTURE_APPS = Path(__file__).parent / "apps_fixtures"
PROBE_EVENT = "gridwatch_e2e_probe"
ZERO_ENTITY = "sensor.e2e_adapter_zero"
# Every value AppDaemon 4.5.13's set_state would drop (0, 0.0, False) plus
# the neighbours that must not be confused with them.
ZERO_ATTRIBUTES: dict[str, Any] = {
    "count": 0,
    "ratio": 0.0,
    "enabled": False,
    "nothing": None,
    "empty": "",
    "nested": {"zero": 0, "off": False},
    "unit_of_measurement": "W",
    "friendly_name": "E2E zero",
}


@pytest.fixture(scope="module")
def probe_ad(appdaemon_module_factory: AppDaemonFactory) -> AppDaemon:
    ad = appdaemon_module_factory.start(
        apps={
            "adapter_probe": {
                "module": "adapter_probe",
                "class": "AdapterProbe",
                "entities": {ZERO_ENTITY: {"state": 0, "attributes": ZERO_ATTRIBUTES}},
            }
        },
        extra_app_dirs=(FIXTURE_APPS,),
    )
    ad.wait_app("adapter_probe")
    return ad


async def probe(client: HaClient, op: str, timeout: float = 20.0, **data: Any) -> dict[str, Any]:
    """Ask the probe app to run one adapter operation; return its outcome."""
    request_id = uuid.uuid4().hex[:12]
    await client.rest(
        "POST", f"/api/events/{PROBE_EVENT}", {"op": op, "request_id": request_id, **data}
    )
    state = await client.wait_state(
        f"sensor.e2e_probe_{request_id}", lambda s: s is not None, timeout=timeout
    )
    assert state is not None
    outcome: dict[str, Any] = state["attributes"]
    return outcome


async def test_zero_state_and_falsy_attributes_arrive_intact(
    ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    state = await ha_client.wait_state(ZERO_ENTITY, lambda s: s is not None)

    assert state is not None
    assert state["state"] == "0"
    assert state["attributes"] == ZERO_ATTRIBUTES


async def test_written_values_read_back_through_the_adapter(
    ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    attributes = {"level": 0, "flag": False, "limit_w": 0.0}
    written = await probe(
        ha_client,
        "set_entity",
        entity_id="sensor.e2e_adapter_off",
        state=False,
        attributes=attributes,
    )
    assert written["ok"] is True

    read = await probe(ha_client, "get_state", entity_id="sensor.e2e_adapter_off")

    assert read["ok"] is True
    assert read["result"] == {"raw": "off", "attributes": attributes}


async def test_a_steady_reading_stays_live_where_ha_reports_last_reported(
    ha: HomeAssistant, ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    # A meter integration writing the same value again: HA 2024.4+ moves
    # last_reported (without a state_changed event), 2024.1 records nothing.
    entity = "sensor.e2e_adapter_steady"
    await ha_client.set_state(entity, "1500", {"unit_of_measurement": "W"})
    first = (await probe(ha_client, "read_state", entity_id=entity))["result"]
    await ha_client.set_state(entity, "1500", {"unit_of_measurement": "W"})

    fresh = (await probe(ha_client, "read_state", entity_id=entity))["result"]

    assert fresh["raw"] == first["raw"] == "1500"
    assert fresh["last_changed"] == first["last_changed"]
    if parse_version(ha.install.version)[:2] >= (2024, 4):
        # HA's own REST state dict keeps the first last_reported (it caches
        # the dict): the adapter reads the live one.
        assert fresh["last_reported"] > first["last_reported"]
    else:
        assert fresh["last_reported"] is None
        assert first["last_reported"] is None


async def test_unknown_service_is_a_typed_error(ha_client: HaClient, probe_ad: AppDaemon) -> None:
    outcome = await probe(ha_client, "call_service", service="gridwatch_nope/does_not_exist")

    assert outcome["ok"] is False
    assert "ServiceError" in outcome["error_types"]
    assert "HassError" in outcome["error_types"]
    assert "gridwatch_nope/does_not_exist" in outcome["error"]


async def test_slow_service_times_out_as_a_typed_error(
    ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    # The script answers after 3 s; the caller gives it 1 s.
    outcome = await probe(
        ha_client,
        "call_service",
        service=SLOW_SCRIPT.replace(".", "/"),
        data={"seconds": 3},
        timeout_s=1,
    )

    assert outcome["ok"] is False
    assert outcome["error_type"] == "ServiceTimeout"
    assert "ServiceError" in outcome["error_types"]


async def test_service_call_that_works_returns(ha_client: HaClient, probe_ad: AppDaemon) -> None:
    outcome = await probe(
        ha_client,
        "call_service",
        service="input_number/set_value",
        data={"entity_id": "input_number.inverter_cutoff_soc", "value": 0},
    )

    assert outcome["ok"] is True
    state = await ha_client.get_state("input_number.inverter_cutoff_soc")
    assert state is not None
    assert state["state"] == "0.0"


async def test_statistics_command_returns_seeded_data(
    ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sums = {
        "gridwatch_e2e:export_energy": [1.5, 3.0, 4.25],
        "sensor.e2e_stats_meter": [10.0, 12.5, 12.5],
    }
    for statistic_id, values in sums.items():
        await ha_client.import_statistics(
            statistic_id,
            [
                {"start": start + timedelta(hours=i), "sum": v, "state": v}
                for i, v in enumerate(values)
            ],
            unit="kWh",
        )
        await ha_client.wait_statistics(statistic_id, start, rows=len(values))

    # One batched command for both meters, as the energy tally sends it.
    outcome = await probe(
        ha_client,
        "websocket",
        command={
            "type": "recorder/statistics_during_period",
            "statistic_ids": list(sums),
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=3)).isoformat(),
            "period": "hour",
            "types": ["sum", "change"],
        },
    )

    assert outcome["ok"] is True
    result = outcome["result"]
    for statistic_id, values in sums.items():
        rows = result[statistic_id]
        assert [row["sum"] for row in rows] == values
        assert rows[0]["start"] == pytest.approx(start.timestamp() * 1000)


async def test_refused_websocket_command_is_a_typed_error(
    ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    outcome = await probe(ha_client, "websocket", command={"type": "gridwatch/no_such_command"})

    assert outcome["ok"] is False
    assert "CommandError" in outcome["error_types"]
    assert "unknown_command" in outcome["error"]


async def test_entities_come_back_with_full_attributes_after_ha_restart(
    ha: HomeAssistant, ha_client: HaClient, probe_ad: AppDaemon
) -> None:
    # Last in the module: it restarts the session's HA.
    before = await ha_client.wait_state(ZERO_ENTITY, lambda s: s is not None)
    assert before is not None

    await ha.restart_async()
    # AppDaemon terminated the app when HA went away and initializes a new
    # one once it is back.
    await asyncio.to_thread(probe_ad.wait_app, "adapter_probe", 30)

    async with HaClient(ha.url, ha.token) as fresh:
        after = await fresh.wait_state(
            ZERO_ENTITY,
            lambda s: s is not None and s["attributes"] == ZERO_ATTRIBUTES,
            timeout=30,
        )
        assert after is not None
        assert after["state"] == "0"
        # The adapter still works on the new connection.
        outcome = await probe(fresh, "get_state", entity_id=ZERO_ENTITY)
        assert outcome["ok"] is True
        assert outcome["result"]["attributes"] == ZERO_ATTRIBUTES
