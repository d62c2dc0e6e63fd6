"""One advertisement scanner per process, shared by every link that listens.

A radio can run one scan at a time: links that each started their own
BleakScanner would fight over the adapter (BlueZ answers "InProgress").
:func:`shared_hub` gives every passive link of one event loop the same
:class:`AdvertisementHub`; it starts the scanner when the first link watches
an address and stops it when the last one leaves. Advertisements reach the
watchers of their address on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

__all__ = ["AdvertisementHub", "AdvertisementSource", "Detection", "shared_hub"]

_LOGGER = logging.getLogger(__name__)

Detection = Callable[[BLEDevice, AdvertisementData], None]
# Starting or stopping a scan that BlueZ (or a proxy) has wedged must not
# hang a connect or a shutdown.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class AdvertisementSource(Protocol):
    """A scanner: BleakScanner, or a simulated advertiser."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SourceFactory = Callable[[Detection], AdvertisementSource]


def bleak_source(detection: Detection) -> AdvertisementSource:
    """The host's radio (passive where BlueZ allows it is not assumed: active scan)."""
    return BleakScanner(detection_callback=detection)


class AdvertisementHub:
    """Fans one scanner's advertisements out to the links watching each address."""

    def __init__(self, factory: SourceFactory = bleak_source) -> None:
        self._factory = factory
        self._watchers: dict[str, set[Detection]] = {}
        self._source: AdvertisementSource | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._source is not None

    def watching(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    async def watch(self, address: str, callback: Detection) -> None:
        """Deliver ``address``'s advertisements to ``callback``; starts the scan.

        Raises:
            Whatever the scanner's start raises (the caller translates it).
        """
        async with self._lock:
            self._watchers.setdefault(address.upper(), set()).add(callback)
            if self._source is None:
                source = self._factory(self._detected)
                try:
                    async with asyncio.timeout(START_TIMEOUT_S):
                        await source.start()
                except BaseException:
                    self._forget(address, callback)
                    await _stop_quietly(source)  # a start cut short may have begun
                    raise
                self._source = source

    async def unwatch(self, address: str, callback: Detection) -> None:
        """Stop delivering to ``callback``; the last one out stops the scan."""
        async with self._lock:
            self._forget(address, callback)
            if self._watchers or self._source is None:
                return
            source, self._source = self._source, None
            await _stop_quietly(source)

    def _forget(self, address: str, callback: Detection) -> None:
        key = address.upper()
        watchers = self._watchers.get(key)
        if watchers is not None:
            watchers.discard(callback)
            if not watchers:
                del self._watchers[key]

    def _detected(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        for callback in list(self._watchers.get(device.address.upper(), ())):
            try:
                callback(device, advertisement)
            except Exception:
                _LOGGER.exception("BLE advertisement watcher of %s raised", device.address)


async def _stop_quietly(source: AdvertisementSource) -> None:
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await source.stop()
    except Exception as err:  # a scanner that fails to stop is gone anyway
        _LOGGER.debug("stopping the BLE scan failed: %r", err)


_HUBS: dict[tuple[int, Any], AdvertisementHub] = {}


def shared_hub(factory: SourceFactory = bleak_source) -> AdvertisementHub:
    """The hub of this event loop and scanner kind (one scanner per process)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), factory)
    hub = _HUBS.get(key)
    if hub is None:
        # Hubs of closed loops (tests, an AppDaemon restart) are dropped here.
        for stale in [k for k, h in _HUBS.items() if not h.running and k != key]:
            with contextlib.suppress(KeyError):
                del _HUBS[stale]
        hub = _HUBS[key] = AdvertisementHub(factory)
    return hub
