"""The demo's Bluetooth LE battery monitor, on the scripted fake bleak backend.

There is no radio here, so the device is the test suite's
:class:`~tests.support.fake_bleak.FakePeripheral` behind a real bleak front
end. The link monitor runs inside AppDaemon's process, so the device must
live there too: a BLE link selects it by naming :data:`BACKEND` as its bleak
backend. Once the link turns notifications on, the device streams its
telemetry every second: cell voltage and cell temperature, the two readings
a battery's management system reports that the site model does not.

Telemetry layout (little-endian): u16 cell voltage in mV at offset 0, u16
cell temperature in 0.1 degC at offset 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from typing import Any, Final

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import NotifyCallback

from tests.support.fake_bleak import TELEMETRY_UUID, FakeBleakBackend, FakePeripheral

ADDRESS: Final = "AA:BB:CC:DD:EE:01"
TELEMETRY_FORMAT: Final = "<HH"
# A BMS reports about once a second.
INTERVAL_S: Final = 1.0

PERIPHERAL: Final = FakePeripheral(address=ADDRESS, name="gridwatch-demo-bms")


def telemetry(elapsed_s: float) -> bytes:
    """The telemetry notification ``elapsed_s`` seconds after the device started.

    A LiFePO4 cell resting near 3.3 V with a slow ripple, and a cell
    temperature drifting between 22 and 28 degC.
    """
    millivolts = 3300 + 25 * math.sin(elapsed_s / 90.0)
    temp_c = 25.0 + 3.0 * math.sin(elapsed_s / 600.0)
    return struct.pack(TELEMETRY_FORMAT, round(millivolts), round(temp_c * 10))


class DemoBmsBackend(FakeBleakBackend):
    """The bleak backend of the demo battery monitor (bound to :data:`PERIPHERAL`)."""

    peripheral = PERIPHERAL
    _streams: Final[set[asyncio.Task[None]]] = set()
    _epoch: Final = time.monotonic()

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,
    ) -> None:
        await super().start_notify(characteristic, callback, **kwargs)
        if characteristic.uuid == TELEMETRY_UUID:
            task = asyncio.get_running_loop().create_task(self._stream())
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)

    async def _stream(self) -> None:
        # Ends as soon as this connection goes away (the fake sets its
        # per-connection "gone" event), or when notifications are turned off.
        gone = self._gone
        with contextlib.suppress(asyncio.CancelledError):
            while self.is_connected and TELEMETRY_UUID in self.notifying and gone is not None:
                self.push(TELEMETRY_UUID, telemetry(time.monotonic() - self._epoch))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), INTERVAL_S)


BACKEND: Final = DemoBmsBackend
