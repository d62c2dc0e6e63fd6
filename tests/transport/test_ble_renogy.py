"""The renogy profile through renogy-ble against a simulated Rover controller
(Modbus over BLE, frames recorded from a real one); runs on Python 3.11."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import bleak_retry_connector
import pytest

pytest.importorskip("renogy_ble")

from gridwatch.runtime.ble_profiles import device_link
from gridwatch.transport import ble_drivers
from gridwatch.transport.ble_device_link import BleDeviceLink
from gridwatch.transport.ble_settings import DEVICE_KEY, BleSettings
from gridwatch.transport.errors import ConnectError
from tests.support import waiting
from tests.support.fake_renogy import RECORDED, RECORDED_VALUES, RenogySimulator, crc16

# Waits here default to 10.0 s.
until = functools.partial(waiting.until, timeout=10.0)


ALL_REGISTERS = set(RECORDED)


@pytest.fixture(autouse=True)
def fast_library(monkeypatch: pytest.MonkeyPatch) -> None:
    # renogy-ble waits 2 s for a register that does not answer; the
    # simulator answers in a loop turn or never.
    monkeypatch.setattr(ble_drivers, "RENOGY_REPLY_WAIT_S", 0.1)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_BACKOFF_TIME", 0.0)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_TRANSIENT_BACKOFF_TIME", 0.0)


async def no_wait(_delay: float) -> None:
    await asyncio.sleep(0)


def make(sim: RenogySimulator, failures: int = 1) -> tuple[BleDeviceLink, list[dict[str, Any]]]:
    peripheral = sim.peripheral()
    settings = BleSettings(
        peripheral.address,
        device="renogy",
        poll_interval_s=0.05,
        request_timeout_s=5,
        failures_before_offline=failures,
    )
    link = device_link(
        "rover", settings, {"backend": peripheral.backend, "sleep": no_wait, "rand": lambda: 0.5}
    )
    assert isinstance(link, BleDeviceLink)
    return link, []


async def test_the_recorded_controller_reads_as_renogy_ble_recorded_it() -> None:
    sim = RenogySimulator()
    link, samples = make(sim)
    await link.subscribe(DEVICE_KEY, lambda m: samples.append(m.payload))
    try:
        await link.connect(timeout=10)
        await until(lambda: samples)
    finally:
        await link.disconnect()
    for key, want in RECORDED_VALUES.items():
        assert samples[0][key] == pytest.approx(want) if isinstance(want, float) else want, key
    # renogy-ble asked for each register block with a valid Modbus CRC.
    asked = {int.from_bytes(r[2:4], "big") for r in sim.requests}
    assert asked == ALL_REGISTERS
    assert all(crc16(r[:6]) == r[6:] for r in sim.requests)


async def test_a_controller_that_answers_nothing_fails_the_connect() -> None:
    sim = RenogySimulator(silent=set(ALL_REGISTERS))
    link, _ = make(sim)
    with pytest.raises(ConnectError, match="no valid answer"):
        await link.connect(timeout=10)
    await link.disconnect()


async def test_fault_matrix_drop_mid_frame_20_times_recovers_and_leaves_nothing() -> None:
    baseline = len(asyncio.all_tasks())
    for _ in range(20):
        sim = RenogySimulator()
        link, samples = make(sim)
        await link.subscribe(DEVICE_KEY, lambda m, s=samples: s.append(m.payload))
        link.start()
        await until(lambda: link.connected and bool(samples))  # noqa: B023 - awaited here
        sim.drop_mid_frame.update(ALL_REGISTERS)
        await until(lambda: not link.connected)  # noqa: B023
        sim.drop_mid_frame.clear()
        count = len(samples)
        await until(lambda: link.connected and len(samples) > count)  # noqa: B023
        await link.disconnect()
        assert sim.device is not None
        assert sim.device.active is None  # no connection left open
    await until(lambda: len(asyncio.all_tasks()) <= baseline, timeout=2)
