"""Settings of the BLE link. Pure: no bleak import, so config can build them
on a host without Bluetooth."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BleSettings"]


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
    """

    address: str
    connect_attempts: int = 3
    scan_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    backend: str | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("BLE settings need an address")
        if self.connect_attempts < 1:
            raise ValueError("connect_attempts must be >= 1")
        # "not (valid)" so a NaN is refused as well.
        if not all(
            t > 0 and math.isfinite(t) for t in (self.scan_timeout_s, self.request_timeout_s)
        ):
            raise ValueError("BLE timeouts must be > 0")

    def target(self) -> str:
        """Where the link points."""
        return self.address
