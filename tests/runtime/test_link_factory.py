"""Building transport links from config: the right class, settings and laziness."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gridwatch.config.base import load_config
from gridwatch.config.link_monitor_schema import LinkMonitorConfig, LinkMonitorSchema
from gridwatch.runtime.link_factory import build_link, plan_for, subscribe_options
from tests.support.clock import FakeClock

SECRET = "pw-never-shown"

ARGS = {
    "links": [
        {
            "name": "gateway",
            "mqtt": {
                "host": "broker.local",
                "port": 8883,
                "tls": True,
                "username": "gw",
                "password": SECRET,
                "qos": 2,
                "protocol": "5",
                "availability_topic": "gridwatch/gateway/availability",
            },
            "connect_timeout_s": 20,
            "connect_timeout_max_s": 40,
            "values": [{"name": "p", "source": "gw/state", "path": "p"}],
        },
        {
            "name": "controller",
            "websocket": {"url": "http://ctl.local", "username": "a", "password": SECRET},
            "values": [{"name": "p", "source": "pv", "path": "w"}],
        },
        {
            "name": "meter",
            "http": {"url": "http://meter.local", "poll_interval_s": 15},
            "values": [{"name": "e", "source": "/api/e", "path": "kwh"}],
        },
        {
            "name": "battery",
            "ble": {"address": "AA:BB:CC:DD:EE:FF", "connect_attempts": 2},
            "values": [{"name": "soc", "source": "ffe1", "offset": 0, "format": "B"}],
        },
    ]
}


@pytest.fixture
def links():
    config = load_config(LinkMonitorSchema, ARGS, into=LinkMonitorConfig)
    return {link.name: link for link in config.links}


def test_mqtt_link_gets_its_settings(links):
    from gridwatch.transport.mqtt_link import MqttLink

    clock = FakeClock()
    link = build_link(links["gateway"], clock=clock)
    assert isinstance(link, MqttLink)
    assert link.name == "gateway"
    s = link.settings
    assert (s.host, s.port, s.tls, s.username, s.password) == (
        "broker.local",
        8883,
        True,
        "gw",
        SECRET,
    )
    assert s.protocol == "5"
    assert s.default_qos == 2
    assert s.availability_topic == "gridwatch/gateway/availability"
    assert link.health.timeout_s == 20  # adaptive timeout starts at the configured base
    assert subscribe_options(links["gateway"]) == {"qos": 2}


def test_persistent_session_and_data_watchdog_reach_the_link():
    from gridwatch.transport.mqtt_link import MqttLink

    args = {
        "links": [
            {
                "name": "gateway",
                "mqtt": {
                    "host": "broker.local",
                    "clean_session": False,
                    "client_id": "gw-monitor",
                    "session_expiry_s": 7200,
                    "protocol": "5",
                },
                "no_data_degraded_after_s": 120,
                "no_data_reconnect_after_s": 600,
                "values": [{"name": "p", "source": "gw/state", "path": "p"}],
            }
        ]
    }
    config = load_config(LinkMonitorSchema, args, into=LinkMonitorConfig)
    link = build_link(config.links[0])
    assert isinstance(link, MqttLink)
    assert link.client_id == "gw-monitor"  # stable: the broker finds the session
    assert (link.settings.clean_session, link.settings.session_expiry_s) == (False, 7200)
    watchdog = link.health_policy.watchdog
    assert (watchdog.degraded_after_s, watchdog.reconnect_after_s) == (120, 600)


def test_websocket_http_and_ble_links_get_their_settings(links):
    from gridwatch.transport.ble_link import BleLink
    from gridwatch.transport.http_link import HttpPollLink
    from gridwatch.transport.websocket_link import WebSocketLink

    ws = build_link(links["controller"])
    assert isinstance(ws, WebSocketLink)
    assert ws.settings.base_url == "http://ctl.local"
    assert ws.settings.login is not None
    assert ws.settings.login.password == SECRET
    http = build_link(links["meter"])
    assert isinstance(http, HttpPollLink)
    assert http.settings.poll_interval_s == 15
    assert http.settings.login is None
    ble = build_link(links["battery"])
    assert isinstance(ble, BleLink)
    assert ble.settings.address == "AA:BB:CC:DD:EE:FF"
    assert ble.settings.connect_attempts == 2
    assert subscribe_options(links["battery"]) == {}


def test_plan_carries_no_credentials(links):
    for link in links.values():
        plan = plan_for(link)
        assert SECRET not in repr(plan)
        assert plan.name == link.name
    assert plan_for(links["gateway"]).target == "mqtts://broker.local:8883"
    assert plan_for(links["gateway"]).sources() == ["gw/state"]


def test_an_mqtt_only_setup_never_imports_bleak_or_aiohttp():
    # A fresh interpreter: this test session has imported everything already.
    code = textwrap.dedent(
        """
        import sys
        from gridwatch.config.base import load_config
        from gridwatch.config.link_monitor_schema import LinkMonitorSchema
        from gridwatch.runtime.link_factory import build_link
        config = load_config(LinkMonitorSchema, {"links": [{"name": "g",
            "mqtt": {"host": "h"}, "values": [{"name": "p", "source": "t"}]}]})
        build_link(config.links[0])
        import gridwatch.links.monitor, gridwatch.links.publisher  # all the app uses of links
        print(sorted(m for m in ("bleak", "aiohttp") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": ".:lib:apps"},
    )
    assert out.stdout.strip() == "[]", out.stderr


def _ble_args(backend):
    return {
        "links": [
            {
                "name": "bms",
                "ble": {"address": "AA:BB:CC:DD:EE:01", "backend": backend},
                "values": [{"name": "soc", "source": "ffe1", "offset": 0, "format": "B"}],
            }
        ]
    }


def test_a_ble_link_can_run_on_a_configured_backend():
    from demo.ble_battery import BACKEND
    from gridwatch.transport.ble_link import BleLink

    config = load_config(
        LinkMonitorSchema, _ble_args("demo.ble_battery:BACKEND"), into=LinkMonitorConfig
    )
    link = build_link(config.links[0])
    assert isinstance(link, BleLink)
    assert link._backend is BACKEND


def test_a_backend_that_is_no_bleak_backend_is_refused():
    config = load_config(
        LinkMonitorSchema,
        _ble_args("tests.support.fake_bleak:FakePeripheral"),
        into=LinkMonitorConfig,
    )
    with pytest.raises(ValueError, match="not a bleak client backend class"):
        build_link(config.links[0])


def test_a_missing_backend_is_a_clear_build_error():
    config = load_config(
        LinkMonitorSchema, _ble_args("no_such_module:Backend"), into=LinkMonitorConfig
    )
    with pytest.raises(ValueError, match="cannot load BLE backend 'no_such_module:Backend'"):
        build_link(config.links[0])


def test_a_malformed_backend_is_refused_by_the_schema():
    from gridwatch.config.base import ConfigError

    with pytest.raises(ConfigError, match="backend"):
        load_config(LinkMonitorSchema, _ble_args("not a spec"), into=LinkMonitorConfig)
