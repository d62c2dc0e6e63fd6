"""The chart route on a real aiohttp server: who may see it, what it draws.

AppDaemon is a stub with the attributes the route reads (its HTTP
password, the HASS plugin's ``get_history``, its time zone); the plugin
stub's signature is checked against the installed AppDaemon 4.5.13 so it
cannot drift.
"""

from __future__ import annotations

import inspect
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import bcrypt
import pytest
from aiohttp import ClientSession, web
from appdaemon.plugins.hass.hassplugin import HassPlugin

from gridwatch.config.export_guard_schema import ExportGuardSchema
from gridwatch.runtime.chart_route import (
    ExportChartRoute,
    credentials_match,
    parse_minutes,
    route_name,
)

PASSWORD = "s3cret-panel"
_LOG = logging.getLogger("test_chart_route")
GUARD_ENTRY = {
    "export_limit_w": 4000,
    "deadband_w": 150,
    "daily_export_cap_kwh": 20,
    "max_discharge_w": 3000,
    "readings": {
        "grid_power": {"entity": "sensor.grid"},
        "soc": {"entity": "sensor.soc"},
        "export_today": {"entity": "sensor.export_today"},
        "battery_power": {"entity": "sensor.battery"},
    },
    "actuators": {
        "enable": {"entity": "input_boolean.discharge"},
        "power": {"entity": "input_number.discharge_power"},
    },
}


class Plugin:
    """The HASS plugin's history read, answering from a table."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows
        self.asked: list[dict[str, Any]] = []

    async def get_history(
        self,
        filter_entity_id: Any,
        timestamp: datetime | None = None,
        end_time: datetime | None = None,
        minimal_response: bool | None = None,
        no_attributes: bool | None = None,
        significant_changes_only: bool | None = None,
    ) -> list[list[dict[str, Any]]]:
        self.asked.append({"ids": list(filter_entity_id), "start": timestamp})
        return [self.rows[e] for e in filter_entity_id if e in self.rows]


def test_the_plugin_stub_matches_appdaemon():
    stub = inspect.signature(Plugin.get_history)
    real = inspect.signature(HassPlugin.get_history)
    assert list(stub.parameters) == list(real.parameters)


def _app(password: str | None, plugin: Plugin) -> Any:
    ad = SimpleNamespace(
        http=SimpleNamespace(password=password),
        plugins=SimpleNamespace(get_plugin_object=lambda _ns: plugin),
        tz=ZoneInfo("Europe/Amsterdam"),
    )
    return SimpleNamespace(AD=ad, namespace="default")


async def _serve(password: str | None, plugin: Plugin):
    config = ExportGuardSchema().load(GUARD_ENTRY)
    route = ExportChartRoute(_app(password, plugin), config, "export_guard", _LOG)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await route.serve(request, {})

    server = web.Application()
    server.router.add_get(f"/app/{route_name('export_guard')}", handler)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/app/export_guard_chart"


def _rows() -> dict[str, list[dict[str, Any]]]:
    now = datetime.now(UTC)
    at = [(now - timedelta(minutes=m)).isoformat() for m in (50, 30, 10)]
    return {
        "sensor.grid": [
            {"entity_id": "sensor.grid", "state": "-3000", "last_changed": at[0]},
            {"state": "-3900", "last_changed": at[1]},
            {"state": "-3800", "last_changed": at[2]},
        ],
        "sensor.battery": [{"entity_id": "sensor.battery", "state": "800", "last_changed": at[1]}],
        "sensor.export_guard_last_action": [
            {
                "entity_id": "sensor.export_guard_last_action",
                "state": "start 800 W (requested): verified",
                "last_changed": at[1],
            }
        ],
    }


@pytest.mark.parametrize(
    ("headers", "cookies", "status"),
    [
        ({}, {}, 401),
        ({"x-ad-access": "wrong"}, {}, 401),
        ({}, {"adcreds": "not-a-bcrypt-hash"}, 401),
        ({}, {"adcreds": bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()}, 401),
        ({"x-ad-access": PASSWORD}, {}, 200),
        ({}, {"adcreds": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}, 200),
    ],
)
async def test_with_a_password_only_a_logged_in_browser_or_the_api_header_sees_it(
    headers, cookies, status
):
    plugin = Plugin(_rows())
    runner, url = await _serve(PASSWORD, plugin)
    try:
        async with (
            ClientSession(cookies=cookies) as session,
            session.get(url, headers=headers) as resp,
        ):
            body = await resp.text()
    finally:
        await runner.cleanup()
    assert resp.status == status
    if status == 401:
        assert "<svg" not in body
        assert plugin.asked == []  # nothing read from HA for a stranger
    else:
        assert resp.content_type == "image/svg+xml"
        assert "Grid export" in body


async def test_without_a_password_it_draws_the_guards_entities_over_the_window():
    plugin = Plugin(_rows())
    runner, url = await _serve(None, plugin)
    try:
        async with ClientSession() as session, session.get(url + "?minutes=90") as resp:
            body = await resp.text()
            async with session.get(url + "?minutes=0") as bad:
                bad_status = bad.status
    finally:
        await runner.cleanup()
    assert resp.status == 200
    assert set(plugin.asked[0]["ids"]) == {
        "sensor.grid",
        "sensor.battery",
        "sensor.export_guard_last_action",
        "sensor.export_guard_error",
    }
    window = datetime.now(UTC) - plugin.asked[0]["start"]
    assert timedelta(minutes=89) < window < timedelta(minutes=91)
    assert "last 90 min" in body
    assert "Start" in body  # the guard's start is marked
    assert bad_status == 400


@pytest.mark.parametrize(
    ("query", "minutes"), [({}, 60), ({"minutes": "5"}, 5), ({"minutes": "1440"}, 1440)]
)
def test_minutes_in_range(query, minutes):
    assert parse_minutes(query) == minutes


@pytest.mark.parametrize("raw", ["4", "1441", "-5", "1e2", "sixty", "٦٠", ""])
def test_minutes_out_of_range_or_not_a_number(raw):
    with pytest.raises(ValueError, match="minutes"):
        parse_minutes({"minutes": raw})


def test_credentials_match_only_the_password_or_its_hash():
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    assert credentials_match("pw", "pw", None)
    assert credentials_match("pw", None, hashed)
    assert not credentials_match("pw", None, None)
    assert not credentials_match("other", None, hashed)
    assert not credentials_match("pw", "", "garbage")
