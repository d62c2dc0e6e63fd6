"""The demo's JBD-style battery management system, on the scripted bleak backend.

A request/response BMS: aiobmsble writes JBD read commands to it and it
answers with checksummed frames split over notifications, exactly as a
Jiabaida/Xiaoxiang board does (:mod:`tests.support.fake_jbd` speaks the
protocol). Its readings follow a slow day: a 4-cell LiFePO4 pack whose
current swings between charge and discharge and whose cells drift apart a
little under load. A link reaches it by naming :data:`BACKEND` as its bleak
backend (``backend: !secret jbd_backend``); aiobmsble needs Python >= 3.12,
so the demo runs this link only there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Final

from tests.support.fake_jbd import JbdSimulator, JbdState

ADDRESS: Final = "A4:C1:37:00:00:01"
_EPOCH: Final = time.monotonic()


@dataclass
class LivePack(JbdState):
    """A pack whose readings move with the time since the demo started."""

    def refresh(self, elapsed_s: float) -> None:
        swing = math.sin(elapsed_s / 120.0)
        self.current_ma = int(round(8000 * swing, -1))
        self.soc = max(5, min(100, round(60 + 30 * math.sin(elapsed_s / 900.0))))
        base = 3280 + round(self.soc * 0.6)
        self.cells_mv = [base + round(6 * swing * k) for k in (1, -1, 2, 0)]
        self.remaining_mah = self.nominal_mah * self.soc // 100
        self.temps_c = [round(24 + 2 * math.sin(elapsed_s / 600.0), 1), 25.0]

    def basic_info(self) -> bytes:
        self.refresh(time.monotonic() - _EPOCH)
        return super().basic_info()

    def cell_voltages(self) -> bytes:
        self.refresh(time.monotonic() - _EPOCH)
        return super().cell_voltages()


SIMULATOR: Final = JbdSimulator(state=LivePack())
PERIPHERAL: Final = SIMULATOR.peripheral(address=ADDRESS, name="JBD-SP04S034-demo")
# The simulated BMS keeps a bounded log of what it was asked.
SIMULATOR.requests = SIMULATOR.requests[-100:]
BACKEND: Final = PERIPHERAL.backend
