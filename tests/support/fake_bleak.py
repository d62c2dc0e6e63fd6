"""A scripted fake bleak backend: a BLE peripheral without a radio.

CI (and this machine) has no Bluetooth, so BLE tests plug this backend into
the real bleak front end: ``BleakClient(device, backend=peripheral.backend)``.
Each ``connect()`` replays the next scripted :class:`Outcome` (ok, raise a
BleakError, hang until cancelled, ok then drop after N notifications); the
peripheral serves reads, records writes, pushes notifications and can drop
the connection as a device walking out of range would.

Importable without pytest (a demo simulator uses it); the ``fake_ble``
fixture is only defined when pytest is present.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str

# A made-up vendor service with the characteristics a BLE battery or inverter
# typically offers: a notifying telemetry stream, a readable status, a
# writable command.
SERVICE_UUID = "0000ff00-0000-1000-8000-00805f9b34fb"
TELEMETRY_UUID = "0000ff01-0000-1000-8000-00805f9b34fb"
STATUS_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"
COMMAND_UUID = "0000ff03-0000-1000-8000-00805f9b34fb"
DEFAULT_CHARACTERISTICS = (TELEMETRY_UUID, STATUS_UUID, COMMAND_UUID)
# BLE 4.0's minimum ATT MTU, what BlueZ reports too.
DEFAULT_MTU = 23
# A reply step that drops the connection (the device walked away mid-answer).
DROP: Final = "drop"
# One step of a device's answer to a write: a notification (uuid, bytes), or DROP.
Reply = tuple[str, bytes] | str
Responder = Callable[[str, bytes], Sequence[Reply]]


@dataclass(frozen=True)
class Outcome:
    """What one ``connect()`` does.

    Attributes:
        kind: ``ok``, ``fail`` (raise ``error``) or ``hang`` (until cancelled).
        error: the exception a ``fail`` raises.
        drop_after: for ``ok``: drop the connection after this many
            notifications were delivered (None: stay up).
    """

    kind: str
    error: BaseException | None = None
    drop_after: int | None = None

    @staticmethod
    def ok() -> Outcome:
        return Outcome("ok")

    @staticmethod
    def fail(error: BaseException | None = None) -> Outcome:
        return Outcome("fail", error or BleakError("fake: device refused the connection"))

    @staticmethod
    def hang() -> Outcome:
        return Outcome("hang")

    @staticmethod
    def ok_then_drop(after_notifications: int) -> Outcome:
        return Outcome("ok", drop_after=after_notifications)


@dataclass
class FakePeripheral:
    """The scripted device behind every client its :attr:`backend` creates.

    Attributes:
        address: the device address the clients report.
        characteristics: UUIDs of the characteristics it offers (read, write,
            notify on each).
        outcomes: scripted connect outcomes, consumed in order.
        default: the outcome once the script is used up.
        values: what a read of each characteristic returns.
        writes: every write as (uuid, data, with_response).
        stalled: characteristics whose reads and writes never answer (they fail
            only when the connection goes away).
        refused_notify: characteristics whose start_notify fails (BleakError).
        connect_calls / disconnect_calls: counted in the coroutines' bodies, so
            they only count calls that were actually awaited.
        responder: a request/response device: called with every write
            (uuid, data); its replies are sent after the write completes,
            one notification per loop turn, as a radio delivers them.
    """

    address: str = "AA:BB:CC:DD:EE:01"
    name: str = "fake-battery"
    characteristics: tuple[str, ...] = DEFAULT_CHARACTERISTICS
    outcomes: deque[Outcome] = field(default_factory=deque)
    default: Outcome = field(default_factory=Outcome.ok)
    values: dict[str, bytes] = field(default_factory=dict)
    writes: list[tuple[str, bytes, bool]] = field(default_factory=list)
    stalled: set[str] = field(default_factory=set)
    refused_notify: set[str] = field(default_factory=set)
    connect_calls: int = 0
    disconnect_calls: int = 0
    clients: list[FakeBleakBackend] = field(default_factory=list)
    responder: Responder | None = None

    def __post_init__(self) -> None:
        self.characteristics = tuple(normalize_uuid_str(u) for u in self.characteristics)
        self._hanging = 0
        # A backend class bound to this peripheral: bleak instantiates the
        # backend itself, so the binding must live on the class.
        self.backend: type[FakeBleakBackend] = type(
            "BoundFakeBleakBackend", (FakeBleakBackend,), {"peripheral": self}
        )

    # Script ---------------------------------------------------------------

    def script(self, *outcomes: Outcome) -> None:
        """Queue connect outcomes."""
        self.outcomes.extend(outcomes)

    def next_outcome(self) -> Outcome:
        return self.outcomes.popleft() if self.outcomes else self.default

    def device(self) -> BLEDevice:
        """A BLEDevice for this peripheral (no BlueZ path: nothing asks D-Bus)."""
        return BLEDevice(self.address, self.name, details=None)

    def advertisement(self, rssi: int = -60) -> AdvertisementData:
        """What the device advertises: its name and its vendor service."""
        service = SERVICE_UUID
        return AdvertisementData(
            local_name=self.name,
            manufacturer_data={},
            service_data={},
            service_uuids=[service],
            tx_power=None,
            rssi=rssi,
            platform_data=(),
        )

    def set_value(self, uuid: str, value: bytes) -> None:
        self.values[normalize_uuid_str(uuid)] = value

    def stall(self, uuid: str) -> None:
        self.stalled.add(normalize_uuid_str(uuid))

    def refuse_notify(self, uuid: str) -> None:
        self.refused_notify.add(normalize_uuid_str(uuid))

    # Live connection ------------------------------------------------------

    @property
    def active(self) -> FakeBleakBackend | None:
        """The connected client, if any."""
        for client in reversed(self.clients):
            if client.is_connected:
                return client
        return None

    @property
    def hanging(self) -> bool:
        """True while a connect() is parked on a ``hang`` outcome."""
        return self._hanging > 0

    def subscribed(self) -> set[str]:
        """UUIDs with notifications on in the active connection."""
        client = self.active
        return set() if client is None else client.notifying

    def notify(self, uuid: str, data: bytes) -> bool:
        """Send a notification from the device. Call on the loop thread, or
        from another thread to act like a backend with its own thread.

        Returns:
            True if a subscribed client received it.
        """
        client = self.active
        return False if client is None else client.push(normalize_uuid_str(uuid), data)

    def drop(self) -> bool:
        """Drop the active connection unexpectedly (the device went away).

        Returns:
            True if there was a connection to drop.
        """
        client = self.active
        if client is None:
            return False
        client.lose_connection()
        return True


class FakeBleakBackend(BaseBleakClient):
    """A bleak backend (BaseBleakClient) driven by a :class:`FakePeripheral`.

    Use :attr:`FakePeripheral.backend` (a subclass bound to the peripheral),
    never this class directly.
    """

    peripheral: FakePeripheral

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self.kwargs = kwargs  # bleak and the connector pass extras (services, bluez, ...)
        self._connected = False
        self._notify: dict[str, NotifyCallback] = {}
        self._gone: asyncio.Event | None = None
        self._drop_after: int | None = None
        self._delivered = 0
        self._replies: set[asyncio.Task[None]] = set()
        # Only live clients are kept, so a long demo run does not grow a list.
        live = [c for c in self.peripheral.clients if c.is_connected]
        self.peripheral.clients = [*live, self]

    @classmethod
    def advertisement(cls) -> AdvertisementData:
        """The bound peripheral's advertisement (the radio's scan of it)."""
        return cls.peripheral.advertisement()

    @property
    def name(self) -> str:
        return self.peripheral.name

    @property
    def mtu_size(self) -> int:
        return DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def notifying(self) -> set[str]:
        return set(self._notify)

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        self.peripheral.connect_calls += 1
        outcome = self.peripheral.next_outcome()
        if outcome.kind == "fail":
            assert outcome.error is not None
            raise outcome.error
        if outcome.kind == "hang":
            self.peripheral._hanging += 1
            try:
                await asyncio.Event().wait()
            finally:
                self.peripheral._hanging -= 1
        self._connected = True
        self._gone = asyncio.Event()
        self._drop_after = outcome.drop_after
        self._delivered = 0
        self.services = _services(self.peripheral.characteristics)

    async def disconnect(self) -> None:
        self.peripheral.disconnect_calls += 1
        # A requested disconnect does not call the disconnected callback:
        # bleak documents it for unsolicited disconnects only.
        self._set_disconnected()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    async def read_gatt_char(
        self,
        characteristic: BleakGATTCharacteristic,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        await self._answer(characteristic.uuid)
        return bytearray(self.peripheral.values.get(characteristic.uuid, b""))

    async def read_gatt_descriptor(
        self,
        descriptor: BleakGATTDescriptor,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        raise BleakError("fake: no descriptors")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await self._answer(characteristic.uuid)
        self.peripheral.writes.append((characteristic.uuid, bytes(data), response))
        responder = self.peripheral.responder
        if responder is not None:
            replies = responder(characteristic.uuid, bytes(data))
            if replies:
                task = asyncio.get_running_loop().create_task(self._reply(replies))
                self._replies.add(task)
                task.add_done_callback(self._replies.discard)

    async def _reply(self, replies: Sequence[Reply]) -> None:
        for step in replies:
            await asyncio.sleep(0)  # after the write returns, one per loop turn
            if not self._connected:
                return
            if step == DROP:
                self.lose_connection()
                return
            assert isinstance(step, tuple)
            self.push(normalize_uuid_str(step[0]), step[1])

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        raise BleakError("fake: no descriptors")

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,
    ) -> None:
        self._require_connected()
        if characteristic.uuid in self.peripheral.refused_notify:
            raise BleakError("fake: [org.bluez.Error.Failed] Operation failed")
        self._notify[characteristic.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connected()
        self._notify.pop(characteristic.uuid, None)

    # Driven by the peripheral -------------------------------------------

    def push(self, uuid: str, data: bytes) -> bool:
        callback = self._notify.get(uuid)
        if callback is None or not self._connected:
            return False
        callback(bytearray(data))
        self._delivered += 1
        if self._drop_after is not None and self._delivered >= self._drop_after:
            self.lose_connection()
        return True

    def lose_connection(self) -> None:
        self._set_disconnected()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    def _set_disconnected(self) -> None:
        self._connected = False
        self._notify.clear()
        for task in self._replies:
            if task is not asyncio.current_task():
                task.cancel()
        if self._gone is not None:
            self._gone.set()

    def _require_connected(self) -> None:
        if not self._connected:
            raise BleakError("fake: not connected")

    async def _answer(self, uuid: str) -> None:
        """Fail when not connected; park a stalled request until the link goes."""
        self._require_connected()
        if uuid in self.peripheral.stalled and self._gone is not None:
            await self._gone.wait()
            raise BleakError("fake: disconnected during request")


def _services(uuids: Iterable[str]) -> BleakGATTServiceCollection:
    services = BleakGATTServiceCollection()
    service = BleakGATTService(None, 1, SERVICE_UUID)
    services.add_service(service)
    for handle, uuid in zip(_handles(), uuids, strict=False):
        services.add_characteristic(
            BleakGATTCharacteristic(
                None,
                handle,
                uuid,
                ["read", "write", "write-without-response", "notify"],
                lambda: DEFAULT_MTU - 3,
                service,
            )
        )
    return services


def _handles() -> Iterator[int]:
    handle = 2
    while True:
        yield handle
        handle += 2  # leave room for each characteristic's value handle


try:
    import pytest
except ImportError:  # the demo simulator runs without pytest installed
    pass
else:

    @pytest.fixture
    def fake_ble() -> FakePeripheral:
        """A fresh scripted BLE peripheral per test; connects succeed by default."""
        return FakePeripheral()
