"""``AppDaemonHassPort.remove_entity``: DELETE /api/states, then no republish.

A stand-in for HA's /api/states on loopback (aiohttp) answers as HA does:
200 for a deleted state, 404 for an unknown one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

from gridwatch.hass.errors import HassError
from gridwatch.runtime.adapter import AppDaemonHassPort
from tests.runtime.test_adapter import StubApp, StubPlugin
from tests.support.loopback import serve


@pytest.fixture
async def ha_states() -> AsyncIterator[tuple[str, ClientSession, dict[str, Any], list[str]]]:
    states: dict[str, Any] = {}
    log: list[str] = []

    async def post(request: web.Request) -> web.Response:
        entity_id = request.match_info["entity_id"]
        states[entity_id] = await request.json()
        log.append(f"POST {entity_id}")
        return web.json_response(states[entity_id], status=201)

    async def delete(request: web.Request) -> web.Response:
        entity_id = request.match_info["entity_id"]
        log.append(f"DELETE {entity_id}")
        if entity_id == "sensor.refused":
            return web.Response(status=401, text="401: Unauthorized")
        if states.pop(entity_id, None) is None:
            return web.Response(status=404, text="Entity not found.")
        return web.json_response({"message": "Entity removed."})

    app = web.Application()
    app.router.add_post("/api/states/{entity_id}", post)
    app.router.add_delete("/api/states/{entity_id}", delete)
    async with serve(app) as (url, session):
        yield url, session, states, log


async def test_removed_entity_is_deleted_and_not_republished(ha_states):
    url, session, states, log = ha_states
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    await port.set_entity("sensor.kept", 1, {})
    await port.set_entity("sensor.gone", 2, {})
    await port.remove_entity("sensor.gone")
    assert set(states) == {"sensor.kept"}
    log.clear()
    assert await port.republish() == 1
    assert log == ["POST sensor.kept"]


async def test_removing_an_unknown_entity_is_not_an_error(ha_states):
    url, session, _, log = ha_states
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    await port.remove_entity("sensor.never_written")
    assert log == ["DELETE sensor.never_written"]


async def test_a_refused_delete_is_a_hass_error(ha_states):
    url, session, _, _ = ha_states
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match="HTTP 401"):
        await port.remove_entity("sensor.refused")


async def test_an_entity_made_elsewhere_enters_appdaemons_cache_once(ha_states):
    # MQTT discovery creates the entity in HA; HADashboard reads AppDaemon's
    # cache, which would never learn of it otherwise. Nothing goes to HA.
    url, session, _, log = ha_states
    app = StubApp(StubPlugin(session, url))
    port = AppDaemonHassPort(app)  # type: ignore[arg-type]
    await port.track_entity("sensor.via_mqtt", 3, {"unit_of_measurement": "W"})
    await port.track_entity("sensor.via_mqtt", 4, {"unit_of_measurement": "W"})
    added = [args for name, args, _ in app.calls if name == "add_entity"]
    assert added == [("sensor.via_mqtt", "3", {"unit_of_measurement": "W"})]
    assert log == []
