"""The demo's Victron-style battery monitor: a SmartShunt that only advertises.

It sends an encrypted Instant Readout advertisement every second
(:mod:`tests.support.fake_victron` builds them as Victron documents), and
the link decodes them with victron-ble and the key below. No connection is
ever made. A link hears it by naming :data:`ADVERTISER` as its scanner
(``scanner: !secret victron_scanner``), in place of the host's radio.
"""

from __future__ import annotations

import math
import time
from typing import Final

from tests.support.fake_victron import Shunt, ShuntState, advertiser_for

ADDRESS: Final = "C4:4F:33:00:00:02"
# DEMO ONLY: a made-up advertisement key (a real one comes from VictronConnect).
KEY: Final = "5e5d7a3c9b1f40e2a6c88d0f13b7e294"
_EPOCH: Final = time.monotonic()


def readings() -> ShuntState:
    """A 48 V bank the shunt measures: charging by day, discharging by night."""
    elapsed = time.monotonic() - _EPOCH
    amps = 20.0 * math.sin(elapsed / 150.0)
    soc = 70 + 20 * math.sin(elapsed / 1200.0)
    # Time to empty at this discharge (a 200 Ah bank); none while charging,
    # as a SmartShunt reports it.
    remaining = round(soc * 2.0 / -amps * 60) if amps < -0.5 else None
    return ShuntState(
        voltage=round(51.2 + amps * 0.02 + (soc - 70) * 0.01, 2),
        current=round(amps, 3),
        consumed_ah=round((100 - soc) * 2.0, 1),
        soc=round(soc, 1),
        remaining_mins=None if remaining is None else min(remaining, 65534),
    )


SHUNT: Final = Shunt(address=ADDRESS, key=KEY, readings=readings)
ADVERTISER: Final = advertiser_for(SHUNT, interval_s=1.0)
