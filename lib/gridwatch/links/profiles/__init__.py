"""Device profiles: what a device kind's library reports, as sensors.

A BLE link that names a device (``device: jbd``) is read through the field's
own library for that kind (aiobmsble, victron-ble ...). A profile here is
pure data about that library's sample: each value's unit, HA device class
and state class, whether it is published when the user lists no values, and
which library (and which Python) the kind needs. The transport's drivers
(:mod:`gridwatch.transport.ble_drivers`) do the talking; the config turns a
profile plus the user's picks into the link's value specs.
"""

from gridwatch.links.profiles.base import DeviceProfile, ProfileValue, UnknownValueError
from gridwatch.links.profiles.registry import PROFILES, profile_for

__all__ = ["PROFILES", "DeviceProfile", "ProfileValue", "UnknownValueError", "profile_for"]
