"""apps.yaml, the simulator's feeds and the panel must agree.

The apps.yaml is the one a user copies, the simulator is what the demo's
links read, and the panel shows the apps' entities: a renamed topic, path or
entity in one of them would leave the demo showing placeholders.
"""

import json
import re
from datetime import UTC, datetime

import pytest
import yaml

from demo import ble_battery, entities, feeds
from demo.config_files import (
    BLE_BACKEND,
    DASHBOARD_DIR,
    DEMO_APPS_YAML,
    Addresses,
    check_apps,
    load_apps_yaml,
    secrets,
)
from demo.sandbox import DemoHaConfig
from demo.simulator import GRID_METER_OFFLINE
from demo.site_model import SiteReadings, SiteState
from gridwatch.config.energy_tally_schema import EnergyTallySchema
from gridwatch.config.link_monitor_schema import LinkMonitorSchema
from gridwatch.energy.entities import meter_entity_ids, role_entity_ids
from gridwatch.guard.entities import entity_ids as guard_entity_ids
from gridwatch.links.entities import link_entity_ids
from gridwatch.links.values import Reading, extract
from tests.support.fake_bleak import TELEMETRY_UUID

LINK_APPS = ("link_monitor",)

ADDRESSES = Addresses(
    ha_url="http://127.0.0.1:8123",
    mqtt_port=1883,
    mqtt_username="gridwatch",
    mqtt_password="pw",
    controller_url="http://127.0.0.1:8080",
    controller_username="installer",
    controller_password="pw2",
)
SNAP = feeds.Snapshot(
    time=datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    readings=SiteReadings(
        pv_w=5000.0, load_w=600.0, battery_w=1500.0, grid_w=-5900.0, soc_pct=64.2
    ),
    site=SiteState(soc_pct=64.2, imported_kwh=4210.1, exported_kwh=1830.5, battery_out_kwh=950.2),
    export_today_kwh=3.25,
    mode="discharging",
)


@pytest.fixture(scope="module")
def apps():
    return load_apps_yaml(DEMO_APPS_YAML, secrets(ADDRESSES))


def test_every_app_accepts_its_entry(apps):
    assert check_apps(apps) == []


def test_only_the_ble_link_runs_on_the_simulated_backend(apps):
    links = {link["name"]: link for link in apps["link_monitor"]["links"]}
    assert links["battery_bms"]["ble"]["backend"] == BLE_BACKEND
    assert [name for name, link in links.items() if "ble" in link] == ["battery_bms"]


def test_secrets_fill_in_the_sandbox_addresses(apps):
    links = {link["name"]: link for link in apps["link_monitor"]["links"]}
    assert links["gateway"]["mqtt"]["port"] == 1883
    assert links["controller"]["websocket"]["url"] == "http://127.0.0.1:8080"


def test_an_unknown_secret_is_refused(tmp_path):
    path = tmp_path / "apps.yaml"
    path.write_text("a:\n  password: !secret nope\n")
    with pytest.raises(KeyError, match="nope"):
        load_apps_yaml(path, {})


def test_every_option_of_the_file_is_commented():
    # "Documented, copyable": every line that sets an option of the apps says
    # what it does, on the line or in the comment block just above it.
    lines = DEMO_APPS_YAML.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- name:", "module:", "class:")):
            continue
        if not re.match(r"^\s*-?\s*[a-z_]+:", line):
            continue
        commented = "#" in line or lines[i - 1].strip().startswith("#")
        # A value block repeats the keys the first block of its kind explained.
        repeated = any(stripped.split(":")[0] in other and "#" in other for other in lines[:i])
        if not (commented or repeated):
            undocumented.append(f"{i + 1}: {line}")
    assert undocumented == []


def _payload(source: str):
    """What the simulator (or the BLE device) sends on ``source``, as the link hands it over."""
    if source == TELEMETRY_UUID:
        return ble_battery.telemetry(60.0)
    gateway = feeds.gateway_messages(SNAP)
    if source in gateway:
        return json.dumps(gateway[source]).encode()  # MQTT delivers bytes
    if source == feeds.CONTROLLER_EVENT:
        return feeds.controller_event(SNAP)
    if source == feeds.CONTROLLER_STATUS_PATH:
        return feeds.controller_status(SNAP)
    raise AssertionError(f"the simulator sends nothing on {source!r}")


def _links(apps):
    return [
        link
        for app in LINK_APPS
        for link in LinkMonitorSchema()
        .load(
            {
                k: v
                for k, v in apps[app].items()
                if k not in ("module", "class", "priority", "entities")
            }
        )
        .links
    ]


def test_every_link_value_is_found_in_what_the_simulator_sends(apps):
    found = {}
    for link in _links(apps):
        for spec in link.values:
            found[f"{link.name}.{spec.name}"] = extract(spec, _payload(spec.key))
    assert all(isinstance(r, Reading) for r in found.values()), found
    assert found["gateway.grid_power"] == Reading(-5900.0)
    assert found["controller.battery_soc"] == Reading(64.2)
    assert found["controller.inverter_mode"] == Reading("discharging")
    assert 3.2 < float(found["battery_bms.cell_voltage"].value) < 3.4


def test_the_tally_counts_the_simulated_meters(apps):
    entry = apps["energy_tally"]
    config = EnergyTallySchema().load(
        {k: v for k, v in entry.items() if k not in ("module", "class", "priority", "entities")}
    )
    sensor_ids = {s.entity_id for s in entities.SENSORS if s.state_class == "total_increasing"}
    assert {m.statistic_id for m in config.meters} <= sensor_ids


def _known_entities(apps):
    links = _links(apps)
    tally = EnergyTallySchema().load(
        {
            k: v
            for k, v in apps["energy_tally"].items()
            if k not in ("module", "class", "priority", "entities")
        }
    )
    known = {s.entity_id for s in entities.SENSORS} | set(entities.CONTROL_IDS)
    known.add(entities.DISCHARGE_REQUEST)
    for link in links:
        known.update(link_entity_ids(link.name, [v.name for v in link.values]))
    for meter in tally.meters:
        known.update(meter_entity_ids(meter))
        if meter.role is not None:
            known.update(role_entity_ids("energy_tally", meter.role))
    known.update({"sensor.energy_tally_health", "sensor.notifier_active_notices"})
    known.update(guard_entity_ids("export_guard").values())
    return known


def test_the_panel_shows_only_entities_the_demo_has(apps):
    dash = yaml.safe_load((DASHBOARD_DIR / "gridwatch.dash").read_text())
    widgets = {k: v for k, v in dash.items() if isinstance(v, dict) and "widget_type" in v}
    # sensor.x.attribute shows an attribute of sensor.x
    shown = {".".join(w["entity"].split(".")[:2]) for w in widgets.values() if "entity" in w}
    assert shown - _known_entities(apps) == set()
    # The chart is the export guard app's route, /app/<app name>_chart
    # (gridwatch.runtime.chart_route; apps.yaml names the app).
    chart = widgets["export_chart"]
    assert "export_guard" in apps
    assert chart["img_list"][0].split("?")[0] == "/app/export_guard_chart"
    placed = {
        name.split("(")[0].strip()
        for row in dash["layout"]
        if isinstance(row, str)  # {empty: N} rows hold no widget
        for name in row.split(",")
        if name.strip() != "spacer"
    }
    assert placed == set(widgets)


def test_the_sandbox_has_the_inverter_controls_and_no_template_meters(tmp_path):
    config = DemoHaConfig(port=8123).as_dict(tmp_path)
    assert "template" not in config
    defined = {
        f"{domain}.{name}"
        for domain in ("input_boolean", "input_number")
        for name in config[domain]
    }
    assert defined == {*entities.CONTROL_IDS, entities.DISCHARGE_REQUEST, GRID_METER_OFFLINE}
    assert "frontend" in config


def test_control_ids_match_the_e2e_harness():
    from tests.e2e import ha_config

    assert (ha_config.DISCHARGE_ENABLE, ha_config.DISCHARGE_POWER) == (
        entities.DISCHARGE_ENABLE,
        entities.DISCHARGE_POWER,
    )
    assert (ha_config.CUTOFF_SOC, ha_config.DISCHARGE_DURATION) == (
        entities.CUTOFF_SOC,
        entities.DISCHARGE_DURATION,
    )


def test_a_bad_entry_is_reported_naming_its_key(apps):
    broken = {name: dict(entry) for name, entry in apps.items()}
    broken["export_guard"]["export_limit_w"] = -5
    broken["energy_tally"]["modul"] = "typo"
    problems = check_apps(broken)
    assert len(problems) == 2
    text = "\n".join(problems)
    assert "export_guard" in text
    assert "export_limit_w" in text
    assert "energy_tally" in text
    assert "modul" in text
