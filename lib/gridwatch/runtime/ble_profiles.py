"""Build the links of BLE device profiles (``ble: {device: ...}``).

The profile (pure data, :mod:`gridwatch.links.profiles`) names the library;
the library is imported here, when the link is built, so a missing one stops
that link at start with one error naming the library and the Python it
needs, and every other link runs.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from gridwatch.links.profiles import DeviceProfile, profile_for
from gridwatch.links.profiles.registry import BMS_KINDS
from gridwatch.transport.ble_advert_link import BleAdvertLink
from gridwatch.transport.ble_device_link import BleDeviceLink, DriverFactory, Locate
from gridwatch.transport.ble_drivers import (
    bms_driver,
    renogy_driver,
    require_library,
    victron_decoder,
)
from gridwatch.transport.ble_esphome import shared_radio
from gridwatch.transport.ble_radio import RadioDetails, radio_device
from gridwatch.transport.ble_scanner import (
    AdvertisementSource,
    Detection,
    SourceFactory,
    bleak_source,
    shared_hub,
)
from gridwatch.transport.ble_settings import BleRadioSettings, BleSettings
from gridwatch.transport.link import Link

__all__ = ["ProxyAdvertisements", "custom_link", "device_link", "hub_locate"]


def device_link(
    name: str,
    settings: BleSettings,
    options: dict[str, Any],
    radio: BleRadioSettings | None = None,
) -> Link:
    """The link of a BLE device profile.

    Args:
        name: the link's name.
        settings: its ``ble:`` block.
        options: :class:`Link` options; ``backend`` (a simulated radio) too.
        radio: the app's radio (the host's adapter or ESPHome proxies).

    Raises:
        MissingLibraryError: the profile's (or the radio's) library is not
            installed here.
        ValueError: a profile this build does not drive.
    """
    assert settings.device is not None
    radio = _radio(radio)
    profile = profile_for(settings.device)
    require_library(profile.module, profile.library, profile.python, profile.kind)
    backend: type[BaseBleakClient] | None = options.pop("backend", None)
    if profile.passive:
        return _advert_link(name, settings, profile, options, radio)
    if backend is not None:
        locate = _simulated(backend)
    elif radio.adapter == "esphome":
        locate = _proxied(radio)
    else:
        locate = hub_locate()
    return BleDeviceLink(
        name, settings, locate=locate, make_driver=_driver_factory(profile, name), **options
    )


def custom_link(
    name: str,
    settings: BleSettings,
    options: dict[str, Any],
    radio: BleRadioSettings | None = None,
) -> Link:
    """A BLE link decoding notifications by the user's offsets (a custom device)."""
    from gridwatch.transport.ble_link import BleLink

    radio = _radio(radio)
    if "backend" not in options and "find_device" not in options:
        # Proxies: the one hearing the device best; the host's radio: the
        # one shared scan. (A simulated backend needs no lookup.)
        locate = _proxied(radio) if radio.adapter == "esphome" else hub_locate()
        options["find_device"] = _device_only(locate)
    return BleLink(name, settings, **options)


def _device_only(locate: Locate) -> Callable[[str, float], Awaitable[BLEDevice | None]]:
    async def find(address: str, timeout: float) -> BLEDevice | None:
        found = await locate(address, timeout)
        return None if found is None else found[0]

    return find


def _radio(radio: BleRadioSettings | None) -> BleRadioSettings:
    """The app's radio; proxies need bleak-esphome (checked at start, once per link)."""
    radio = radio or BleRadioSettings()
    if radio.adapter == "esphome":
        require_library("bleak_esphome", "bleak-esphome", (3, 11), "adapter: esphome")
    return radio


def _advert_link(
    name: str,
    settings: BleSettings,
    profile: DeviceProfile,
    options: dict[str, Any],
    radio: BleRadioSettings,
) -> Link:
    assert settings.key is not None  # the schema requires it for this profile
    source: SourceFactory = bleak_source
    if settings.scanner is not None:
        source = _scanner(settings.scanner)
    elif radio.adapter == "esphome":
        source = ProxyAdvertisements(radio)
    decode = victron_decoder(settings.key, python=profile.python)
    # The hub is per event loop: looked up when the link first connects.
    return BleAdvertLink(
        name, settings, hub=functools.partial(shared_hub, source), decode=decode, **options
    )


def _scanner(spec: str) -> SourceFactory:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load BLE scanner {spec!r}: {err}") from err
    if not callable(factory):
        raise ValueError(f"BLE scanner {spec!r} is not callable")  # noqa: TRY004 - config
    return factory  # type: ignore[no-any-return]


def _driver_factory(profile: DeviceProfile, link: str) -> DriverFactory:
    if profile.library == "aiobmsble":
        return functools.partial(
            bms_driver,
            bms_module=BMS_KINDS[profile.kind],
            kind=profile.kind,
            python=profile.python,
            logger_name=f"gridwatch.link.{link}",
        )
    if profile.library == "renogy-ble":
        return functools.partial(renogy_driver, python=profile.python)
    raise ValueError(f"device: {profile.kind} cannot be polled by this build")


@dataclass(frozen=True)
class ProxyAdvertisements:
    """The proxies' advertisements as a scanner; equal for equal radios, so
    every passive link of one radio shares one hub."""

    radio: BleRadioSettings

    def __call__(self, detection: Detection) -> AdvertisementSource:
        return shared_radio(self.radio).advertisements(detection)


def _proxied(radio: BleRadioSettings) -> Locate:
    """A device reached through the ESPHome proxy that hears it best."""

    async def locate(
        address: str, timeout: float
    ) -> tuple[BLEDevice, AdvertisementData | None] | None:
        return await shared_radio(radio).locate(address, timeout)

    return locate


def _simulated(backend: type[BaseBleakClient]) -> Locate:
    """A device behind a simulated radio: always in range, as it advertises."""

    async def locate(
        address: str, _timeout: float
    ) -> tuple[BLEDevice, AdvertisementData | None] | None:
        advertise = getattr(backend, "advertisement", None)
        advertisement = advertise() if callable(advertise) else None
        name = advertisement.local_name if advertisement is not None else None
        return radio_device(address, name, RadioDetails(backend)), advertisement

    return locate


def hub_locate(source: SourceFactory = bleak_source) -> Locate:
    """Find a device through the process's shared scanner (one scan for every
    link: polled devices look up their address in the same scan the
    advertisement links listen to)."""

    async def locate(
        address: str, timeout: float
    ) -> tuple[BLEDevice, AdvertisementData | None] | None:
        hub = shared_hub(source)
        found: asyncio.Future[tuple[BLEDevice, AdvertisementData]] = (
            asyncio.get_running_loop().create_future()
        )

        def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
            if not found.done():
                found.set_result((device, advertisement))

        await hub.watch(address, seen)
        try:
            async with asyncio.timeout(timeout):
                return await found
        except TimeoutError:
            return None
        finally:
            await hub.unwatch(address, seen)

    return locate
