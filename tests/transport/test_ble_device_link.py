"""The polled device link's lifecycle with a stand-in driver (runs on any
Python; the real libraries drive it in test_ble_profiles / test_ble_esphome)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bleak.backends.device import BLEDevice

from gridwatch.transport.ble_device_link import BleDeviceLink
from gridwatch.transport.ble_settings import DEVICE_KEY, BleSettings
from gridwatch.transport.errors import ConnectError, UnsupportedHostError
from gridwatch.transport.link import Message
from tests.support.waiting import until

ADDRESS = "A4:C1:37:00:00:01"


class Driver:
    """Answers polls with a counter, or fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing: BaseException | None = None
        self.polls = 0
        self.closed = 0

    async def poll(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self.failing is not None:
            raise self.failing
        self.polls += 1
        return {"voltage": 13.0 + self.polls / 100}

    async def close(self) -> None:
        self.closed += 1


async def no_wait(_delay: float) -> None:
    await asyncio.sleep(0)


def make(driver: Driver, *, locate: Any = None, failures: int = 2) -> BleDeviceLink:
    async def found(address: str, _timeout: float) -> tuple[BLEDevice, None]:
        return BLEDevice(address, "bms", details=None), None

    async def make_driver(_device: BLEDevice, _adv: Any) -> Driver:
        return driver

    settings = BleSettings(
        ADDRESS,
        device="jbd",
        poll_interval_s=0.01,
        failures_before_offline=failures,
        request_timeout_s=1,
        scan_timeout_s=1,
    )
    return BleDeviceLink(
        "bms",
        settings,
        locate=locate or found,
        make_driver=make_driver,
        sleep=no_wait,
        rand=lambda: 0.5,
    )


async def test_polls_deliver_samples_and_failures_in_a_row_reconnect(caplog) -> None:
    driver = Driver()
    link = make(driver, failures=3)
    seen: list[Message] = []
    await link.subscribe(DEVICE_KEY, seen.append)
    link.start()
    try:
        await until(lambda: len(seen) >= 3)
        assert all(m.key == DEVICE_KEY for m in seen)
        assert seen[-1].payload["voltage"] > seen[0].payload["voltage"]
        driver.failing = TimeoutError()
        await until(lambda: not link.connected)
        lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
        assert lost
        assert "3 polls failed" in lost[0]
        assert driver.closed >= 1  # the library let go of the device
        driver.failing = None
        count = len(seen)
        await until(lambda: link.connected and len(seen) > count)
    finally:
        await link.disconnect()


async def test_one_failed_poll_does_not_drop_the_link() -> None:
    driver = Driver()
    link = make(driver, failures=2)
    seen: list[Message] = []
    await link.subscribe(DEVICE_KEY, seen.append)
    await link.connect(timeout=5)
    try:
        await until(lambda: len(seen) >= 2)
        driver.failing = TimeoutError()
        await until(lambda: link.failed_polls == 1)
        driver.failing = None
        count = len(seen)
        await until(lambda: len(seen) > count)
        assert link.connected
        assert link.health.reconnects == 0
    finally:
        await link.disconnect()


async def test_a_host_without_bluetooth_stops_the_link_naming_the_proxies() -> None:
    async def no_dbus(_address: str, _timeout: float) -> None:
        raise FileNotFoundError(2, "No such file or directory", "/run/dbus/system_bus_socket")

    link = make(Driver(), locate=no_dbus)
    with pytest.raises(UnsupportedHostError, match="adapter: esphome"):
        await link.connect(timeout=5)
    link.start()
    await until(lambda: link.fatal_error is not None)  # no retry loop: nothing to retry
    await link.disconnect()


async def test_a_device_not_seen_is_a_retried_connect_error() -> None:
    async def nothing(_address: str, _timeout: float) -> None:
        return None

    link = make(Driver(), locate=nothing)
    with pytest.raises(ConnectError, match="not seen within 1 s"):
        await link.connect(timeout=5)
    assert link.fatal_error is None
    await link.disconnect()


async def test_a_broken_library_call_never_escapes_the_link() -> None:
    driver = Driver()
    driver.failing = ZeroDivisionError("a bug in the library")
    link = make(driver)
    with pytest.raises(ConnectError, match="ZeroDivisionError"):
        await link.connect(timeout=5)
    await link.disconnect()
    assert driver.closed == 1
