"""ESPHome Bluetooth proxies as the radio (bleak-esphome over aioesphomeapi).

AppDaemon as the Home Assistant add-on has no Bluetooth; its reach is the
ESPHome Bluetooth proxies in the house. :class:`EsphomeRadio` keeps one
native-API connection per proxy (aioesphomeapi's ReconnectLogic: reconnect
with backoff), registers each proxy's scanner with a habluetooth manager as
Home Assistant does (bleak-esphome's :func:`connect_scanner`), and offers:

- :meth:`EsphomeRadio.locate`: the device as the proxy that hears it best
  (RSSI) and has a free connection slot sees it, with that proxy's bleak
  backend in its details, so every BLE link (a device library's or the
  custom one) connects through it. A proxy that drops out unregisters its
  scanner: the next locate picks another (failover).
- :meth:`EsphomeRadio.advertisements`: an advertisement source for the
  shared scanner hub (passive links).

habluetooth's setup replaces ``bleak.BleakClient`` for the whole process (as
HA wants it); the radio puts bleak back at once: only the links it locates
go through the proxies. One radio per event loop and proxy list.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable
from typing import Any

from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from gridwatch.transport.ble_drivers import require_library
from gridwatch.transport.ble_radio import ProxiedDetails
from gridwatch.transport.ble_scanner import AdvertisementSource, Detection
from gridwatch.transport.ble_settings import BleRadioSettings, EsphomeProxy
from gridwatch.transport.errors import ConnectError

__all__ = ["EsphomeRadio", "shared_radio"]

_LOGGER = logging.getLogger(__name__)
# bleak-esphome, habluetooth and aioesphomeapi all support Python 3.11.
_PYTHON = (3, 11)
# How often locate() looks again for a device no proxy has heard yet.
_LOCATE_POLL_S = 0.2
# How long a passive link's scan start waits for a first proxy: below the
# shared hub's own start bound, so the error names the proxies.
_ADVERTISEMENTS_START_WAIT_S = 8.0
# Setting up habluetooth reads the host's adapters (none in an add-on);
# that must not hang a start.
_MANAGER_SETUP_TIMEOUT_S = 15.0


class _Proxy:
    """One proxy's native-API connection and its registered scanner."""

    def __init__(self, proxy: EsphomeProxy, manager: Any, logger: logging.Logger) -> None:
        self.proxy = proxy
        self._manager = manager
        self._log = logger
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        self.source: str | None = None
        self._cli: Any = None
        self._logic: Any = None
        self._teardown: list[Callable[[], None]] = []
        self._client_data: Any = None

    async def start(self) -> None:
        api = importlib.import_module("aioesphomeapi")
        self._cli = api.APIClient(
            address=self.proxy.host,
            port=self.proxy.port,
            password=None,
            noise_psk=self.proxy.noise_psk,
            client_info="gridwatch",
        )
        self._logic = api.ReconnectLogic(
            client=self._cli,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_connect_error=self._on_connect_error,
            name=self.proxy.host,
            zeroconf_wake=False,
        )
        await self._logic.start()

    async def stop(self) -> None:
        try:
            if self._logic is not None:
                await self._logic.stop()
        finally:
            self._end_session()
            if self._cli is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5.0):
                        await self._cli.disconnect()

    async def _on_connect(self) -> None:
        bleak_esphome = importlib.import_module("bleak_esphome")
        device_info = await self._cli.device_info()
        data = bleak_esphome.connect_scanner(self._cli, device_info, True)
        scanner = data.scanner
        self._teardown = [scanner.async_setup(), self._manager.async_register_scanner(scanner)]
        self._client_data = data
        self.source = scanner.source
        self.last_error = None
        self.connected.set()
        self._log.info("ESPHome proxy %s (%s) connected", self.proxy.name, device_info.name)

    async def _on_disconnect(self, expected: bool) -> None:
        if not expected:
            self._log.warning("ESPHome proxy %s disconnected", self.proxy.name)
            self.last_error = "disconnected"
        self._end_session()

    async def _on_connect_error(self, err: Exception) -> None:
        self.last_error = f"{type(err).__name__}: {err}"
        self._log.debug("ESPHome proxy %s: %s", self.proxy.name, self.last_error)

    def _end_session(self) -> None:
        self.connected.clear()
        data, self._client_data = self._client_data, None
        if data is not None:
            # The proxy's connections end with it: its clients are told, and
            # its connection slots close so nobody waits on them.
            with contextlib.suppress(Exception):
                data.bluetooth_device.async_set_unavailable()
            for callback in list(data.disconnect_callbacks):
                with contextlib.suppress(Exception):
                    callback()
            data.disconnect_callbacks.clear()
        teardown, self._teardown = self._teardown, []
        for undo in teardown:
            with contextlib.suppress(Exception):
                undo()


class EsphomeRadio:
    """Every configured proxy, as one radio."""

    def __init__(self, settings: BleRadioSettings, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self._log = logger or _LOGGER
        self._manager: Any = None
        self._proxies: list[_Proxy] = []
        self._started = False
        self._lock = asyncio.Lock()
        self._backends: dict[str, type[BaseBleakClient]] = {}

    @property
    def proxies(self) -> list[_Proxy]:
        return list(self._proxies)

    async def start(self, wait_s: float | None = None) -> None:
        """Connect to the proxies; returns once one answers.

        Args:
            wait_s: wait at most this long (and at most ``connect_timeout_s``),
                so the caller's own bound is not reached first and the error
                names the proxies.

        Raises:
            MissingLibraryError: bleak-esphome is not installed.
            ConnectError: no proxy answered in time.
        """
        async with self._lock:
            if not self._started:
                require_library("bleak_esphome", "bleak-esphome", _PYTHON, "esphome proxies")
                self._manager = await _manager()
                self._proxies = [_Proxy(p, self._manager, self._log) for p in self.settings.proxies]
                for proxy in self._proxies:
                    await proxy.start()
                self._started = True
        if any(p.connected.is_set() for p in self._proxies):
            return
        limit = self.settings.connect_timeout_s
        if wait_s is not None:
            limit = min(limit, wait_s)
        waits = [asyncio.ensure_future(p.connected.wait()) for p in self._proxies]
        try:
            done, _ = await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not done:
            detail = "; ".join(
                f"{p.proxy.name}: {p.last_error or 'no answer'}" for p in self._proxies
            )
            raise ConnectError(f"no ESPHome Bluetooth proxy answered within {limit:g} s ({detail})")

    async def stop(self) -> None:
        async with self._lock:
            proxies, self._proxies = self._proxies, []
            self._started = False
            for proxy in proxies:
                try:
                    await proxy.stop()
                except Exception as err:
                    self._log.debug("ESPHome proxy %s: stop failed: %r", proxy.proxy.name, err)

    def best(self, address: str) -> tuple[BLEDevice, AdvertisementData] | None:
        """The device as the best-placed proxy sees it, ready to connect through it."""
        if self._manager is None:
            return None
        candidates = []
        for seen in self._manager.async_scanner_devices_by_address(address.upper(), True):
            connector = getattr(seen.scanner, "connector", None)
            if connector is None or not connector.can_connect():
                continue
            candidates.append(seen)
        if not candidates:
            return None
        chosen = max(candidates, key=lambda seen: seen.advertisement.rssi)
        device = chosen.ble_device
        backend = self._backend_for(chosen.scanner.source, chosen.scanner.connector.client)
        details = ProxiedDetails(dict(device.details), backend)
        return BLEDevice(device.address, device.name, details=details), chosen.advertisement

    async def locate(
        self, address: str, timeout: float
    ) -> tuple[BLEDevice, AdvertisementData | None] | None:
        """Wait (bounded) until a proxy with a free slot hears ``address``."""
        await self.start(wait_s=timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.best(address)
            if found is not None:
                return found
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(_LOCATE_POLL_S)

    def advertisements(self, detection: Detection) -> AdvertisementSource:
        """An advertisement source over every proxy (for the shared hub)."""
        return _ProxyAdvertisements(self, detection)

    def _backend_for(self, source: str, factory: Any) -> type[BaseBleakClient]:
        """The proxy's bleak backend as a class (bleak takes a class, the
        connector holds a partial binding the proxy's session)."""
        cached = self._backends.get(source)
        if cached is not None and getattr(cached, "_factory", None) is factory:
            return cached
        base = factory.func
        bound = dict(factory.keywords)

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            base.__init__(self, *args, **{**bound, **kwargs})

        name = f"ESPHomeClientVia{source.replace(':', '')}"
        backend = type(name, (base,), {"__init__": init})
        backend._factory = factory  # type: ignore[attr-defined]
        self._backends[source] = backend
        return backend


class _ProxyAdvertisements:
    def __init__(self, radio: EsphomeRadio, detection: Detection) -> None:
        self._radio = radio
        self._detection = detection
        self._cancel: Callable[[], None] | None = None

    async def start(self) -> None:
        await self._radio.start(wait_s=_ADVERTISEMENTS_START_WAIT_S)
        manager = self._radio._manager
        self._cancel = manager.async_register_bleak_callback(self._detection, {})

    async def stop(self) -> None:
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()


async def _manager() -> Any:
    """The process's habluetooth manager (made once), bleak left as it was."""
    habluetooth = importlib.import_module("habluetooth")
    with contextlib.suppress(Exception):
        manager = habluetooth.get_manager()
        if manager is not None:
            return manager
    manager = _manager_class(habluetooth.BluetoothManager)()
    habluetooth.set_manager(manager)
    try:
        async with asyncio.timeout(_MANAGER_SETUP_TIMEOUT_S):
            await manager.async_setup()
    finally:
        # Home Assistant wants every BleakClient to be habluetooth's; here
        # only the links the radio locates go through it.
        importlib.import_module("habluetooth.usage").uninstall_multiple_bleak_catcher()
    return manager


def _manager_class(base: type[Any]) -> type[Any]:
    """habluetooth's manager wants a subclass that consumes discoveries; the
    links read the manager's history and callbacks instead."""

    def _discover_service_info(self: Any, service_info: Any) -> None:
        return None

    return type(
        "GridwatchBluetoothManager", (base,), {"_discover_service_info": _discover_service_info}
    )


_RADIOS: dict[tuple[int, BleRadioSettings], EsphomeRadio] = {}


def shared_radio(settings: BleRadioSettings, logger: logging.Logger | None = None) -> EsphomeRadio:
    """The radio of this event loop for these proxies (one per process)."""
    key = (id(asyncio.get_running_loop()), settings)
    radio = _RADIOS.get(key)
    if radio is None:
        radio = _RADIOS[key] = EsphomeRadio(settings, logger)
    return radio
