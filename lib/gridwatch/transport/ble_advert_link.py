"""A passive BLE link: a device that only advertises (Victron Instant Readout).

No connection is ever made. The link watches its address through the
process's one shared scanner (:mod:`gridwatch.transport.ble_scanner`),
decodes each advertisement with the profile's decoder and delivers the
readings on :data:`~gridwatch.transport.ble_settings.DEVICE_KEY`. "Connected"
means heard: the link comes up with the first readable advertisement and
goes down when none arrived for ``advertisement_timeout_s`` (then the
lifecycle waits for the next one with its usual backoff). An advertisement
it cannot read (a wrong key) is counted and named in ``last_error``; it
never drops the link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from gridwatch.transport.ble_device_link import publish_sample
from gridwatch.transport.ble_drivers import AdvertisementDecoder
from gridwatch.transport.ble_link import translate_bleak_error
from gridwatch.transport.ble_scanner import AdvertisementHub
from gridwatch.transport.ble_settings import BleSettings
from gridwatch.transport.errors import AuthError, ConnectError, PayloadError
from gridwatch.transport.link import Link, cancel_and_wait

__all__ = ["BleAdvertLink"]

# How often the link checks the time since the last advertisement: the
# timeout is minutes, so a few seconds' lateness in noticing is nothing.
SILENCE_CHECK_S = 5.0


class BleAdvertLink(Link):
    """An advertisement-only BLE device.

    Args:
        name: the link's name.
        settings: address, advertisement timeout, scan timeout.
        hub: gives the process's shared scanner (called on the loop, at connect).
        decode: advertisement -> readings (None: no readout in it).
        **options: passed to :class:`Link`.
    """

    def __init__(
        self,
        name: str,
        settings: BleSettings,
        *,
        hub: Callable[[], AdvertisementHub],
        decode: AdvertisementDecoder,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.settings = settings
        self._get_hub = hub
        self._hub: AdvertisementHub | None = None
        self._decode = decode
        self._heard = asyncio.Event()
        self._last_heard: float | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._watching = False
        self.undecodable = 0  # advertisements that could not be read
        self._first: dict[str, Any] | None = None  # heard while connecting
        self._problem: PayloadError | None = None  # why the last one was unreadable

    async def _open(self) -> None:
        self._heard = asyncio.Event()
        self._hub = self._get_hub()
        try:
            await self._hub.watch(self.settings.address, self._on_advertisement)
        except Exception as err:
            raise translate_bleak_error(err, self.name, "scan") from err
        self._watching = True
        try:
            async with asyncio.timeout(self.settings.scan_timeout_s):
                await self._heard.wait()
        except TimeoutError as err:
            heard = f"no readable advertisement from {self.settings.address} within " + (
                f"{self.settings.scan_timeout_s:g} s"
            )
            problem = self._problem
            if problem is not None and problem.kind == "wrong_key":
                # Retrying cannot fix a wrong key: stop, and say what to change.
                raise AuthError(
                    f"link {self.name}: {heard}: {problem.detail}; copy the key from "
                    "VictronConnect (Product info > Instant readout details)"
                ) from err
            detail = f" (the last one: {problem.detail})" if problem is not None else ""
            raise ConnectError(f"link {self.name}: {heard}{detail}") from err
        self._watcher = asyncio.create_task(
            self._watch_silence(), name=f"link-{self.name}-advert-watch"
        )

    async def _close(self) -> None:
        watcher, self._watcher = self._watcher, None
        await cancel_and_wait(watcher)
        if self._watching and self._hub is not None:
            self._watching = False
            await self._hub.unwatch(self.settings.address, self._on_advertisement)

    def _on_advertisement(self, _device: BLEDevice, advertisement: AdvertisementData) -> None:
        try:
            readings = self._decode(advertisement)
        except PayloadError as err:
            self.undecodable += 1
            self._problem = err
            if self.undecodable == 1 or err.kind == "wrong_key":
                self._health.problem(f"advertisement not readable: {err.detail}")
            return
        except Exception as err:  # a library bug must not stop the scanner's callback
            self.undecodable += 1
            self._health.problem(f"advertisement not readable: {type(err).__name__}: {err}")
            return
        if readings is None:
            return
        self._problem = None
        self._last_heard = self._clock()
        self._heard.set()
        if not self.connected:
            self._first = readings  # delivered once the connect completes
            return
        self._publish(readings)

    def _publish(self, readings: dict[str, Any]) -> None:
        publish_sample(self, readings)

    async def _watch_silence(self) -> None:
        timeout = self.settings.advertisement_timeout_s
        await self._connected.wait()
        first, self._first = self._first, None
        if first is not None:
            self._publish(first)
        while True:
            await asyncio.sleep(min(SILENCE_CHECK_S, timeout / 4))
            heard = self._last_heard
            if heard is not None and self._clock() - heard > timeout:
                self._connection_lost(f"no advertisement for {timeout:g} s")
                return
