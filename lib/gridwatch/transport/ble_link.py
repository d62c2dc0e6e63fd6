"""BLE link: bleak + bleak-retry-connector under the shared lifecycle.

Subscriptions are characteristic UUIDs (``subscribe(key=uuid)``): notifications
are turned on at every (re)connect and delivered as bytes. ``read()`` and
``write()`` are bounded by a timeout and fail at once when the link is down
or goes down while they wait.

Without an injected backend the link talks to BlueZ over D-Bus (on Linux);
a host without it gets one :class:`UnsupportedHostError`, which stops the
reconnect loop, instead of a traceback per retry. Tests and the demo inject a
bleak backend class (``backend=``) and need no radio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakError,
)
from bleak_retry_connector import establish_connection

from gridwatch.transport.ble_radio import RadioServiceCacheClient, host_radio_turn
from gridwatch.transport.ble_settings import BleSettings
from gridwatch.transport.errors import (
    ConnectError,
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    RequestError,
    RequestTimeout,
    TransportError,
    UnsupportedHostError,
)
from gridwatch.transport.link import CANCEL_GRACE_S, Link, Subscription

# The settings live in a pure module; callers may import them from here.
__all__ = [
    "DISCONNECT_TIMEOUT_S",
    "BleLink",
    "BleSettings",
    "device_not_seen",
    "translate_bleak_error",
]

T = TypeVar("T")

# bleak's own disconnect can stall on a wedged D-Bus; the connector uses 5 s
# for the same reason.
DISCONNECT_TIMEOUT_S = 5.0
# Errors that mean "this host has no usable Bluetooth stack" rather than "the
# device is not answering right now": no D-Bus socket, no bluetoothd, no
# adapter. Retrying cannot fix them.
_NO_STACK_DBUS_ERRORS = ("org.freedesktop.DBus.Error.ServiceUnknown",)
_CONNECT_FAILURES = (BleakError, OSError, EOFError, TimeoutError)

FindDevice = Callable[[str, float], Awaitable[BLEDevice | None]]


class BleLink(Link):
    """A link to one BLE device.

    Args:
        name: the link's name (logs, entity ids).
        settings: address, attempts and timeouts.
        backend: a bleak backend class (a ``BaseBleakClient`` subclass) to use
            instead of the platform's; no host check and no scan then.
        find_device: look a device up by (address, timeout); default: a bleak
            scan, or a bare BLEDevice when ``backend`` is given.
        **options: passed to :class:`Link` (backoff, health, clock, ...).
    """

    def __init__(
        self,
        name: str,
        settings: BleSettings,
        *,
        backend: type[BaseBleakClient] | None = None,
        find_device: FindDevice | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.settings = settings
        self._backend = backend
        self._find_device = find_device
        self._client: BleakClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Per connection: set when it goes away, so waiting requests fail.
        self._gone = asyncio.Event()
        self._gone_error: TransportError = ConnectionLost(f"link {name}: not connected")

    # ------------------------------------------------------------------
    # Lifecycle hooks

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        device = await self._device()
        kwargs: dict[str, Any] = {}
        if self._backend is not None:
            kwargs["backend"] = self._backend
        try:
            # The caching client, routed to the radio the device was found
            # through (an ESPHome proxy), else the host's own stack (one
            # connect at a time there).
            turn = host_radio_turn(device) if self._backend is None else contextlib.nullcontext()
            async with turn:
                client = await establish_connection(
                    RadioServiceCacheClient,
                    device,
                    self.name,
                    disconnected_callback=self._on_disconnected,
                    max_attempts=self.settings.connect_attempts,
                    **kwargs,
                )
        except _CONNECT_FAILURES as err:
            raise _translate(err, self.name, "connect") from err
        self._gone = asyncio.Event()
        self._client = client

    async def _close(self) -> None:
        # Forget the client first: the disconnect it reports is then stale.
        client, self._client = self._client, None
        if client is None:
            return
        if not self._gone.is_set():
            # Requests still waiting on this client fail as "closed" rather
            # than with whatever bleak says while it tears the link down.
            self._on_lost(LinkClosedError(f"link {self.name}: closed"))
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await client.disconnect()
        except _CONNECT_FAILURES as err:
            self._logger.debug("link %s: disconnect failed: %s", self.name, err)

    async def _send_subscribe(self, sub: Subscription) -> None:
        client = self._require_client()
        handler = functools.partial(self._on_notify, client, sub.key)
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                await client.start_notify(sub.key, handler)
        except _CONNECT_FAILURES as err:
            raise _translate(err, self.name, f"notify on {sub.key}") from err

    async def _send_unsubscribe(self, key: str) -> None:
        client = self._require_client()
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                await client.stop_notify(key)
        except _CONNECT_FAILURES as err:
            raise _translate(err, self.name, f"stop notify on {key}") from err

    async def _replay_subscriptions(self, subs: list[Subscription]) -> None:
        for sub in subs:
            try:
                await self._send_subscribe(sub)
            except RequestError as err:
                # The device has no such characteristic: reconnecting cannot
                # fix that, so it is reported and the rest still come up.
                self._logger.error("link %s: %s", self.name, err)

    def _on_lost(self, error: TransportError) -> None:
        self._gone_error = error
        self._gone.set()

    # ------------------------------------------------------------------
    # Public surface

    async def read(self, uuid: str, *, timeout: float | None = None) -> bytes:
        """Read a characteristic.

        Args:
            uuid: the characteristic's UUID.
            timeout: seconds (default ``settings.request_timeout_s``).

        Returns:
            The value read.

        Raises:
            NotConnectedError: the link is down.
            RequestTimeout: no answer in time.
            ConnectionLost: the connection went away while waiting.
            RequestError: the device refused or has no such characteristic.
        """
        data = await self._request(
            f"read {uuid}", lambda client: client.read_gatt_char(uuid), timeout
        )
        return bytes(data)

    async def write(
        self, uuid: str, data: bytes, *, response: bool = True, timeout: float | None = None
    ) -> None:
        """Write a characteristic.

        Args:
            uuid: the characteristic's UUID.
            data: the bytes to write.
            response: write with response (acknowledged by the device).
            timeout: seconds (default ``settings.request_timeout_s``).

        Raises:
            NotConnectedError, RequestTimeout, ConnectionLost, RequestError: as
                :meth:`read`.
        """
        await self._request(
            f"write {uuid}",
            lambda client: client.write_gatt_char(uuid, data, response=response),
            timeout,
        )

    # ------------------------------------------------------------------
    # Internals

    async def _device(self) -> BLEDevice:
        address = self.settings.address
        if self._find_device is None and self._backend is not None:
            return BLEDevice(address, None, details=None)
        find = self._find_device or _scan
        try:
            device = await find(address, self.settings.scan_timeout_s)
        except _CONNECT_FAILURES as err:
            raise _translate(err, self.name, "scan") from err
        if device is None:
            raise device_not_seen(self.name, address, self.settings.scan_timeout_s)
        return device

    def _require_client(self) -> BleakClient:
        if self._client is None:
            raise NotConnectedError(f"link {self.name}: not connected")
        return self._client

    async def _request(
        self,
        what: str,
        call: Callable[[BleakClient], Awaitable[T]],
        timeout: float | None,
    ) -> T:
        if not self.connected:
            raise NotConnectedError(f"link {self.name}: {what}: not connected")
        client = self._require_client()
        limit = self.settings.request_timeout_s if timeout is None else timeout
        gone = self._gone
        op = asyncio.ensure_future(call(client))
        lost = asyncio.ensure_future(gone.wait())
        try:
            done, _ = await asyncio.wait(
                {op, lost}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            op.cancel()
            op.add_done_callback(_retrieve)
            raise
        finally:
            lost.cancel()
        if op in done:
            try:
                return op.result()
            except _CONNECT_FAILURES as err:
                if not gone.is_set():
                    raise _translate(err, self.name, what) from err
                # It failed because the connection went: say so, below.
        await _settle(op)
        if gone.is_set():
            cause = self._gone_error
            kind = LinkClosedError if isinstance(cause, LinkClosedError) else ConnectionLost
            raise kind(f"link {self.name}: {what}: connection went away") from cause
        raise RequestTimeout(f"link {self.name}: {what}: no answer within {limit:g} s")

    def _on_notify(
        self, client: BleakClient, key: str, _char: BleakGATTCharacteristic, data: bytearray
    ) -> None:
        payload = bytes(data)
        if self._on_loop_thread():
            self._notify_on_loop(client, key, payload)
        elif self._loop is not None:
            self._hop(self._notify_on_loop, client, key, payload)

    def _notify_on_loop(self, client: BleakClient, key: str, payload: bytes) -> None:
        if client is not self._client:
            return  # from a connection already replaced or closed
        sub = self._subs.get(key)
        if sub is None:
            self._note_message()
            return
        self._deliver(sub, payload, key=key)

    def _on_disconnected(self, client: BleakClient) -> None:
        if self._on_loop_thread():
            self._disconnected_on_loop(client)
        elif self._loop is not None:
            self._hop(self._disconnected_on_loop, client)

    def _disconnected_on_loop(self, client: BleakClient) -> None:
        if client is not self._client:
            return  # a client we already closed, or one from a failed attempt
        self._connection_lost(f"BLE device {self.settings.address} disconnected")

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _hop(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the loop; called from a backend's own thread."""
        assert self._loop is not None
        # A closed loop (AppDaemon shutting down) has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)


async def _scan(address: str, timeout: float) -> BLEDevice | None:
    """Find the device with a bleak scan (this is where a host without BlueZ fails)."""
    device: BLEDevice | None = await BleakScanner.find_device_by_address(address, timeout=timeout)
    return device


def _translate(err: BaseException, link: str, what: str) -> TransportError:
    """The one place where bleak's (and D-Bus's) errors become the suite's."""
    if _no_bluetooth_stack(err):
        return UnsupportedHostError(
            f"link {link}: this host has no usable Bluetooth LE stack "
            f"({type(err).__name__}: {err or 'no detail'}). BLE needs BlueZ on a D-Bus "
            "system bus and a powered adapter. Without one (the Home Assistant add-on), "
            "reach the devices through ESPHome Bluetooth proxies: ble: {adapter: esphome, "
            "proxies: [{host: ...}]} in the app's entry; or remove this link from apps.yaml."
        )
    if isinstance(err, BleakCharacteristicNotFoundError):
        return RequestError(f"link {link}: {what}: the device has no such characteristic")
    detail = "timed out" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}"
    # A failure while setting the connection up (including notifications)
    # fails the connect, so the lifecycle retries it with backoff.
    if what in ("connect", "scan") or what.startswith(("notify", "stop notify")):
        return ConnectError(f"link {link}: {what} failed: {detail}")
    if isinstance(err, TimeoutError):
        return RequestTimeout(f"link {link}: {what}: {detail}")
    return RequestError(f"link {link}: {what} failed: {detail}")


# The device-profile and advertisement links share the translation.
translate_bleak_error = _translate


def device_not_seen(link: str, address: str, timeout_s: float) -> ConnectError:
    """A scan that ended without the device: retried, as it may come back in range."""
    return ConnectError(
        f"link {link}: BLE device {address} not seen within {timeout_s:g} s "
        "(out of range, off, or connected elsewhere)"
    )


def _no_bluetooth_stack(err: BaseException) -> bool:
    if isinstance(err, BleakBluetoothNotAvailableError):
        return True
    if isinstance(err, BleakDBusError):
        return err.dbus_error in _NO_STACK_DBUS_ERRORS
    # dbus-fast raises these straight from the socket: no system bus at all
    # (FileNotFoundError) or nobody listening on it (ConnectionRefusedError).
    return isinstance(err, FileNotFoundError | ConnectionRefusedError | PermissionError)


async def _settle(task: asyncio.Future[Any]) -> None:
    """Cancel an unfinished request and let it unwind briefly."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
