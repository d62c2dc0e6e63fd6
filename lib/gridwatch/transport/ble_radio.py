"""Which radio a device library's BLE client talks through.

The device libraries (aiobmsble, renogy-ble) build their own bleak clients
and take no backend argument. Home Assistant solves the same problem by
replacing ``bleak.BleakClient`` for the whole process (habluetooth); here
only the libraries the suite drives get a client class that reads the radio
from the :class:`BLEDevice` it is given: a device found through a simulated
backend or an ESPHome proxy carries a :class:`RadioDetails` naming the bleak
backend to use; any other device goes to the host's own stack, exactly as
plain bleak would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak_retry_connector import BleakClientWithServiceCache

__all__ = [
    "ProxiedDetails",
    "RadioBleakClient",
    "RadioDetails",
    "RadioServiceCacheClient",
    "backend_of",
    "host_radio_turn",
    "route_library",
]


@dataclass(frozen=True)
class RadioDetails:
    """``BLEDevice.details`` of a device reached through a non-host radio.

    Attributes:
        backend: the bleak backend class that reaches it.
        source: which radio saw it (a proxy's name, ``simulated`` ...).
    """

    backend: type[BaseBleakClient]
    source: str = "simulated"


def radio_device(address: str, name: str | None, details: RadioDetails) -> BLEDevice:
    """A device reached through ``details``' radio."""
    return BLEDevice(address, name, details=details)


class ProxiedDetails(dict[str, Any]):
    """``BLEDevice.details`` of a device seen by an ESPHome proxy: the dict the
    proxy's bleak backend reads (source, address_type), plus that backend."""

    def __init__(self, details: dict[str, Any], backend: type[BaseBleakClient]) -> None:
        super().__init__(details)
        self.radio_backend = backend


def backend_of(device: object) -> type[BaseBleakClient] | None:
    """The bleak backend a device's radio needs (None: the host's own)."""
    if not isinstance(device, BLEDevice):
        return None
    details = device.details
    if isinstance(details, RadioDetails):
        return details.backend
    if isinstance(details, ProxiedDetails):
        return details.radio_backend
    return None


def _with_radio(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    device = args[0] if args else kwargs.get("address_or_ble_device")
    if kwargs.get("backend") is None:
        backend = backend_of(device)
        if backend is not None:
            kwargs["backend"] = backend
    return kwargs


class RadioBleakClient(BleakClient):
    """A ``BleakClient`` that uses the radio a :class:`RadioDetails` device names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_with_radio(args, kwargs))


class RadioServiceCacheClient(BleakClientWithServiceCache):
    """bleak-retry-connector's caching client, routed like :class:`RadioBleakClient`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_with_radio(args, kwargs))


# One connect at a time on the host's adapter, per event loop: BlueZ runs one
# LE connection attempt at a time and answers a second with "InProgress".
_HOST_TURNS: dict[int, asyncio.Lock] = {}


@contextlib.asynccontextmanager
async def host_radio_turn(device: BLEDevice | None) -> AsyncIterator[None]:
    """Hold the host adapter while connecting to (or polling) ``device``.

    A device behind another radio (an ESPHome proxy, a simulated backend)
    does not queue: a proxy has its own connection slots. The caller bounds
    the wait (its connect or request timeout).
    """
    if device is not None and backend_of(device) is not None:
        yield
        return
    loop = asyncio.get_running_loop()
    for key in [k for k, lock in _HOST_TURNS.items() if k != id(loop) and not lock.locked()]:
        del _HOST_TURNS[key]  # locks of loops gone (tests, an AppDaemon restart)
    lock = _HOST_TURNS.setdefault(id(loop), asyncio.Lock())
    async with lock:
        yield


def route_library(module: ModuleType) -> None:
    """Make a device library module build its clients through the radio classes.

    Only names the module already binds are replaced, so a library that
    changes how it imports bleak is left as it is (and still works on the
    host's own adapter).
    """
    replacements = {
        "BleakClient": RadioBleakClient,
        "BleakClientWithServiceCache": RadioServiceCacheClient,
    }
    for name, cls in replacements.items():
        current = getattr(module, name, None)
        if isinstance(current, type) and issubclass(cls, current):
            setattr(module, name, cls)
