"""Device libraries behind one small interface, and their errors translated once.

A driver reads one device through its library: :meth:`DeviceDriver.poll`
returns the library's sample as plain data (numbers, text, booleans, lists),
which the link delivers as one message. The libraries are optional installs
with their own Python floors: each is imported only when a link needs it,
and a missing one is a :class:`MissingLibraryError` (fatal: retrying cannot
install it) that names the library and the Python it needs.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import struct
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from gridwatch.transport.ble_radio import route_library
from gridwatch.transport.errors import (
    AuthError,
    ConnectionLost,
    PayloadError,
    RequestError,
    RequestTimeout,
    TransportError,
    UnsupportedHostError,
)

__all__ = [
    "BmsDriver",
    "DeviceDriver",
    "MissingLibraryError",
    "RenogyDriver",
    "bms_driver",
    "plain",
    "renogy_driver",
    "require_library",
    "translate_device_error",
    "victron_decoder",
]

_LOGGER = logging.getLogger(__name__)


class MissingLibraryError(UnsupportedHostError):
    """A configured device profile's library is not installed here."""


class DeviceDriver(Protocol):
    """One device read through its library."""

    async def poll(self) -> dict[str, Any]:
        """Read the device once; the library's sample as plain data."""

    async def close(self) -> None:
        """Release the device (disconnect); safe to call twice."""


def require_library(module: str, library: str, python: tuple[int, int], kind: str) -> ModuleType:
    """Import a device library, or say exactly what is missing.

    Raises:
        MissingLibraryError: not installed (or not installable on this Python).
    """
    try:
        with warnings.catch_warnings():
            # A third-party import hook (pygal's, for one) warns on every
            # failed import; a missing library must still read as missing.
            warnings.simplefilter("ignore", ImportWarning)
            return importlib.import_module(module)
    except ImportError as err:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        floor = f"{python[0]}.{python[1]}"
        too_old = sys.version_info[:2] < python
        hint = (
            f"{library} needs Python >= {floor} and this AppDaemon runs Python {here}: "
            "run AppDaemon on a newer Python (the Home Assistant add-on has 3.12, "
            "Debian 13 has 3.13)"
            if too_old
            else f"add {library} to AppDaemon's python_packages (or pip install {library})"
        )
        raise MissingLibraryError(
            f"device: {kind} is read through the {library} library, which is not installed "
            f"({err}); {hint}"
        ) from err


def translate_device_error(err: BaseException, link: str, what: str) -> TransportError:
    """The one place where the device libraries' errors become the suite's."""
    if isinstance(err, TransportError):
        return err
    if isinstance(err, PermissionError):
        return AuthError(f"link {link}: {what}: the device refused the secret ({err})")
    if isinstance(err, TimeoutError):
        return RequestTimeout(
            f"link {link}: {what}: no valid answer in time (no reply, a bad checksum or a "
            "frame cut short)"
        )
    if isinstance(err, BleakError | EOFError | ConnectionError | OSError):
        return ConnectionLost(f"link {link}: {what}: {type(err).__name__}: {err}")
    return RequestError(f"link {link}: {what}: {type(err).__name__}: {err}")


def plain(value: Any) -> Any:
    """A library value as JSON-like data (the links' value paths walk it)."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    try:
        return float(value)  # aiobmsble's TempSensor and other number-likes
    except (TypeError, ValueError):
        return str(value)


class BmsDriver:
    """A battery management system through aiobmsble."""

    def __init__(self, bms: Any) -> None:
        self._bms = bms

    async def poll(self) -> dict[str, Any]:
        sample = await self._bms.async_update()
        result = plain(dict(sample))
        assert isinstance(result, dict)
        return result

    async def close(self) -> None:
        await self._bms.disconnect()


async def bms_driver(
    device: BLEDevice,
    advertisement: AdvertisementData | None,
    bms_module: str | None,
    *,
    kind: str,
    python: tuple[int, int],
    logger_name: str = __name__,
) -> BmsDriver:
    """An aiobmsble driver for ``device``.

    Args:
        device: the device (its details say which radio reaches it).
        advertisement: its last advertisement (needed to identify ``auto``).
        bms_module: aiobmsble's module for the kind (``jbd_bms``), or None
            to identify the BMS from its advertisement.
        kind: the configured kind, for errors.
        python: aiobmsble's Python floor, for the missing-library error.
        logger_name: where aiobmsble logs.

    Raises:
        MissingLibraryError: aiobmsble is not installed.
        RequestError: the BMS could not be identified.
    """
    require_library("aiobmsble", "aiobmsble", python, kind)
    basebms = importlib.import_module("aiobmsble.basebms")
    route_library(basebms)
    utils = importlib.import_module("aiobmsble.utils")
    if bms_module is None:
        if advertisement is None:
            raise RequestError(
                f"device: {kind}: no advertisement of {device.address} seen to identify the BMS "
                "from; name its type (e.g. device: jbd)"
            )
        cls = await utils.bms_identify(advertisement, device.address)
        if cls is None:
            raise RequestError(
                f"device: {kind}: aiobmsble knows no BMS advertising as "
                f"{advertisement.local_name!r}; name its type (e.g. device: jbd)"
            )
    else:
        cls = await utils.bms_cls(bms_module)
        if cls is None:
            raise RequestError(f"device: {kind}: aiobmsble has no module {bms_module}")
    for module in {cls.__module__, basebms.__name__}:
        route_library(sys.modules[module])
    return BmsDriver(cls(device, logger_name=logger_name))


async def bounded(coro: Any, timeout: float) -> Any:
    """Await a library call with a bound (the libraries' own may be minutes)."""
    async with asyncio.timeout(timeout):
        return await coro


# Victron Energy's Bluetooth SIG company id: Instant Readout lives in its
# manufacturer data, starting with 0x10.
VICTRON_COMPANY_ID = 0x02E1
_VICTRON_READOUT = 0x10

AdvertisementDecoder = Callable[[AdvertisementData], dict[str, Any] | None]


def victron_decoder(key: str, *, python: tuple[int, int]) -> AdvertisementDecoder:
    """Decode a Victron's Instant Readout with its advertisement key (victron-ble).

    The decoder returns None for an advertisement that carries no readout
    (Victron devices also advertise without one) and raises
    :class:`~gridwatch.transport.errors.PayloadError` for one it cannot read
    (wrong key, unknown model, cut short).

    Raises:
        MissingLibraryError: victron-ble is not installed.
    """
    require_library("victron_ble", "victron-ble", python, "victron")
    devices = importlib.import_module("victron_ble.devices")
    exceptions = importlib.import_module("victron_ble.exceptions")
    key_mismatch = exceptions.AdvertisementKeyMismatchError

    def decode(advertisement: AdvertisementData) -> dict[str, Any] | None:
        data = advertisement.manufacturer_data.get(VICTRON_COMPANY_ID)
        if not data or data[0] != _VICTRON_READOUT:
            return None
        parser = devices.detect_device_type(data)
        if parser is None:
            raise PayloadError("unknown_model", f"no victron-ble parser for {data[:5].hex()}")
        try:
            parsed = parser(key).parse(data)
        except key_mismatch as err:
            raise PayloadError(
                "wrong_key", "the advertisement key does not match this device"
            ) from err
        except (ValueError, IndexError, KeyError, struct.error) as err:
            raise PayloadError("undecodable", f"{type(err).__name__}: {err}") from err
        return _readings(parsed)

    return decode


def _readings(parsed: Any) -> dict[str, Any]:
    """Every ``get_<name>()`` of a victron-ble reading; a getter that fails
    (a field this model does not send) is left out, not fatal."""
    result: dict[str, Any] = {}
    for name in dir(parsed):
        if not name.startswith("get_"):
            continue
        try:
            value = getattr(parsed, name)()
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        if value is not None:
            result["model" if name == "get_model_name" else name[4:]] = plain(value)
    return result


# How long renogy-ble waits for each register block's answer (its default:
# a BT module answers within a few hundred ms; more is a lost answer).
RENOGY_REPLY_WAIT_S = 2.0


class RenogyDriver:
    """A Renogy charge controller through renogy-ble (BT-1/BT-2 module).

    renogy-ble connects, reads its registers and disconnects on each read,
    and reports failures in its result instead of raising: they are raised
    here, so the link counts them like any other failed poll.
    """

    def __init__(self, client: Any, device: Any) -> None:
        self._client = client
        self._device = device

    async def poll(self) -> dict[str, Any]:
        result = await self._client.read_device(self._device)
        if not result.success:
            error = result.error
            if isinstance(error, BaseException) and not isinstance(error, RuntimeError):
                raise error
            # renogy-ble's "No commands completed successfully": nothing valid came back.
            raise TimeoutError(str(error or "no register answered"))
        data = plain(dict(result.parsed_data))
        assert isinstance(data, dict)
        return data

    async def close(self) -> None:
        return None  # no connection is kept between reads


async def renogy_driver(
    device: BLEDevice,
    advertisement: AdvertisementData | None,
    *,
    python: tuple[int, int],
    device_type: str = "controller",
) -> RenogyDriver:
    """A renogy-ble driver for ``device``.

    Raises:
        MissingLibraryError: renogy-ble is not installed.
    """
    require_library("renogy_ble", "renogy-ble", python, "renogy")
    ble = importlib.import_module("renogy_ble.ble")
    route_library(ble)
    rssi = None if advertisement is None else advertisement.rssi
    target = ble.RenogyBLEDevice(device, advertisement_rssi=rssi, device_type=device_type)
    client = ble.RenogyBleClient(max_notification_wait_time=RENOGY_REPLY_WAIT_S)
    return RenogyDriver(client, target)
