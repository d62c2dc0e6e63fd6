"""A simulated Renogy charge controller behind a BT-1/BT-2 module.

The module bridges Modbus RTU over BLE: a read request ``<id> 03 <register:2>
<count:2> <crc16:2 LE>`` written to ffd1 is answered on fff1 with ``<id> 03
<byte count> <data> <crc16:2>``, split into notifications. :data:`RECORDED`
holds a Rover 40 A controller's answers to the four reads renogy-ble makes,
from renogy-ble's own tests (with the values it decodes from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from tests.support.fake_bleak import DROP, FakePeripheral, Reply

RENOGY_NOTIFY: Final = "0000fff1-0000-1000-8000-00805f9b34fb"
RENOGY_WRITE: Final = "0000ffd1-0000-1000-8000-00805f9b34fb"
CHUNK: Final = 20

RECORDED: Final = {
    12: b"\xff\x03\x10  RNG-CTRL-RVR407$",
    26: b"\xff\x03\x02\x00\x10\x90\\",
    256: (
        b"\xff\x03D\x00d\x00\x90\x00\x04\x0e\x19\x00\x00\x00\x00\x00\x00\x00\xe8"
        b"\x00\x04\x00\x01\x00\x00\x00\x8f\x00\x91\x00\x11\x00\x00\x00\x01\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02+\x00\x01\x00\x00\x00\x00\x13|"
        b"\x00\x00\x00\x00\x00\x01\x01\x90\x00\x00\x00\x00\x00\x04\x00\x00\xa3\xd2"
    ),
    57348: b"\xff\x03\x02\x00\x04\x90S",
}
RECORDED_VALUES: Final = {
    "model": "RNG-CTRL-RVR",
    "battery_voltage": 14.4,
    "battery_percentage": 100,
    "charging_status": "boost",
    "battery_type": "lithium",
}


def crc16(data: bytes) -> bytes:
    """Modbus RTU CRC-16 (polynomial 0xA001), low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


@dataclass
class RenogySimulator:
    """Answers Modbus reads with the recorded frames.

    Attributes:
        silent: registers never answered.
        drop_mid_frame: registers answered half, then the connection drops.
        requests: every request received.
    """

    silent: set[int] = field(default_factory=set)
    drop_mid_frame: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    device: FakePeripheral | None = None

    def peripheral(
        self, address: str = "60:98:66:00:00:03", name: str = "BT-TH-66000003"
    ) -> FakePeripheral:
        self.device = FakePeripheral(
            address=address,
            name=name,
            characteristics=(RENOGY_NOTIFY, RENOGY_WRITE),
            responder=self.respond,
        )
        return self.device

    def respond(self, uuid: str, data: bytes) -> Sequence[Reply]:
        if uuid != RENOGY_WRITE or len(data) != 8 or crc16(data[:6]) != data[6:]:
            return []
        self.requests.append(data)
        register = int.from_bytes(data[2:4], "big")
        frame = RECORDED.get(register)
        if frame is None or register in self.silent:
            return []
        if register in self.drop_mid_frame:
            return [*_chunks(frame[: len(frame) // 2]), DROP]
        return _chunks(frame)


def _chunks(frame: bytes) -> list[Reply]:
    return [(RENOGY_NOTIFY, frame[i : i + CHUNK]) for i in range(0, len(frame), CHUNK)]
