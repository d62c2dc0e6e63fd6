"""The Gridwatch demo: a Home Assistant sandbox, a broker, a simulated site and
AppDaemon with the four apps (``./run demo``)."""

import sys
from pathlib import Path

# The gridwatch package lives in lib/ (as in a user's AppDaemon app_dir, where
# AppDaemon puts lib/ on the path), not at the repository root.
_LIB = str(Path(__file__).resolve().parents[1] / "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)
