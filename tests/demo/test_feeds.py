import json
from datetime import UTC, datetime

from demo import feeds
from demo.entities import BATTERY_SOC, EXPORT_TODAY, GRID_POWER, SENSORS
from demo.site_model import SiteReadings, SiteState

SNAP = feeds.Snapshot(
    time=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    readings=SiteReadings(
        pv_w=5000.0, load_w=600.0, battery_w=1500.0, grid_w=-5900.0, soc_pct=64.27
    ),
    site=SiteState(soc_pct=64.27, imported_kwh=4210.1234, exported_kwh=1830.5),
    export_today_kwh=3.25,
    mode="discharging",
)


def test_every_sensor_gets_a_state_at_its_precision():
    states = dict(feeds.ha_states(SNAP))
    assert set(states) == set(SENSORS)
    assert states[GRID_POWER] == "-5900"
    assert states[BATTERY_SOC] == "64.3"
    assert states[EXPORT_TODAY] == "3.250"


def test_negative_zero_reads_as_zero():
    snap = feeds.Snapshot(
        SNAP.time, SiteReadings(0.0, 0.0, 0.0, -0.0001, 50.0), SNAP.site, 0.0, "idle"
    )
    assert dict(feeds.ha_states(snap))[GRID_POWER] == "0"


def test_energy_sensors_are_total_increasing_kwh():
    for sensor in SENSORS:
        attrs = sensor.attributes()
        if sensor.device_class == "energy":
            assert (attrs["unit_of_measurement"], attrs["state_class"]) == (
                "kWh",
                "total_increasing",
            )
        else:
            assert attrs["state_class"] == "measurement"


def test_gateway_payloads_are_json_with_the_paths_the_demo_config_reads():
    messages = feeds.gateway_messages(SNAP)
    meter = json.loads(json.dumps(messages[feeds.GATEWAY_METER_TOPIC]))
    assert meter["power"] == -5900.0
    assert meter["energy"] == {"import": 4210.123, "export": 1830.5}
    assert messages[feeds.GATEWAY_PV_TOPIC]["power"] == 5000.0


def test_controller_event_and_status():
    event = feeds.controller_event(SNAP)
    assert event["battery"] == {"power_w": 1500.0, "soc": 64.27}
    assert event["inverter"]["mode"] == "discharging"
    assert feeds.controller_status(SNAP)["export_today_kwh"] == 3.25
