"""A BLE link that reads a device through its library (a device profile).

Request/response devices (BMSs, charge controllers) answer only when asked:
the link asks through a :class:`~gridwatch.transport.ble_drivers.DeviceDriver`
once at connect (so a device that does not answer fails the connect and the
lifecycle retries it with backoff) and then every ``poll_interval_s``. Each
answer, the library's whole sample, is delivered on
:data:`~gridwatch.transport.ble_settings.DEVICE_KEY`. ``failures_before_offline``
failed polls in a row drop the connection (the driver disconnects, the
lifecycle reconnects). Every call into the library is bounded by
``request_timeout_s`` and its errors are translated in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from gridwatch.transport.ble_drivers import DeviceDriver, translate_device_error
from gridwatch.transport.ble_link import device_not_seen, translate_bleak_error
from gridwatch.transport.ble_radio import host_radio_turn
from gridwatch.transport.ble_settings import DEVICE_KEY, BleSettings
from gridwatch.transport.errors import ConnectError, TransportError, UnsupportedHostError
from gridwatch.transport.link import CLOSE_TIMEOUT_S, Link, cancel_and_wait

__all__ = ["BleDeviceLink", "DriverFactory", "Locate", "publish_sample"]

_LOGGER = logging.getLogger(__name__)

# Where the device is: (BLEDevice, its last advertisement or None), or None
# when it was not seen within the timeout.
Locate = Callable[[str, float], Awaitable[tuple[BLEDevice, AdvertisementData | None] | None]]
# Builds the driver for a located device (imports the library: may raise
# MissingLibraryError).
DriverFactory = Callable[[BLEDevice, AdvertisementData | None], Awaitable[DeviceDriver]]


def publish_sample(link: Link, sample: dict[str, Any]) -> None:
    """Deliver a device's whole sample on :data:`DEVICE_KEY` (or count it as
    proof of life when nothing subscribed). Call on the loop thread."""
    sub = link.subscriptions.get(DEVICE_KEY)
    if sub is None:
        link._note_message()
    else:
        link._deliver(sub, sample)


class BleDeviceLink(Link):
    """A polled BLE device read through its library.

    Args:
        name: the link's name.
        settings: address, profile, poll interval, timeouts.
        locate: finds the device (the shared scanner, or a simulated radio).
        make_driver: builds the library's driver for the found device.
        **options: passed to :class:`Link`.
    """

    def __init__(
        self,
        name: str,
        settings: BleSettings,
        *,
        locate: Locate,
        make_driver: DriverFactory,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.settings = settings
        self._locate = locate
        self._make_driver = make_driver
        self._driver: DeviceDriver | None = None
        self._device: BLEDevice | None = None
        self._poller: asyncio.Task[None] | None = None
        self._failed_polls = 0
        self.polls = 0  # answered polls, for tests and figures

    @property
    def failed_polls(self) -> int:
        """Failed polls in a row."""
        return self._failed_polls

    async def _open(self) -> None:
        found = await self._find()
        device, advertisement = found
        self._device = device
        try:
            self._driver = await self._make_driver(device, advertisement)
        except TransportError:
            raise
        except Exception as err:
            raise translate_device_error(err, self.name, "set up the device") from err
        sample = await self._poll("first read")
        self._failed_polls = 0
        self._poller = asyncio.create_task(
            self._run_poller(sample), name=f"link-{self.name}-device-poll"
        )

    async def _close(self) -> None:
        poller, self._poller = self._poller, None
        await cancel_and_wait(poller)
        driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await driver.close()
        except Exception as err:  # a library's disconnect must never stop a close
            self._logger.debug("link %s: device disconnect failed: %r", self.name, err)

    async def _find(self) -> tuple[BLEDevice, AdvertisementData | None]:
        timeout = self.settings.scan_timeout_s
        try:
            found = await self._locate(self.settings.address, timeout)
        except TransportError:
            raise
        except Exception as err:
            # No BlueZ / no adapter becomes UnsupportedHostError (fatal), as
            # for the custom BLE link; anything else a retried ConnectError.
            raise translate_bleak_error(err, self.name, "scan") from err
        if found is None:
            raise device_not_seen(self.name, self.settings.address, timeout)
        return found

    async def _poll(self, what: str) -> dict[str, Any]:
        driver = self._driver
        if driver is None:
            raise ConnectError(f"link {self.name}: {what}: no device")
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                # A poll may connect (renogy-ble connects on every read,
                # aiobmsble after a loss): one at a time on the host's adapter.
                async with host_radio_turn(self._device):
                    sample = await driver.poll()
        except Exception as err:
            error = translate_device_error(err, self.name, what)
            if what == "first read" and not isinstance(error, UnsupportedHostError):
                # The device did not answer its first request: the connect
                # fails and the lifecycle retries it with backoff.
                raise ConnectError(str(error)) from err
            raise error from err
        self.polls += 1
        return sample

    async def _run_poller(self, first: dict[str, Any]) -> None:
        try:
            await self._connected.wait()  # a loss before that would be ignored
            self._publish(first)
            while True:
                await asyncio.sleep(self.settings.poll_interval_s)
                if not await self._poll_once():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # A bug here must end in a reconnect, not in a link that looks
            # connected but never polls again.
            self._logger.exception("link %s: poll loop failed", self.name)
            self._connection_lost(f"poll loop failed: {type(err).__name__}: {err}")

    async def _poll_once(self) -> bool:
        """One poll; False when the connection was given up."""
        try:
            sample = await self._poll("poll")
        except TransportError as err:
            self._failed_polls += 1
            self._logger.debug("link %s: poll %d failed: %s", self.name, self._failed_polls, err)
            if self._failed_polls >= self.settings.failures_before_offline:
                self._connection_lost(f"{self._failed_polls} polls failed: {err}")
                return False
            return True
        self._failed_polls = 0
        self._publish(sample)
        return True

    def _publish(self, sample: dict[str, Any]) -> None:
        publish_sample(self, sample)
