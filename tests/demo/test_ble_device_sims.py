"""The demo's BLE device simulators, read through the real libraries exactly
as the demo's device_monitor app configures them (apps.yaml)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from demo import ble_victron
from demo.config_files import DEMO_APPS_YAML, load_apps_yaml, secrets
from gridwatch.config.link_monitor_schema import LinkMonitorSchema
from gridwatch.links.values import Reading, extract
from gridwatch.runtime.link_factory import build_link
from gridwatch.transport.link import Link, Message
from tests.demo.test_apps_yaml import ADDRESSES


def _device_links() -> dict[str, Any]:
    apps = load_apps_yaml(DEMO_APPS_YAML, secrets(ADDRESSES))
    links = {}
    for app in ("device_monitor", "bms_monitor"):
        options = {k: v for k, v in apps[app].items() if k in ("links", "ble")}
        links.update({link.name: link for link in LinkMonitorSchema().load(options).links})
    return links


async def _first_sample(link: Link, timeout: float = 10.0) -> dict[str, Any]:
    got: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_message(message: Message) -> None:
        if not got.done():
            got.set_result(message.payload)

    await link.subscribe("device", on_message)
    try:
        await link.connect(timeout=timeout)
        return await asyncio.wait_for(got, timeout)
    finally:
        await link.disconnect()


async def test_the_demo_shunt_advertises_what_its_readings_say(monkeypatch) -> None:
    pytest.importorskip("victron_ble")
    monkeypatch.setattr(ble_victron.ADVERTISER, "interval_s", 0.02)
    config = _device_links()["shunt"]
    sample = await _first_sample(build_link(config))
    values = {spec.name: extract(spec, sample) for spec in config.values}
    measured = {k: values[k] for k in ("voltage", "current", "soc", "consumed_ah")}
    assert all(isinstance(r, Reading) for r in measured.values()), values
    assert 48 < float(values["voltage"].value) < 54  # type: ignore[union-attr]
    assert 0 <= float(values["soc"].value) <= 100  # type: ignore[union-attr]


@pytest.mark.needs_py312
async def test_the_demo_bms_answers_aiobmsble(monkeypatch) -> None:
    pytest.importorskip("aiobmsble", reason="aiobmsble needs Python >= 3.12")
    config = _device_links()["house_battery"]
    sample = await _first_sample(build_link(config), timeout=20)
    values = {spec.name: extract(spec, sample) for spec in config.values}
    assert all(isinstance(r, Reading) for r in values.values()), values
    assert 3.0 < float(values["cell_1"].value) < 3.5  # type: ignore[union-attr]
    assert 12.0 < float(values["voltage"].value) < 14.5  # type: ignore[union-attr]
