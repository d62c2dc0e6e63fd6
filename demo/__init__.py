"""The Gridwatch demo: a Home Assistant sandbox, a broker, a simulated site and
AppDaemon with the four apps (``./run demo``)."""

import sys
from pathlib import Path

# The gridwatch package lives in lib/ (which AppDaemon and pytest put on the
# path themselves); ``python -m demo`` from the repository root must find it
# too, as must the demo's tests, which start it as a child process.
_LIB = str(Path(__file__).resolve().parents[1] / "lib")
if _LIB not in sys.path:
    sys.path.append(_LIB)
