"""The demo's story: what happens by itself, told in the console.

A new user should see what the suite is for without finding a tile to
press. Once the demo is up, :data:`STORY` plays (and starts again every
:data:`STORY_LOOP_S`): a discharge request, a cloud over the panels, a load
spike, a grid meter that drops out and comes back, the request withdrawn.
Each beat is announced as it happens, and so is what the export guard does
about it (its ``last_action``, its health, the active notices), read from
Home Assistant as any user would see it.

The beats are in REAL seconds: the guard reacts in real time whatever the
simulated clock does (``--speed`` makes the sun move faster, not the guard).
The panel's tiles stay interactive: a request from the panel simply joins in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from demo.ha_rest import HaRest, HaRestError
from demo.simulator import GRID_METER_OFFLINE, Simulator

_LOGGER = logging.getLogger("demo.story")

# The export guard's event (apps.yaml: export_guard.event) and entities.
GUARD_EVENT: Final = "gridwatch_export_guard"
WATCHED: Final = {
    "sensor.export_guard_last_action": "guard",
    "sensor.export_guard_health": "guard health",
    "sensor.export_guard_error": "guard error",
    "sensor.notifier_active_notices": "active notices",
}
WATCH_S: Final = 1.0


@dataclass(frozen=True)
class Beat:
    """One thing that happens.

    Attributes:
        at_s: real seconds after the story (re)starts.
        say: the console line.
        kind: ``request`` (HA event data), ``cloud`` (0-1), ``load`` (W),
            ``meter_offline`` (bool).
        value: what to set.
    """

    at_s: float
    say: str
    kind: str
    value: Any


STORY: Final = (
    Beat(
        10,
        "a discharge request: 3000 W for 20 minutes (what the panel's request tile does)",
        "request",
        {"action": "start", "power_w": 3000, "duration_min": 20},
    ),
    Beat(80, "a cloud passes over the panels: PV drops", "cloud", 0.7),
    Beat(150, "the cloud has passed: PV comes back", "cloud", 0.0),
    Beat(220, "a load spike: oven and kettle, +3 kW in the house", "load", 3000.0),
    Beat(300, "the load spike is over", "load", 0.0),
    Beat(
        370,
        "a fault: the grid meter drops out (its sensor reads unavailable)",
        "meter_offline",
        True,
    ),
    Beat(460, "the grid meter is back", "meter_offline", False),
    Beat(600, "the request is withdrawn", "request", {"action": "stop"}),
)
STORY_LOOP_S: Final = 690.0


def due(story: tuple[Beat, ...], done: int, elapsed_s: float) -> list[Beat]:
    """The beats after the first ``done`` whose time has come."""
    return [beat for beat in story[done:] if beat.at_s <= elapsed_s]


async def perform(beat: Beat, ha: HaRest, simulator: Simulator) -> None:
    """Make one beat happen.

    Raises:
        HaRestError: HA refused or did not answer.
    """
    if beat.kind == "request":
        await ha.request("POST", f"/api/events/{GUARD_EVENT}", dict(beat.value))
    elif beat.kind == "cloud":
        simulator.story_cloud = float(beat.value)
    elif beat.kind == "load":
        simulator.story_load_w = float(beat.value)
    elif beat.kind == "meter_offline":
        service = "turn_on" if beat.value else "turn_off"
        await ha.call_service("input_boolean", service, {"entity_id": GRID_METER_OFFLINE})
    else:
        raise ValueError(f"unknown beat kind {beat.kind!r}")


@dataclass
class Storyteller:
    """Plays :data:`STORY` and reports the guard's answers.

    Attributes:
        ha: REST client of the demo's HA.
        simulator: the running site.
        say: prints a console line.
        monotonic: the real clock (tests pass a fake).
    """

    ha: HaRest
    simulator: Simulator
    say: Callable[[str], None]
    story: tuple[Beat, ...] = STORY
    loop_s: float = STORY_LOOP_S
    monotonic: Callable[[], float] = time.monotonic

    async def run(self, stop: asyncio.Event) -> None:
        """Play until ``stop`` is set."""
        seen: dict[str, str | None] = {}
        await self._report(seen)  # where the guard stands before the story: not news
        began = self.monotonic()
        done = 0
        while not stop.is_set():
            elapsed = self.monotonic() - began
            if elapsed >= self.loop_s:
                self.say("[story] ... and again from the start")
                began, done, elapsed = self.monotonic(), 0, 0.0
            for beat in due(self.story, done, elapsed):
                done += 1
                self.say(f"[story] {beat.say}")
                try:
                    await perform(beat, self.ha, self.simulator)
                except HaRestError as err:
                    self.say(f"[story] (Home Assistant did not take it: {err})")
            await self._report(seen)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_S)

    async def _report(self, seen: dict[str, str | None]) -> None:
        try:
            states: Mapping[str, str | None] = await self.ha.get_states(WATCHED)
        except HaRestError as err:
            _LOGGER.debug("story: cannot read the guard's entities: %s", err)
            return
        for entity_id, label in WATCHED.items():
            state = states.get(entity_id)
            if state is None or seen.get(entity_id) == state:
                continue
            if entity_id in seen:  # the first reading is where we start, not news
                self.say(f"           {label}: {state}")
            seen[entity_id] = state
