"""A simulated Victron SmartShunt advertising Instant Readout.

It builds advertisements as Victron's public "Extra manufacturer data"
document describes them: manufacturer id 0x02E1, then ``10 02`` (readout
prefix), the model id (u16 LE), the record type (0x02: battery monitor), a
16-bit IV (nonce, LE), the first byte of the device's key, and the record
encrypted with AES-128-CTR under that key (counter = IV, little-endian). The
battery monitor record is a little-endian bit stream: remaining minutes
u16, voltage s16 (10 mV), alarm u16, aux u16, aux mode u2, current s22 (mA),
consumed u20 (0.1 Ah, sign dropped), SoC u10 (0.1 %).

:data:`RECORDED` is a SmartShunt advertisement with its key and readings,
from victron-ble's own tests. :class:`SimulatedAdvertiser` is an
advertisement source (the shared scanner's interface) that a demo or test
binds to a shunt model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from Crypto.Cipher import AES
from Crypto.Util import Counter

VICTRON_COMPANY_ID: Final = 0x02E1
SMARTSHUNT_500A: Final = 0xA389
BATTERY_MONITOR: Final = 0x02

# victron-ble tests/test_battery_monitor.py: a SmartShunt 500A/50mV.
RECORDED: Final = {
    "key": "aff4d0995b7d1e176c0c33ecb9e70dcd",
    "data": bytes.fromhex("100289a302b040af925d09a4d89aa0128bdef48c6298a9"),
    "plain": bytes.fromhex("ffffe50400000000030000f40140df03"),
    "values": {"voltage": 12.53, "soc": 50.0, "consumed_ah": -50.0, "current": 0.0},
}


def _bits(fields: list[tuple[int, int]]) -> bytes:
    value, offset = 0, 0
    for number, width in fields:
        value |= (number & ((1 << width) - 1)) << offset
        offset += width
    return value.to_bytes(16, "little")  # padded to the AES block


@dataclass
class ShuntState:
    """A battery monitor's readings."""

    voltage: float = 51.2
    current: float = 0.0  # A, + charging
    consumed_ah: float = 0.0  # Ah taken out since full (>= 0)
    soc: float = 100.0
    remaining_mins: int | None = None

    def record(self) -> bytes:
        return _bits(
            [
                (0xFFFF if self.remaining_mins is None else self.remaining_mins, 16),
                (round(self.voltage * 100), 16),
                (0, 16),  # no alarm
                (0, 16),  # aux
                (3, 2),  # aux input disabled
                (round(self.current * 1000), 22),
                (round(abs(self.consumed_ah) * 10), 20),
                (round(self.soc * 10), 10),
            ]
        )


def encrypt(plain: bytes, key: str, iv: int, model: int = SMARTSHUNT_500A) -> bytes:
    """The manufacturer data of one Instant Readout advertisement."""
    key_bytes = bytes.fromhex(key)
    cipher = AES.new(
        key_bytes, AES.MODE_CTR, counter=Counter.new(128, initial_value=iv, little_endian=True)
    )
    header = b"\x10\x02" + model.to_bytes(2, "little") + bytes([BATTERY_MONITOR])
    return header + iv.to_bytes(2, "little") + key_bytes[:1] + cipher.encrypt(plain)


def advertisement(data: bytes, rssi: int = -70, name: str = "SmartShunt") -> AdvertisementData:
    return AdvertisementData(
        local_name=name,
        manufacturer_data={VICTRON_COMPANY_ID: data},
        service_data={},
        service_uuids=[],
        tx_power=None,
        rssi=rssi,
        platform_data=(),
    )


@dataclass
class Shunt:
    """One simulated advertiser: its address, key and what it reports."""

    address: str = "C4:4F:33:00:00:02"
    key: str = RECORDED["key"]  # type: ignore[assignment]
    state: ShuntState = field(default_factory=ShuntState)
    iv: int = 0
    silent: bool = False  # out of range / switched off
    readings: Callable[[], ShuntState] | None = None  # live readings (the demo)

    def next_advertisement(self) -> AdvertisementData:
        self.iv = (self.iv + 1) & 0xFFFF
        state = self.readings() if self.readings is not None else self.state
        return advertisement(encrypt(state.record(), self.key, self.iv)[:23])


class SimulatedAdvertiser:
    """An advertisement source: emits each bound shunt's advertisement every
    ``interval_s`` (a SmartShunt advertises about once a second)."""

    shunts: list[Shunt] = []
    interval_s: float = 1.0
    started: int = 0  # scans started (one shared scanner: stays 1 per run)

    def __init__(self, detection: Callable[[BLEDevice, AdvertisementData], Any]) -> None:
        self._detection = detection
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        type(self).started += 1
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def emit(self) -> None:
        for shunt in self.shunts:
            if not shunt.silent:
                device = BLEDevice(shunt.address, "SmartShunt", details=None)
                self._detection(device, shunt.next_advertisement())

    async def _run(self) -> None:
        while True:
            self.emit()
            await asyncio.sleep(self.interval_s)


def advertiser_for(*shunts: Shunt, interval_s: float = 1.0) -> type[SimulatedAdvertiser]:
    """An advertiser class bound to ``shunts`` (the factory builds it itself)."""
    return type(
        "BoundSimulatedAdvertiser",
        (SimulatedAdvertiser,),
        {"shunts": list(shunts), "interval_s": interval_s, "started": 0},
    )
