"""The demo's BLE battery monitor through the real BleLink and bleak front end."""

import struct

import pytest

from demo import ble_battery
from gridwatch.links.values import Reading, ValueSpec, extract
from gridwatch.transport.ble_link import BleLink, BleSettings
from tests.support.device_server import Inbox
from tests.support.fake_bleak import TELEMETRY_UUID


@pytest.mark.parametrize("elapsed", [0.0, 45.0, 3600.0])
def test_telemetry_is_a_plausible_cell(elapsed):
    millivolts, deci_c = struct.unpack(ble_battery.TELEMETRY_FORMAT, ble_battery.telemetry(elapsed))
    assert 3270 <= millivolts <= 3330
    assert 220 <= deci_c <= 280


async def test_a_ble_link_receives_the_telemetry_stream():
    link = BleLink(
        "battery_bms", BleSettings(address=ble_battery.ADDRESS), backend=ble_battery.BACKEND
    )
    inbox = Inbox()
    await link.subscribe(TELEMETRY_UUID, inbox)
    await link.connect(timeout=5)
    try:
        messages = await inbox.wait_count(1)
    finally:
        await link.disconnect()
    voltage = ValueSpec(name="cell_voltage", key=TELEMETRY_UUID, offset=0, fmt="<H", scale=0.001)
    temperature = ValueSpec(name="cell_temp", key=TELEMETRY_UUID, offset=2, fmt="<H", scale=0.1)
    volts = extract(voltage, messages[0].payload)
    celsius = extract(temperature, messages[0].payload)
    assert isinstance(volts, Reading)
    assert isinstance(celsius, Reading)
    assert 3.2 < float(volts.value) < 3.4
    assert 20 < float(celsius.value) < 30
    # The stream ends with the connection.
    assert ble_battery.PERIPHERAL.active is None
