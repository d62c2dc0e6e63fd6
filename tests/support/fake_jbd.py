"""A simulated JBD (Jiabaida / Xiaoxiang) BMS behind the scripted bleak backend.

It speaks the JBD smart-BMS protocol byte for byte: a read command
``DD A5 <reg> 00 <checksum:2> 77`` written to characteristic ff02 is answered
on ff01 with ``DD <reg> <status> <len> <data> <checksum:2> 77``, split into
notifications of at most MTU - 3 bytes (checksum: 0x10000 minus the byte sum
of status, length and data, big-endian). Register 0x03 is the basic info
(pack voltage 10 mV, current 10 mA signed, remaining and nominal capacity
10 mAh, cycles, date, balance bits, protection bits, software version, SoC %,
FET bits, cell count, NTC count, NTCs in 0.1 K), 0x04 the cell voltages (mV).

:data:`RECORDED` holds two answers recorded from a real 4-cell pack, taken
from aiobmsble's own test data (with the values its authors decoded from
them); :class:`JbdState` encodes live values for the demo. Faults are
switched on per simulator: a corrupt checksum, a short frame, another split,
a device that stops answering mid-frame or drops the connection there.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from tests.support.fake_bleak import DROP, FakePeripheral, Reply

JBD_SERVICE: Final = "0000ff00-0000-1000-8000-00805f9b34fb"
JBD_RX: Final = "0000ff01-0000-1000-8000-00805f9b34fb"  # notify
JBD_TX: Final = "0000ff02-0000-1000-8000-00805f9b34fb"  # write
BASIC_INFO: Final = 0x03
CELL_VOLTAGES: Final = 0x04
# The MTU-3 payload of a 23-byte ATT MTU: how a JBD module splits its answers.
CHUNK: Final = 20

# Recorded answers of a 4-cell LiFePO4 pack (aiobmsble tests/bms/test_jbd_bms.py).
RECORDED: Final = {
    BASIC_INFO: bytes.fromhex(
        "dd03001d0618fee101f201f4002a2c7c00000000000080640304030b8b0b8a0b84f88477"
    ),
    CELL_VOLTAGES: bytes.fromhex("dd0400080d660d610d680d59fe3c77"),
}
# What aiobmsble's authors decoded from RECORDED (same test file).
RECORDED_VALUES: Final = {
    "voltage": 15.6,
    "current": -2.87,
    "battery_level": 100,
    "cycle_charge": 4.98,
    "design_capacity": 5,
    "cycles": 42,
    "cell_voltages": [3.43, 3.425, 3.432, 3.417],
    "temp_values": [22.4, 22.3, 21.7],
    "delta_voltage": 0.015,
    "power": -44.772,
    "problem": False,
}


def checksum(body: bytes) -> bytes:
    """JBD's checksum over status, length and data."""
    return ((0x10000 - sum(body)) & 0xFFFF).to_bytes(2, "big")


def answer_frame(register: int, data: bytes, status: int = 0) -> bytes:
    body = bytes([status, len(data)]) + data
    return b"\xdd" + bytes([register]) + body + checksum(body) + b"\x77"


def read_command(register: int) -> bytes:
    body = bytes([register, 0])
    return b"\xdd\xa5" + body + checksum(body) + b"\x77"


@dataclass
class JbdState:
    """Live values of a simulated pack, encoded as a JBD BMS reports them."""

    cells_mv: list[int] = field(default_factory=lambda: [3300, 3302, 3298, 3301])
    pack_mv: int | None = None  # None: the sum of the cells
    current_ma: int = 0
    remaining_mah: int = 50000
    nominal_mah: int = 100000
    cycles: int = 17
    soc: int = 50
    temps_c: list[float] = field(default_factory=lambda: [24.0, 24.5])

    def basic_info(self) -> bytes:
        data = struct.pack(
            ">HhHHHHIHBBBBB",
            (sum(self.cells_mv) if self.pack_mv is None else self.pack_mv) // 10,
            self.current_ma // 10,
            self.remaining_mah // 10,
            self.nominal_mah // 10,
            self.cycles,
            0x2C7C,  # production date
            0,  # balance bits
            0,  # protection bits
            0x80,  # software version
            self.soc,
            0x03,  # charge and discharge FETs on
            len(self.cells_mv),
            len(self.temps_c),
        )
        data += b"".join(round(t * 10 + 2731).to_bytes(2, "big") for t in self.temps_c)
        return answer_frame(BASIC_INFO, data)

    def cell_voltages(self) -> bytes:
        return answer_frame(CELL_VOLTAGES, b"".join(mv.to_bytes(2, "big") for mv in self.cells_mv))


@dataclass
class JbdSimulator:
    """Answers JBD read commands; install with :meth:`peripheral`.

    Attributes:
        state: live values (None: replay :data:`RECORDED`).
        chunk: notification size the answers are split into.
        corrupt_checksum / short_frame: registers whose answer is spoiled so.
        silent: registers never answered.
        stop_mid_frame: registers answered only half (then silence).
        drop_mid_frame: registers answered half, then the connection drops.
        requests: every command received.
    """

    state: JbdState | None = None
    chunk: int = CHUNK
    corrupt_checksum: set[int] = field(default_factory=set)
    short_frame: set[int] = field(default_factory=set)
    silent: set[int] = field(default_factory=set)
    stop_mid_frame: set[int] = field(default_factory=set)
    drop_mid_frame: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    device: FakePeripheral | None = None  # the last peripheral made

    def peripheral(
        self, address: str = "A4:C1:37:00:00:01", name: str = "JBD-SP04S034"
    ) -> FakePeripheral:
        self.device = FakePeripheral(
            address=address,
            name=name,
            characteristics=(JBD_RX, JBD_TX),
            responder=self.respond,
        )
        return self.device

    def frame(self, register: int) -> bytes:
        if self.state is None:
            return RECORDED[register]
        return self.state.basic_info() if register == BASIC_INFO else self.state.cell_voltages()

    def respond(self, uuid: str, data: bytes) -> Sequence[Reply]:
        if uuid != JBD_TX:
            return []
        self.requests.append(data)
        register = _valid_read(data)
        if register is None or register not in (BASIC_INFO, CELL_VOLTAGES):
            return []  # a JBD ignores what it cannot parse
        if register in self.silent:
            return []
        frame = self.frame(register)
        if register in self.corrupt_checksum:
            frame = frame[:-3] + bytes([frame[-3] ^ 0xFF]) + frame[-2:]
        if register in self.short_frame:
            frame = frame[:-4] + frame[-1:]  # one data byte and checksum byte lost
        if register in self.stop_mid_frame:
            return self._chunks(frame[: len(frame) // 2])
        if register in self.drop_mid_frame:
            return [*self._chunks(frame[: len(frame) // 2]), DROP]
        return self._chunks(frame)

    def _chunks(self, frame: bytes) -> list[Reply]:
        return [(JBD_RX, frame[i : i + self.chunk]) for i in range(0, len(frame), self.chunk)]


def _valid_read(command: bytes) -> int | None:
    """The register a well-formed read command asks for, else None."""
    if len(command) != 7 or command[:2] != b"\xdd\xa5" or command[-1] != 0x77:
        return None
    if checksum(command[2:4]) != command[4:6]:
        return None
    return command[2]
