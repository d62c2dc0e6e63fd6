"""A simulated ESPHome Bluetooth proxy: the native API on a loopback port.

It speaks the plaintext native API the way an ESP32 running ESPHome's
``bluetooth_proxy`` does, using aioesphomeapi's own protobuf messages: frames
of ``0x00, varint length, varint message type, protobuf``. It answers the
hello, device info (with the proxy feature flags: passive scan, active
connections, raw advertisements), ping and disconnect; streams raw
advertisements (AD structures) of the devices it hears to a subscriber; and
proxies GATT for the peripherals it reaches: connect, service discovery,
notify, write, read, with the device's answers sent as notify data. A
peripheral is any :data:`~tests.support.fake_bleak.Responder` (the JBD
simulator's, for one), so the same device answers through a proxy as through
the scripted bleak backend.

:meth:`FakeEsphomeProxy.stop` and :meth:`start` again on the same port play a
proxy that reboots or drops off the network. With ``noise_psk`` the proxy
speaks the encrypted API instead (ESPHome's ``api: encryption: key:``): the
Noise_NNpsk0_25519_ChaChaPoly_SHA256 handshake with the prologue
``NoiseAPIInit\0\0``, then frames of ``0x01, length:2, encrypted(type:2,
length:2, protobuf)``; a client with another key gets "Handshake MAC failure".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioesphomeapi import api_pb2 as pb
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from noise.connection import NoiseConnection

from tests.support.fake_bleak import DROP, Responder

PROTO_TO_TYPE = {cls: number for number, cls in MESSAGE_TYPE_TO_PROTO.items()}
# What the simulated proxy can do (aioesphomeapi's BluetoothProxyFeature):
# passive scan 1 | active connections 2 | remote caching 4 (connections v3:
# the client enables notifications itself, through each CCCD) | raw
# advertisements 32.
FEATURES = 1 | 2 | 4 | 32
CCCD = "00002902-0000-1000-8000-00805f9b34fb"
_PROPS = {"read": 0x02, "write-without-response": 0x04, "write": 0x08, "notify": 0x10}


def mac_to_int(address: str) -> int:
    return int(address.replace(":", ""), 16)


def _uuid_words(uuid: str) -> list[int]:
    value = int(uuid.replace("-", ""), 16)
    return [value >> 64, value & ((1 << 64) - 1)]


def ad_structures(
    name: str | None = None,
    manufacturer: dict[int, bytes] | None = None,
    service_uuids16: Sequence[int] = (),
) -> bytes:
    """Advertising data as a radio receives it (Core spec Vol 3 Part C 11)."""
    out = bytearray(b"\x02\x01\x06")  # flags: LE general discoverable, no BR/EDR
    if service_uuids16:
        body = b"".join(u.to_bytes(2, "little") for u in service_uuids16)
        out += bytes([len(body) + 1, 0x03]) + body
    for company, data in (manufacturer or {}).items():
        body = company.to_bytes(2, "little") + data
        out += bytes([len(body) + 1, 0xFF]) + body
    if name:
        encoded = name.encode()
        out += bytes([len(encoded) + 1, 0x09]) + encoded
    return bytes(out)


@dataclass
class GattDevice:
    """A peripheral the proxy can connect to.

    Attributes:
        address: its Bluetooth address.
        characteristics: (uuid, properties) in handle order.
        responder: answers writes (as the scripted backend's peripherals do).
        values: what reads return, by uuid.
    """

    address: str
    service: str
    characteristics: Sequence[tuple[str, Sequence[str]]]
    responder: Responder | None = None
    values: dict[str, bytes] = field(default_factory=dict)

    def handles(self) -> dict[str, int]:
        """Characteristic value handles; each is followed by its CCCD's."""
        return {uuid: 3 + 3 * i for i, (uuid, _props) in enumerate(self.characteristics)}


@dataclass
class Heard:
    """A device the proxy hears advertising."""

    address: str
    rssi: int
    data: Callable[[], bytes]  # its advertising data, each time


class FakeEsphomeProxy:
    """One simulated proxy; ``start()`` binds 127.0.0.1 (port 0: a free one)."""

    def __init__(
        self,
        name: str = "proxy-a",
        mac: str = "AA:BB:CC:00:00:0A",
        *,
        heard: Sequence[Heard] = (),
        devices: Sequence[GattDevice] = (),
        slots: int = 3,
        advert_interval_s: float = 0.05,
        noise_psk: str | None = None,
    ) -> None:
        self.name, self.mac = name, mac
        self.noise_psk = noise_psk
        self.handshake_failures = 0
        self.heard = list(heard)
        self.devices = {mac_to_int(d.address): d for d in devices}
        self.slots = slots
        self.advert_interval_s = advert_interval_s
        self.port = 0
        self.received: list[str] = []  # message names, in order
        self.sessions = 0
        self.gatt_connects = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: set[_Session] = set()

    @property
    def open_connections(self) -> int:
        """GATT connections the proxy holds open right now (API sessions alive)."""
        return sum(len(session.connected) for session in self._sessions)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away: close the listener and every connection (a reboot, a lost Wi-Fi)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    # -- one API connection ------------------------------------------------------

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.sessions += 1
        framing: _Plain | _Noise = _Plain() if self.noise_psk is None else _Noise(self)
        state = _Session(self, writer, framing)
        self._sessions.add(state)
        try:
            if not await framing.handshake(reader, writer):
                return
            while True:
                msg_type, payload = await framing.read(reader)
                cls = MESSAGE_TYPE_TO_PROTO.get(msg_type)
                if cls is None:
                    continue
                message = cls()
                message.ParseFromString(payload)
                self.received.append(cls.__name__)
                if not await state.handle(message):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            state.close()
            self._sessions.discard(state)
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)


class _Session:
    def __init__(
        self, proxy: FakeEsphomeProxy, writer: asyncio.StreamWriter, framing: _Plain | _Noise
    ) -> None:
        self.proxy = proxy
        self.writer = writer
        self.framing = framing
        self.adverts: asyncio.Task[None] | None = None
        self.connected: set[int] = set()
        self.notifying: dict[int, set[int]] = {}

    def send(self, message: Any) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(
            self.framing.frame(PROTO_TO_TYPE[type(message)], message.SerializeToString())
        )

    def close(self) -> None:
        if self.adverts is not None:
            self.adverts.cancel()

    async def handle(self, message: Any) -> bool:
        proxy = self.proxy
        match message:
            case pb.HelloRequest():
                self.send(
                    pb.HelloResponse(
                        api_version_major=1,
                        api_version_minor=10,
                        server_info="gridwatch simulated proxy",
                        name=proxy.name,
                    )
                )
            case pb.AuthenticationRequest():
                pass  # no password: nothing to answer
            case pb.PingRequest():
                self.send(pb.PingResponse())
            case pb.DisconnectRequest():
                self.send(pb.DisconnectResponse())
                return False
            case pb.DeviceInfoRequest():
                self.send(
                    pb.DeviceInfoResponse(
                        name=proxy.name,
                        mac_address=proxy.mac,
                        bluetooth_mac_address=proxy.mac,
                        esphome_version="2025.1.0",
                        model="esp32dev",
                        bluetooth_proxy_feature_flags=FEATURES,
                    )
                )
            case pb.SubscribeBluetoothConnectionsFreeRequest():
                self._slots()
            case pb.SubscribeBluetoothLEAdvertisementsRequest():
                if self.adverts is None:
                    self.adverts = asyncio.get_running_loop().create_task(self._advertise())
            case pb.UnsubscribeBluetoothLEAdvertisementsRequest():
                if self.adverts is not None:
                    self.adverts.cancel()
                    self.adverts = None
            case pb.BluetoothDeviceRequest():
                self._device_request(message)
            case pb.BluetoothGATTGetServicesRequest():
                self._services(message.address)
            case pb.BluetoothGATTNotifyRequest():
                handles = self.notifying.setdefault(message.address, set())
                (handles.add if message.enable else handles.discard)(message.handle)
                self.send(
                    pb.BluetoothGATTNotifyResponse(address=message.address, handle=message.handle)
                )
            case pb.BluetoothGATTWriteRequest():
                await self._write(message)
            case pb.BluetoothGATTReadRequest():
                self._read(message)
            case pb.BluetoothGATTWriteDescriptorRequest():
                # A CCCD write turns notifications of its characteristic on or off.
                handles = self.notifying.setdefault(message.address, set())
                on = bytes(message.data)[:1] in (b"\x01", b"\x02")
                (handles.add if on else handles.discard)(message.handle - 1)
                self.send(
                    pb.BluetoothGATTWriteResponse(address=message.address, handle=message.handle)
                )
            case _:
                pass
        await self.writer.drain()
        return True

    def _slots(self) -> None:
        free = self.proxy.slots - len(self.connected)
        self.send(pb.BluetoothConnectionsFreeResponse(free=free, limit=self.proxy.slots))

    async def _advertise(self) -> None:
        while True:
            adverts = [
                pb.BluetoothLERawAdvertisement(
                    address=mac_to_int(h.address), rssi=h.rssi, address_type=0, data=h.data()
                )
                for h in self.proxy.heard
            ]
            if adverts:
                self.send(pb.BluetoothLERawAdvertisementsResponse(advertisements=adverts))
            await asyncio.sleep(self.proxy.advert_interval_s)

    def _device_request(self, message: Any) -> None:
        address = message.address
        device = self.proxy.devices.get(address)
        kind = message.request_type
        if kind == pb.BLUETOOTH_DEVICE_REQUEST_TYPE_DISCONNECT:
            self.connected.discard(address)
            self.notifying.pop(address, None)
            self.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=False))
            self._slots()
            return
        if device is None:
            # Not in reach: an ESP32 reports the connect as failed (error 0x3e:
            # connection failed to be established).
            self.send(
                pb.BluetoothDeviceConnectionResponse(address=address, connected=False, error=0x3E)
            )
            return
        self.proxy.gatt_connects += 1
        self.connected.add(address)
        self._slots()
        self.send(pb.BluetoothDeviceConnectionResponse(address=address, connected=True, mtu=23))

    def _services(self, address: int) -> None:
        device = self.proxy.devices[address]
        handles = device.handles()
        characteristics = [
            pb.BluetoothGATTCharacteristic(
                uuid=_uuid_words(uuid),
                handle=handles[uuid],
                properties=sum(_PROPS[p] for p in props),
                descriptors=[
                    pb.BluetoothGATTDescriptor(uuid=_uuid_words(CCCD), handle=handles[uuid] + 1)
                ]
                if "notify" in props
                else [],
            )
            for uuid, props in device.characteristics
        ]
        service = pb.BluetoothGATTService(
            uuid=_uuid_words(device.service), handle=1, characteristics=characteristics
        )
        self.send(pb.BluetoothGATTGetServicesResponse(address=address, services=[service]))
        self.send(pb.BluetoothGATTGetServicesDoneResponse(address=address))

    async def _write(self, message: Any) -> None:
        address = message.address
        device = self.proxy.devices[address]
        uuid = _uuid_of(device, message.handle)
        if message.response:
            self.send(pb.BluetoothGATTWriteResponse(address=address, handle=message.handle))
        if device.responder is None or uuid is None:
            return
        for step in device.responder(uuid, bytes(message.data)):
            await asyncio.sleep(0)
            if step == DROP:
                self.connected.discard(address)
                self.send(
                    pb.BluetoothDeviceConnectionResponse(
                        address=address, connected=False, error=0x13
                    )
                )
                self._slots()
                return
            assert isinstance(step, tuple)
            handle = device.handles().get(step[0])
            if handle is not None and handle in self.notifying.get(address, set()):
                self.send(
                    pb.BluetoothGATTNotifyDataResponse(address=address, handle=handle, data=step[1])
                )

    def _read(self, message: Any) -> None:
        device = self.proxy.devices[message.address]
        uuid = _uuid_of(device, message.handle)
        data = device.values.get(uuid or "", b"")
        self.send(
            pb.BluetoothGATTReadResponse(address=message.address, handle=message.handle, data=data)
        )


class _Plain:
    """Plaintext frames: 0x00, varint length, varint type, protobuf."""

    async def handshake(self, _reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> bool:
        return True

    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        return await _read_frame(reader)

    def frame(self, msg_type: int, body: bytes) -> bytes:
        return b"\x00" + _varint(len(body)) + _varint(msg_type) + body


class _Noise:
    """The encrypted API: a Noise NNpsk0 handshake, then ChaChaPoly frames."""

    def __init__(self, proxy: FakeEsphomeProxy) -> None:
        assert proxy.noise_psk is not None
        self.proxy = proxy
        self.proto = NoiseConnection.from_name(b"Noise_NNpsk0_25519_ChaChaPoly_SHA256")
        self.proto.set_as_responder()
        self.proto.set_psks(base64.b64decode(proxy.noise_psk))
        self.proto.set_prologue(b"NoiseAPIInit\x00\x00")
        self.proto.start_handshake()

    async def handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await _read_noise_frame(reader)  # the client's empty hello
        client = await _read_noise_frame(reader)
        proxy = self.proxy
        # Server hello: the protocol chosen (1: NNpsk0), the name and the MAC.
        writer.write(
            _noise_frame(b"\x01" + proxy.name.encode() + b"\0" + proxy.mac.encode() + b"\0")
        )
        try:
            self.proto.read_message(client[1:])
        except Exception:  # wrong key: ESPHome's own answer
            proxy.handshake_failures += 1
            writer.write(_noise_frame(b"\x01Handshake MAC failure"))
            await writer.drain()
            return False
        writer.write(_noise_frame(b"\x00" + self.proto.write_message()))
        await writer.drain()
        return True

    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        plain = self.proto.decrypt(await _read_noise_frame(reader))
        msg_type = int.from_bytes(plain[0:2], "big")
        length = int.from_bytes(plain[2:4], "big")
        return msg_type, plain[4 : 4 + length]

    def frame(self, msg_type: int, body: bytes) -> bytes:
        header = msg_type.to_bytes(2, "big") + len(body).to_bytes(2, "big")
        return _noise_frame(self.proto.encrypt(header + body))


def _noise_frame(payload: bytes) -> bytes:
    return b"\x01" + len(payload).to_bytes(2, "big") + payload


async def _read_noise_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(3)
    if header[0] != 0x01:
        raise ConnectionError("not an encrypted frame (the client speaks plaintext)")
    return await reader.readexactly(int.from_bytes(header[1:3], "big"))


def _uuid_of(device: GattDevice, handle: int) -> str | None:
    for uuid, known in device.handles().items():
        if known == handle:
            return uuid
    return None


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def _read_varint(reader: asyncio.StreamReader) -> int:
    result, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    indicator = (await reader.readexactly(1))[0]
    if indicator != 0:
        raise ConnectionError("not a plaintext frame (the simulated proxy has no encryption)")
    length = await _read_varint(reader)
    msg_type = await _read_varint(reader)
    return msg_type, await reader.readexactly(length)
