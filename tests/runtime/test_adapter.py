"""The AppDaemon adapter, without a running Home Assistant.

AppDaemon is replaced by a stub app that records calls and, like AppDaemon
on the event loop, returns Tasks; set_entity talks to a real aiohttp server
standing in for HA's ``/api/states``. Conformance tests check the stub and
the adapter against the installed AppDaemon 4.5.13 signatures and cleaner,
so they cannot drift. The real-HA checks live in tests/e2e.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientSession, web
from appdaemon import utils as ad_utils
from appdaemon.adapi import ADAPI
from appdaemon.plugins.hass.hassplugin import HassPlugin
from yarl import URL

from gridwatch.hass.errors import (
    CommandError,
    CommandTimeout,
    HassError,
    ServiceError,
    ServiceTimeout,
)
from gridwatch.runtime import adapter as adapter_module
from gridwatch.runtime.adapter import (
    AppDaemonHassPort,
    command_result,
    encode_state_body,
    entity_state_from_ad,
    service_result,
)
from tests.support.loopback import serve


def _task(value: Any) -> asyncio.Task[Any]:
    async def result() -> Any:
        return value

    return asyncio.ensure_future(result())


class StubPlugin:
    def __init__(self, session: ClientSession | None = None, url: str = "http://127.0.0.1:1"):
        self.session = session
        self.config = SimpleNamespace(ha_url=URL(url))
        self.ws_calls: list[dict[str, Any]] = []
        self.ws_response: Any = {"success": True, "result": {"ok": 1}, "ad_status": "OK"}

    async def websocket_send_json(self, timeout=None, *, silent=False, **request):
        self.ws_calls.append({"timeout": timeout, "silent": silent, **request})
        return self.ws_response


class StubApp:
    """The ADAPI methods the adapter uses, returning Tasks like AppDaemon does."""

    def __init__(self, plugin: StubPlugin) -> None:
        self.namespace = "default"
        self.AD = SimpleNamespace(
            plugins=SimpleNamespace(get_plugin_object=lambda ns: plugin), tz=None
        )
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.callbacks: dict[str, Any] = {}
        self.states: dict[str, Any] = {}
        self.service_response: Any = {"success": True, "result": None, "ad_status": "OK"}
        self._n = 0

    def _record(self, name: str, *args: Any, **kwargs: Any) -> str:
        self.calls.append((name, args, kwargs))
        self._n += 1
        return f"handle-{self._n}"

    def get_state(self, entity_id, attribute=None):
        return _task(self.states.get(entity_id))

    def listen_state(self, callback, entity_id, **kwargs):
        handle = self._record("listen_state", entity_id, **kwargs)
        self.callbacks[handle] = callback
        return _task(handle)

    def listen_event(self, callback, event, **kwargs):
        handle = self._record("listen_event", event, **kwargs)
        self.callbacks[handle] = callback
        return _task(handle)

    def call_service(self, service, **kwargs):
        self._record("call_service", service, **kwargs)
        return _task(self.service_response)

    def fire_event(self, event, **kwargs):
        self._record("fire_event", event, **kwargs)
        return _task(None)

    def run_every(self, callback, start, interval):
        handle = self._record("run_every", start, interval)
        self.callbacks[handle] = callback
        return _task(handle)

    def run_in(self, callback, delay):
        handle = self._record("run_in", delay)
        self.callbacks[handle] = callback
        return _task(handle)

    def get_now(self):
        return _task(datetime(2026, 6, 1, tzinfo=UTC))

    def cancel_listen_state(self, handle, silent=False):
        self._record("cancel_listen_state", handle, silent=silent)
        return _task(True)

    def cancel_listen_event(self, handle, silent=False):
        self._record("cancel_listen_event", handle, silent=silent)
        return _task(True)

    def cancel_timer(self, handle, silent=False):
        self._record("cancel_timer", handle, silent=silent)
        return _task(True)

    def entity_exists(self, entity_id):
        return _task(entity_id in self.states)

    def add_entity(self, entity_id, state, attributes=None):
        self._record("add_entity", entity_id, state, attributes)
        self.states[entity_id] = {"state": state, "attributes": attributes or {}}
        return _task(None)


# --- conformance with the installed AppDaemon ---------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        (ADAPI.listen_state, {"callback", "entity_id", "attribute"}),
        (ADAPI.listen_event, {"callback", "event"}),
        (ADAPI.cancel_listen_state, {"handle", "silent"}),
        (ADAPI.cancel_listen_event, {"handle", "silent"}),
        (ADAPI.cancel_timer, {"handle", "silent"}),
        (ADAPI.run_every, {"callback", "start", "interval"}),
        (ADAPI.run_in, {"callback", "delay"}),
        (ADAPI.get_state, {"entity_id", "attribute"}),
        (ADAPI.fire_event, {"event"}),
        (ADAPI.call_service, {"service"}),
        (ADAPI.entity_exists, {"entity_id"}),
        (ADAPI.add_entity, {"entity_id", "state", "attributes"}),
        (HassPlugin.websocket_send_json, {"timeout", "silent"}),
        (HassPlugin.call_plugin_service, {"hass_timeout", "suppress_log_messages"}),
    ],
)
def test_appdaemon_still_has_the_parameters_the_adapter_uses(method, params):
    signature = inspect.signature(ad_utils.unwrapped(method))
    assert params <= set(signature.parameters)


def test_appdaemon_http_cleaner_drops_zero_and_false():
    # The trap the adapter works around: remember why set_state is bypassed.
    cleaned = ad_utils.clean_http_kwargs({"state": 0, "attributes": {"a": False, "b": 0, "c": 1}})
    assert cleaned == {"attributes": {"c": 1}}


# --- pure translations -----------------------------------------------------------


def test_encode_state_body_keeps_zero_and_false():
    body = json.loads(encode_state_body(0, {"count": 0, "ok": False, "x": 0.0, "none": None}))
    assert body == {"state": "0", "attributes": {"count": 0, "ok": False, "x": 0.0, "none": None}}
    assert json.loads(encode_state_body(False, {}))["state"] == "off"


def test_entity_state_from_ad():
    raw = {"state": 0, "attributes": {"a": 1}, "last_changed": "2026-06-01T10:00:00+00:00"}
    state = entity_state_from_ad("sensor.x", raw)
    assert state is not None
    assert state.raw == "0"
    assert state.number().value == 0.0
    assert state.last_changed is not None
    assert entity_state_from_ad("sensor.x", None) is None


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        ({"success": False, "ad_status": "TIMEOUT"}, ServiceTimeout, "no answer within 5 s"),
        (
            {"success": False, "ad_status": "OK", "error": {"code": "not_found", "message": "x"}},
            ServiceError,
            "not_found: x",
        ),
        (None, ServiceError, "no response"),
        ({"success": False, "ad_status": "TERMINATING"}, ServiceError, "shutting down"),
    ],
)
def test_service_result_errors(response, error, match):
    with pytest.raises(error, match=match):
        service_result("light/on", 5, response)


def test_service_timeout_is_a_service_error():
    with pytest.raises(ServiceError):
        service_result("a/b", 1, {"success": False, "ad_status": "TIMEOUT"})


def test_service_result_success():
    assert service_result("a/b", 1, {"success": True, "ad_status": "OK", "result": {"r": 1}}) == {
        "r": 1
    }


def test_command_result():
    assert command_result("t", 1, {"success": True, "result": [1]}) == [1]
    with pytest.raises(CommandTimeout):
        command_result("t", 1, {"success": False, "ad_status": "TIMEOUT"})
    with pytest.raises(CommandError, match="invalid_format"):
        command_result(
            "t", 1, {"success": False, "error": {"code": "invalid_format", "message": "m"}}
        )
    with pytest.raises(CommandError, match="not connected"):
        command_result("t", 1, None)


# --- the adapter against the stub app ------------------------------------------


@pytest.fixture
def stub():
    plugin = StubPlugin()
    app = StubApp(plugin)
    return app, plugin, AppDaemonHassPort(app)  # type: ignore[arg-type]


async def test_call_service_passes_data_whole_and_maps_results(stub):
    app, _, port = stub
    await port.call_service("number.set_value", {"entity_id": "number.x", "value": 0}, timeout_s=3)
    name, args, kwargs = app.calls[-1]
    assert (name, args) == ("call_service", ("number/set_value",))
    assert kwargs == {
        "service_data": {"entity_id": "number.x", "value": 0},
        "hass_timeout": 3,
        "suppress_log_messages": True,
    }
    app.service_response = {"success": False, "ad_status": "TIMEOUT"}
    with pytest.raises(ServiceTimeout):
        await port.call_service("number/set_value", {}, timeout_s=3)


async def test_call_service_turns_appdaemon_exceptions_into_service_error(stub):
    app, _, port = stub

    def boom(service, **kwargs):
        raise RuntimeError("Unknown service notify/nobody")

    app.call_service = boom
    with pytest.raises(ServiceError, match="Unknown service"):
        await port.call_service("notify/nobody")


async def test_call_service_guard_timeout(stub, monkeypatch):
    # AppDaemon's own timeout never fires here: our guard must.
    monkeypatch.setattr(adapter_module, "_GUARD_MARGIN_S", 0.01)
    app, _, port = stub
    never = asyncio.get_running_loop().create_future()
    app.call_service = lambda service, **kwargs: never
    with pytest.raises(ServiceTimeout):
        await port.call_service("a/b", timeout_s=0.01)
    assert never.cancelled()


async def test_state_listener_gets_parsed_states_and_cancels(stub):
    app, _, port = stub
    got = []
    handle = await port.listen_state("sensor.x", lambda e, old, new: got.append((e, old, new)))
    name, args, kwargs = app.calls[-1]
    assert (name, args, kwargs) == ("listen_state", ("sensor.x",), {"attribute": "all"})
    callback = app.callbacks["handle-1"]
    await callback(
        "sensor.x", "all", None, {"state": "unavailable", "attributes": {}}, __thread_id=1
    )
    assert got[0][1] is None
    assert got[0][2].raw == "unavailable"
    assert not got[0][2].available
    await handle.cancel()
    await handle.cancel()
    cancels = [c for c in app.calls if c[0] == "cancel_listen_state"]
    assert cancels == [("cancel_listen_state", ("handle-1",), {"silent": True})]


async def test_event_listener_strips_what_appdaemon_adds(stub):
    app, _, port = stub
    got = []

    async def on_event(name, data):
        got.append((name, data))

    await port.listen_event("gridwatch_notice", on_event)
    data = {"a": 0, "metadata": {"origin": "LOCAL"}, "timeout": None}
    await app.callbacks["handle-1"]("gridwatch_notice", data)
    assert got == [("gridwatch_notice", {"a": 0})]


async def test_fire_event_refuses_keys_appdaemon_would_swallow(stub):
    app, _, port = stub
    await port.fire_event("gridwatch_notice", {"action": "raise", "n": 0})
    assert app.calls[-1] == ("fire_event", ("gridwatch_notice",), {"action": "raise", "n": 0})
    with pytest.raises(ValueError, match="namespace"):
        await port.fire_event("x", {"namespace": "admin"})


async def test_websocket_command(stub):
    _, plugin, port = stub
    command = {"type": "recorder/statistics_during_period", "statistic_ids": ["sensor.a"]}
    assert await port.websocket_command(command, timeout_s=4) == {"ok": 1}
    assert plugin.ws_calls[-1] == {"timeout": 4, "silent": True, **command}
    plugin.ws_response = {"success": False, "ad_status": "TIMEOUT"}
    with pytest.raises(CommandTimeout):
        await port.websocket_command(command)
    with pytest.raises(ValueError, match="id"):
        await port.websocket_command({**command, "id": 3})


async def test_timers_wrap_callbacks_and_cancel(stub):
    app, _, port = stub
    ran = []
    handle = await port.run_every(lambda: ran.append("tick"), 30, first_in_s=0)
    name, args, _ = app.calls[-1]
    assert (name, args) == ("run_every", ("immediate", 30))
    await port.run_every(lambda: None, 30, first_in_s=5)
    assert app.calls[-1][1][0] == datetime(2026, 6, 1, 0, 0, 5, tzinfo=UTC)
    await app.callbacks["handle-1"](__thread_id=1)
    assert ran == ["tick"]
    await port.run_in(lambda: ran.append("once"), 5)
    await app.callbacks["handle-3"]()
    assert ran == ["tick", "once"]
    await handle.cancel()
    await port.close()
    cancelled = [c[1][0] for c in app.calls if c[0] == "cancel_timer"]
    assert cancelled == ["handle-1", "handle-2", "handle-3"]


async def test_now_is_tz_aware(stub):
    _, _, port = stub
    assert port.now().tzinfo is not None


async def test_now_follows_appdaemons_scheduler_clock(stub):
    # Time travel: AppDaemon's scheduler runs at a chosen time, far from the
    # wall clock; now() must report it, in AppDaemon's zone.
    from zoneinfo import ZoneInfo

    from appdaemon.scheduler import Scheduler

    app, _, port = stub
    travelled = datetime(2026, 10, 24, 22, 59, 30, tzinfo=UTC)
    app.AD.sched = SimpleNamespace(get_now_sync=lambda: travelled)
    app.AD.tz = ZoneInfo("Europe/Berlin")
    now = port.now()
    assert now == travelled
    assert now.utcoffset() == timedelta(hours=2)
    # The stand-in mirrors the real scheduler's method (no drift).
    assert callable(Scheduler.get_now_sync)


# --- set_entity over HTTP to a stand-in for HA's /api/states --------------------


@pytest.fixture
async def fake_ha_http():
    received: list[tuple[str, dict[str, Any]]] = []
    status = {"code": 201}

    async def post_state(request: web.Request) -> web.Response:
        body = await request.json()
        received.append((request.match_info["entity_id"], body))
        if status["code"] >= 400:
            return web.Response(status=status["code"], text="400: Bad Request")
        return web.json_response(body, status=status["code"])

    app = web.Application()
    app.router.add_post("/api/states/{entity_id}", post_state)
    async with serve(app) as (url, session):
        yield url, session, received, status


async def test_set_entity_sends_zero_and_false_intact(fake_ha_http):
    url, session, received, _ = fake_ha_http
    plugin = StubPlugin(session, url)
    port = AppDaemonHassPort(StubApp(plugin))  # type: ignore[arg-type]
    await port.set_entity("sensor.headroom", 0, {"failures": 0, "open": False, "w": 0.0})
    assert received == [
        ("sensor.headroom", {"state": "0", "attributes": {"failures": 0, "open": False, "w": 0.0}})
    ]


async def test_ha_restart_republishes_owned_entities_then_runs_hooks(fake_ha_http):
    url, session, received, _ = fake_ha_http
    plugin = StubPlugin(session, url)
    app = StubApp(plugin)
    port = AppDaemonHassPort(app)  # type: ignore[arg-type]
    await port.start()
    await port.set_entity("sensor.a", 1, {"unit_of_measurement": "kWh", "last_reset": None})
    await port.set_entity("sensor.b", "x", {})
    await port.set_entity("sensor.a", 2, {"unit_of_measurement": "kWh"})
    order = []
    await port.listen_ha_started(lambda: order.append(len(received)))
    received.clear()
    (started_cb,) = [app.callbacks[h] for h in app.callbacks]
    await started_cb("plugin_started", {"name": "HASS"})
    assert received == [
        ("sensor.a", {"state": "2", "attributes": {"unit_of_measurement": "kWh"}}),
        ("sensor.b", {"state": "x", "attributes": {}}),
    ]
    assert order == [2]  # hooks run after the republish


async def test_own_entity_reads_back_before_appdaemon_sees_it(fake_ha_http):
    url, session, _, _ = fake_ha_http
    app = StubApp(StubPlugin(session, url))
    port = AppDaemonHassPort(app)  # type: ignore[arg-type]
    await port.set_entity("sensor.a", 0, {"n": 0})
    state = await port.get_state("sensor.a")
    assert state is not None
    assert (state.raw, dict(state.attributes)) == ("0", {"n": 0})
    app.states["sensor.a"] = {"state": "7", "attributes": {}}
    state = await port.get_state("sensor.a")
    assert state is not None
    assert state.raw == "7"  # AppDaemon's view wins once it has one
    assert await port.get_state("sensor.unknown") is None


async def test_a_new_entity_enters_appdaemons_cache_once(fake_ha_http):
    # AppDaemon applies HA's state_changed only to entities it already knows:
    # without this, HADashboard would never show what the adapter writes.
    url, session, _, _ = fake_ha_http
    app = StubApp(StubPlugin(session, url))
    port = AppDaemonHassPort(app)  # type: ignore[arg-type]
    await port.set_entity("sensor.a", 0, {"n": 0})
    await port.set_entity("sensor.a", 5, {"n": 1})
    added = [args for name, args, _ in app.calls if name == "add_entity"]
    assert added == [("sensor.a", "0", {"n": 0})]


async def test_set_entity_refused_by_ha_is_a_hass_error(fake_ha_http):
    url, session, _, status = fake_ha_http
    status["code"] = 400
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match="HTTP 400"):
        await port.set_entity("sensor.a", 1, {})


async def test_set_entity_with_nan_attribute_is_a_hass_error(fake_ha_http):
    url, session, received, _ = fake_ha_http
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match=r"sensor\.a.*Out of range float"):
        await port.set_entity("sensor.a", 1, {"r": float("inf")})
    assert received == []


async def test_set_entity_without_connection_is_a_hass_error():
    port = AppDaemonHassPort(StubApp(StubPlugin(None)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match="no Home Assistant plugin"):
        await port.set_entity("sensor.a", 1, {})
    closed = ClientSession()
    await closed.close()
    port = AppDaemonHassPort(StubApp(StubPlugin(closed)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match="failed"):
        await port.set_entity("sensor.a", 1, {})


# --- last_reported (HA 2024.4+) and reads that bypass AppDaemon's cache ---------


@pytest.mark.parametrize(
    ("raw", "reported", "reported_at"),
    [
        # HA 2024.4+: a steady reading's last_reported moves, last_changed not.
        (
            {"last_changed": "2026-06-01T10:00:00+00:00", "last_reported": "2026-06-01T10:05:00Z"},
            datetime(2026, 6, 1, 10, 5, tzinfo=UTC),
            datetime(2026, 6, 1, 10, 5, tzinfo=UTC),
        ),
        # HA 2024.1 has no last_reported: only a change proves a reading live.
        (
            {"last_changed": "2026-06-01T10:00:00+00:00"},
            None,
            datetime(2026, 6, 1, 10, 0, tzinfo=UTC),
        ),
        ({}, None, None),
    ],
)
def test_last_reported_is_parsed_where_ha_reports_it(raw, reported, reported_at):
    state = entity_state_from_ad("sensor.x", {"state": "5", "attributes": {}, **raw})

    assert state is not None
    assert state.last_reported == reported
    assert state.reported_at == reported_at


@pytest.fixture
async def ha_states_http():
    """A stand-in for HA's GET /api/states/<id> (404 if absent) and POST /api/template.

    Like HA 2026.2, the state's dict keeps the last_reported of its first
    serialisation; only the template (the live state object) has the new one.
    """
    states: dict[str, dict[str, Any]] = {}
    live_reported: dict[str, str] = {}

    async def get_state(request: web.Request) -> web.Response:
        body = states.get(request.match_info["entity_id"])
        if body is None:
            return web.json_response({"message": "Entity not found."}, status=404)
        return web.json_response(body)

    async def render(request: web.Request) -> web.Response:
        template = (await request.json())["template"]
        match = re.search(r"states\.([a-z0-9_]+\.[a-z0-9_]+)", template)
        assert match is not None, template
        return web.Response(text=live_reported.get(match.group(1), ""))

    app = web.Application()
    app.router.add_get("/api/states/{entity_id}", get_state)
    app.router.add_post("/api/template", render)
    async with serve(app) as (url, session):
        yield url, session, states, live_reported


async def test_read_state_asks_ha_not_appdaemons_cache(ha_states_http):
    url, session, states, live_reported = ha_states_http
    app = StubApp(StubPlugin(session, url))
    port = AppDaemonHassPort(app)  # type: ignore[arg-type]
    # AppDaemon saw the reading at 10:00; HA has had it reported since (no
    # state_changed event, so AppDaemon's cache cannot know, nor HA's dict).
    seen = {
        "state": "1500",
        "attributes": {},
        "last_changed": "2026-06-01T10:00:00+00:00",
        "last_reported": "2026-06-01T10:00:00+00:00",
    }
    app.states["sensor.grid"] = seen
    states["sensor.grid"] = seen
    live_reported["sensor.grid"] = "2026-06-01T10:09:55+00:00"

    cached = await port.get_state("sensor.grid")
    fresh = await port.read_state("sensor.grid")

    assert cached is not None
    assert fresh is not None
    assert cached.reported_at == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert fresh.reported_at == datetime(2026, 6, 1, 10, 9, 55, tzinfo=UTC)
    assert fresh.raw == "1500"
    assert await port.read_state("sensor.nothing") is None


async def test_read_state_on_ha_before_last_reported_has_none(ha_states_http):
    url, session, states, _ = ha_states_http
    port = AppDaemonHassPort(StubApp(StubPlugin(session, url)))  # type: ignore[arg-type]
    states["sensor.grid"] = {"state": "7", "attributes": {}, "last_changed": "2026-06-01T10:00Z"}

    state = await port.read_state("sensor.grid")

    assert state is not None
    assert state.last_reported is None
    assert state.reported_at == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


async def test_read_state_refuses_what_is_not_an_entity_id():
    port = AppDaemonHassPort(StubApp(StubPlugin(None)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an entity id"):
        await port.read_state("sensor.x }}{{ 7*7")


async def test_read_state_without_connection_is_a_hass_error():
    port = AppDaemonHassPort(StubApp(StubPlugin(None)))  # type: ignore[arg-type]
    with pytest.raises(HassError, match="no Home Assistant plugin"):
        await port.read_state("sensor.a")
