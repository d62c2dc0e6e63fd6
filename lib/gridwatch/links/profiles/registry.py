"""Every device kind a BLE link can name, with its library and Python floor."""

from __future__ import annotations

from types import MappingProxyType

from gridwatch.links.profiles.base import DeviceProfile
from gridwatch.links.profiles.bms import BMS_VALUES
from gridwatch.links.profiles.renogy import RENOGY_VALUES
from gridwatch.links.profiles.victron import VICTRON_VALUES

__all__ = ["BMS_KINDS", "PROFILES", "profile_for"]

# apps.yaml spelling -> aiobmsble's module (its file name). "auto" picks the
# module from the device's advertisement, as HA's BMS_BLE does.
BMS_KINDS = MappingProxyType(
    {
        "auto": None,
        "jbd": "jbd_bms",
        "jk": "jikong_bms",
        "daly": "daly_bms",
        "ant": "ant_bms",
        "seplos": "seplos_bms",
        "ecoworthy": "ecoworthy_bms",
        "redodo": "redodo_bms",
        "renogy_bms": "renogy_bms",
        "pace": "pace_bms",
        "tdt": "tdt_bms",
    }
)
_AIOBMSBLE_PYTHON = (3, 12)  # aiobmsble 0.31's Requires-Python


def _bms(kind: str) -> DeviceProfile:
    title = "BMS (identified from its advertisement)" if kind == "auto" else f"{kind} BMS"
    return DeviceProfile(
        kind=kind,
        title=title,
        library="aiobmsble",
        module="aiobmsble",
        python=_AIOBMSBLE_PYTHON,
        passive=False,
        needs_key=False,
        values=BMS_VALUES,
    )


PROFILES = MappingProxyType(
    {
        **{kind: _bms(kind) for kind in BMS_KINDS},
        "renogy": DeviceProfile(
            kind="renogy",
            title="Renogy charge controller (BT-1/BT-2)",
            library="renogy-ble",
            module="renogy_ble",
            python=(3, 11),
            passive=False,
            needs_key=False,
            values=RENOGY_VALUES,
        ),
        "victron": DeviceProfile(
            kind="victron",
            title="Victron Instant Readout",
            library="victron-ble",
            module="victron_ble",
            python=(3, 10),
            passive=True,
            needs_key=True,
            values=VICTRON_VALUES,
        ),
    }
)


def profile_for(kind: str) -> DeviceProfile:
    """The profile of ``kind``.

    Raises:
        KeyError: no such kind (the config names the known ones first).
    """
    return PROFILES[kind]
