"""GridwatchApp: validate config, refuse to run on errors, wire the ports."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from marshmallow import fields, validate

from gridwatch.config import ConfigSchema
from gridwatch.notices.client import NOTICE_EVENT
from gridwatch.runtime.app_base import GridwatchApp
from tests.support.app_harness import make_app
from tests.support.fake_hass import Fail, FakeHass


@dataclass(frozen=True)
class DemoConfig:
    limit_w: float


class DemoSchema(ConfigSchema):
    config_class = DemoConfig
    limit_w = fields.Float(
        required=True, validate=validate.Range(min=0), metadata={"example": 3680}
    )


class DemoApp(GridwatchApp[DemoConfig]):
    schema = DemoSchema
    torn_down = False

    async def setup(self, config, hass, notices):
        self.loaded = config
        await hass.set_entity("sensor.demo_limit", config.limit_w, {"unit_of_measurement": "W"})
        await hass.run_every(self.tick, 10)
        await hass.listen_state("sensor.grid", self.on_grid)

    async def tick(self):
        pass

    def on_grid(self, entity_id, old, new):
        pass

    async def teardown(self):
        self.torn_down = True


async def test_good_config_runs_setup_with_a_typed_config():
    hass = FakeHass()
    app = make_app(DemoApp, {"limit_w": 4000}, hass, name="demo")
    await app.initialize()
    assert app.loaded == DemoConfig(4000.0)
    assert hass.started
    limit = hass.state_of("sensor.demo_limit")
    assert limit is not None
    assert limit.raw == "4000.0"
    assert hass.pending_timers == 1
    # A configuration notice from an earlier bad start is cleared.
    assert hass.events_of(NOTICE_EVENT) == [
        {"action": "resolve", "notice_id": "demo_configuration_error"}
    ]
    assert [
        c.data["notification_id"] for c in hass.calls_to("persistent_notification/dismiss")
    ] == ["demo_configuration_error"]


async def test_bad_config_logs_one_error_raises_the_notice_and_does_nothing(caplog):
    hass = FakeHass()
    app = make_app(DemoApp, {"limit_wat": 4000}, hass, name="demo")
    with caplog.at_level(logging.DEBUG):
        await app.initialize()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert "limit_wat: unknown key; did you mean 'limit_w'?" in text
    assert "limit_w: Missing data for required field" in text
    assert "Example: limit_w: 3680" in text
    # Through the notifier event ...
    (event,) = hass.events_of(NOTICE_EVENT)
    assert event["action"] == "raise"
    assert event["notice_id"] == "demo_configuration_error"
    assert event["title"] == "Gridwatch: demo configuration error"
    assert "limit_wat" in event["message"]
    # ... and directly, in case the notifier is the misconfigured app.
    note = hass.notifications["demo_configuration_error"]
    assert note["title"] == "Gridwatch: demo configuration error"
    assert "limit_wat" in note["message"]
    assert "1. Open apps.yaml" in note["message"]
    # Refuses to run: no entities, listeners or timers; setup never ran.
    assert not hasattr(app, "loaded")
    assert not hass.owned
    assert hass.pending_timers == 0
    assert hass.listener_count("sensor.grid") == 0
    assert not hass.started
    await app.terminate()
    assert not app.torn_down


async def test_config_notice_survives_an_unreachable_ha(caplog):
    hass = FakeHass()
    hass.script_service("persistent_notification/create", Fail("HA is restarting"))
    app = make_app(DemoApp, {"limit_w": -1}, hass, name="demo")
    with caplog.at_level(logging.WARNING):
        await app.initialize()
    assert any(
        "could not create the configuration notification" in r.getMessage() for r in caplog.records
    )


async def test_terminate_runs_teardown_then_cancels_everything():
    hass = FakeHass()
    app = make_app(DemoApp, {"limit_w": 1}, hass, name="demo")
    await app.initialize()
    await app.terminate()
    assert app.torn_down
    assert hass.closed
    assert hass.pending_timers == 0
    assert hass.listener_count("sensor.grid") == 0
