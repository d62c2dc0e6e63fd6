"""The simulated site's counters, kept between demo runs.

A real meter never runs backwards; if every demo run started the lifetime
counters from the same numbers, HA's recorder would see total_increasing
sensors drop and read it as a meter reset. So the last state is saved on
stop and picked up on the next start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

from demo.site_model import SiteState

_LOGGER = logging.getLogger("demo.simulator")


def load_site(path: Path, default: SiteState) -> SiteState:
    """The saved site state, or ``default`` if there is none (or it is unreadable)."""
    try:
        raw = json.loads(path.read_text())
        fields = {f.name for f in dataclasses.fields(SiteState)}
        values = {k: float(v) for k, v in raw.items() if k in fields}
    except FileNotFoundError:
        return default
    except (OSError, ValueError, TypeError, AttributeError) as err:
        _LOGGER.warning("ignoring the saved site state in %s: %s", path, err)
        return default
    if not all(math.isfinite(v) and v >= 0 for v in values.values()):
        _LOGGER.warning("ignoring the saved site state in %s: bad numbers", path)
        return default
    state = dataclasses.replace(default, **values)
    return dataclasses.replace(state, soc_pct=min(state.soc_pct, 100.0))


def save_site(path: Path, state: SiteState) -> None:
    """Save ``state`` (written to a temporary file, then renamed into place)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=1))
    tmp.replace(path)
