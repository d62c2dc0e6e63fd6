"""Settings of the BLE link. Pure: no bleak import, so config can build them
on a host without Bluetooth."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEVICE_KEY", "BleRadioSettings", "BleSettings", "EsphomeProxy"]

# The one subscription key of a link with a device profile: each poll (or
# advertisement) delivers the library's whole sample, a dict, on it, and the
# link's values are JSON paths into that dict (``voltage``, ``cell_voltages[0]``).
DEVICE_KEY = "device"


@dataclass(frozen=True)
class BleSettings:
    """How to reach one BLE device.

    Attributes:
        address: the device's Bluetooth address (a UUID on macOS).
        connect_attempts: attempts bleak-retry-connector makes within one
            connect of the link, before the link's own backoff takes over.
        scan_timeout_s: how long to look for the device before connecting.
        request_timeout_s: default bound on a read, write or notify setup.
        backend: ``"module:attribute"`` of a bleak backend class used instead
            of the host's Bluetooth stack: for simulated devices (tests, the
            demo), not for users. Resolved by the link factory.
        device: a device profile (``jbd``, ``auto``, ``renogy``, ``victron``
            ...): the link talks through that profile's library instead of
            notifications the user maps by offset. ``None``: a custom device.
        key: the device's encryption key, for profiles that need one (Victron
            Instant Readout's advertisement key, 32 hex digits).
        poll_interval_s: seconds between polls of a request/response device.
        failures_before_offline: failed polls in a row before the connection
            is dropped and made again.
        advertisement_timeout_s: an advertising device not heard for this
            long counts as gone (its link goes down until the next one).
        scanner: ``"module:attribute"`` of an advertisement source used
            instead of a bleak scan (simulated advertisers). Resolved by the
            link factory.
    """

    address: str
    connect_attempts: int = 3
    scan_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    backend: str | None = None
    device: str | None = None
    key: str | None = None
    poll_interval_s: float = 30.0
    failures_before_offline: int = 3
    advertisement_timeout_s: float = 120.0
    scanner: str | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("BLE settings need an address")
        if self.connect_attempts < 1:
            raise ValueError("connect_attempts must be >= 1")
        # "not (valid)" so a NaN is refused as well.
        timeouts = (
            self.scan_timeout_s,
            self.request_timeout_s,
            self.poll_interval_s,
            self.advertisement_timeout_s,
        )
        if not all(t > 0 and math.isfinite(t) for t in timeouts):
            raise ValueError("BLE timeouts and intervals must be > 0")
        if self.failures_before_offline < 1:
            raise ValueError("failures_before_offline must be >= 1")

    def target(self) -> str:
        """Where the link points (and through which profile)."""
        if self.device is None:
            return self.address
        return f"{self.address} ({self.device})"

    def __repr__(self) -> str:
        # The key is a secret: never in a log line or a traceback.
        key = None if self.key is None else "***"
        return (
            f"BleSettings(address={self.address!r}, device={self.device!r}, key={key}, "
            f"poll_interval_s={self.poll_interval_s:g})"
        )


@dataclass(frozen=True)
class EsphomeProxy:
    """One ESPHome Bluetooth proxy (its native API).

    Attributes:
        host: its host name or address.
        port: its native API port.
        noise_psk: its API encryption key (base64), if it has one.
    """

    host: str
    port: int = 6053
    noise_psk: str | None = None

    def __repr__(self) -> str:
        # The key is a secret: never in a log line or a traceback.
        psk = None if self.noise_psk is None else "***"
        return f"EsphomeProxy(host={self.host!r}, port={self.port}, noise_psk={psk})"

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BleRadioSettings:
    """What the BLE links of a process reach their devices through.

    Attributes:
        adapter: ``local`` (the host's own Bluetooth, BlueZ) or ``esphome``
            (ESPHome Bluetooth proxies, for an AppDaemon without a radio).
        proxies: the proxies (``esphome`` only); the one that hears a device
            best (RSSI) with a free connection slot is used, another when it
            drops out.
        connect_timeout_s: how long the first proxy may take to answer.
    """

    adapter: str = "local"
    proxies: tuple[EsphomeProxy, ...] = ()
    connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.adapter not in ("local", "esphome"):
            raise ValueError("adapter is local or esphome")
        if self.adapter == "esphome" and not self.proxies:
            raise ValueError("adapter: esphome needs at least one proxy")
        if self.adapter == "local" and self.proxies:
            raise ValueError("proxies are for adapter: esphome")
