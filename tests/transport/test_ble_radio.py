"""Which radio a BLE client uses, and one connect at a time on the host's."""

from __future__ import annotations

import asyncio

from bleak.backends.device import BLEDevice

from gridwatch.transport.ble_radio import (
    ProxiedDetails,
    RadioBleakClient,
    RadioDetails,
    RadioServiceCacheClient,
    backend_of,
    host_radio_turn,
)
from tests.support.fake_bleak import FakePeripheral


def test_a_client_uses_the_radio_its_device_was_found_through() -> None:
    peripheral = FakePeripheral()
    simulated = BLEDevice(peripheral.address, "x", details=RadioDetails(peripheral.backend))
    proxied = BLEDevice(
        peripheral.address, "x", details=ProxiedDetails({"source": "p"}, peripheral.backend)
    )
    for device in (simulated, proxied):
        assert backend_of(device) is peripheral.backend
        for cls in (RadioBleakClient, RadioServiceCacheClient):
            client = cls(device)
            assert isinstance(client._backend, peripheral.backend)
    assert backend_of(BLEDevice(peripheral.address, "x", details={"path": "/org/bluez"})) is None


async def test_host_connects_take_turns_and_other_radios_do_not_wait() -> None:
    host_a = BLEDevice("AA:00:00:00:00:01", "a", details=None)
    host_b = BLEDevice("AA:00:00:00:00:02", "b", details=None)
    proxied = BLEDevice(
        "AA:00:00:00:00:03", "c", details=ProxiedDetails({}, FakePeripheral().backend)
    )
    order: list[str] = []
    release = asyncio.Event()

    async def hold(device: BLEDevice, name: str) -> None:
        async with host_radio_turn(device):
            order.append(f"{name} in")
            if name == "a":
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(hold(host_a, "a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold(host_b, "b"))
    third = asyncio.create_task(hold(proxied, "c"))
    await asyncio.sleep(0.01)
    assert order == ["a in", "c in", "c out"]  # b waits for a; c is not the host's
    release.set()
    await asyncio.gather(first, second, third)
    assert order[-3:] == ["a out", "b in", "b out"]
