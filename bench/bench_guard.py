"""Export guard: pure decision cost per reading, and reaction time on the
real stack (Home Assistant + AppDaemon).

Decision cost (goal < 50 us): each iteration is what the app does for one
grid-power change: note the sample, evaluate the readings (validate, age,
headroom) and decide. Folding
an action's outcome back in happens after the actuator's I/O, not per
reading, and is reported on its own line. Two streams: a steady
export (decisions with no action) and an export wandering around the limit
(most readings change the power). CPU time of this process is measured, so a
busy machine inflates the figures less than wall time would.

Reaction time: from the REST write of a grid-power reading that crosses the
export limit to the discharge-power actuator changing state in HA, observed
over HA's websocket, p50 / p99 over ``CROSSINGS`` crossings. The floor is a
bare pass-through app (listen_state -> call_service, no logic) on the same
stack, measured the same way, interleaved with the guard's samples. Goals:
guard p50 within 1.5x and p99 within 2x of the floor's.

Runs alone too: ``python -m bench.bench_guard`` (``--pure`` skips the
real-stack part).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench import Row, format_table, progress, row
from gridwatch.guard.decisions import (
    GuardSettings,
    GuardState,
    Outcome,
    apply_result,
    decide,
    evaluate_for,
    note_grid_sample,
    request_start,
)
from gridwatch.guard.readings import Readings, Sample
from gridwatch.safety.breaker import CircuitBreaker

READINGS = 20_000
ROUNDS = 5


def _one_round(settings: GuardSettings, grid_values: list[str]) -> tuple[float, float, int]:
    """CPU seconds per reading (note + evaluate + decide), per verified
    outcome folded back (apply_result), and how many actions were issued."""
    now = 1000.0
    breaker = CircuitBreaker(clock=lambda: now)
    state = request_start(GuardState(), None, None, now)
    actions = 0
    deciding = applying = 0
    clock = time.process_time_ns
    for raw in grid_values:
        now += 0.5
        readings = Readings(Sample(raw, now), Sample("80", now), Sample("3.2", now))
        t0 = clock()
        state = note_grid_sample(state)
        ev = evaluate_for(readings, settings, now)
        decision = decide(state, ev, breaker.snapshot(), settings, now)
        t1 = clock()
        deciding += t1 - t0
        state = decision.state
        for action in decision.actions:
            actions += 1
            t2 = clock()
            state = apply_result(state, action, Outcome.OK, None, settings, now)
            applying += clock() - t2
    return deciding / 1e9 / len(grid_values), applying / 1e9 / max(actions, 1), actions


def _measure(settings: GuardSettings, grid_values: list[str]) -> tuple[float, float, float, int]:
    per_reading: list[float] = []
    per_outcome: list[float] = []
    actions = 0
    for _ in range(ROUNDS):
        decide_s, apply_s, actions = _one_round(settings, grid_values)
        per_reading.append(decide_s * 1e6)
        per_outcome.append(apply_s * 1e6)
    return (
        statistics.median(per_reading),
        max(per_reading),
        statistics.median(per_outcome),
        actions,
    )


def _pure_rows() -> list[Row]:
    settings = GuardSettings(export_limit_w=3680, daily_cap_kwh=20, max_discharge_w=5000)
    rng = random.Random(4)
    # Steady: export just under the target, within the deadband.
    steady = [f"{3560 + rng.uniform(-20, 20):.0f}" for _ in range(READINGS)]
    # Wandering around the limit: the guard keeps re-setting the power.
    wandering = [f"{3400 + rng.gauss(0, 400):.0f}" for _ in range(READINGS)]
    rows: list[Row] = []
    outcome_cost = 0.0
    for name, values in (("steady export", steady), ("export around the limit", wandering)):
        progress(f"{name}: {ROUNDS} rounds of {READINGS:,} readings")
        median, worst, outcome_cost, actions = _measure(settings, values)
        note = f"{actions:,} actions / {READINGS:,} readings; worst round {worst:.1f} us"
        rows.append(row(f"decision per reading, {name}", median, "us CPU", goal="< 50", note=note))
    rows.append(
        row(
            "fold a verified outcome back (apply_result)", outcome_cost, "us CPU", note="per action"
        )
    )
    return rows


# --- reaction time on the real stack -------------------------------------------

CROSSINGS = 200
FLOOR_IN = "sensor.bench_floor_in"
GRID, SOC, EXPORTED = (
    "sensor.bench_guard_grid",
    "sensor.bench_guard_soc",
    "sensor.bench_guard_export",
)
# Discharging at 2500 W (the request), the battery shows in the grid reading:
# 3300 W crosses the 3000 W limit (target 2100 W); 2000 W gives room back.
CROSSING_W, RELIEF_W = 3300, 2000
HIGH_POWER_W, LOW_POWER_W = 2500.0, 2100.0
STEP_TIMEOUT_S = 10.0

FLOOR_APP = textwrap.dedent(
    """
    from appdaemon.plugins.hass.hassapi import Hass


    class PassThrough(Hass):
        async def initialize(self):
            await self.listen_state(self.on_change, self.args["source"])

        async def on_change(self, entity, attribute, old, new, **kwargs):
            await self.call_service(
                "input_number/set_value", entity_id=self.args["target"], value=float(new)
            )
    """
)


def _guard_app(power_entity: str, enable_entity: str) -> dict[str, Any]:
    return {
        "module": "gridwatch_export_guard",
        "class": "ExportGuard",
        "export_limit_w": 3000,
        "deadband_w": 100,
        "daily_export_cap_kwh": 50,
        "max_discharge_w": 5000,
        "readings": {
            "grid_power": {"entity": GRID, "max_age_s": 3600},
            "soc": {"entity": SOC, "max_age_s": 3600},
            "export_today": {"entity": EXPORTED, "max_age_s": 3600},
        },
        "actuators": {"enable": {"entity": enable_entity}, "power": {"entity": power_entity}},
    }


async def _changed(
    events: asyncio.Queue[dict[str, Any]], entity_id: str, accept: Any
) -> tuple[float, dict[str, Any]]:
    """Wait for a state_changed of ``entity_id`` whose new state ``accept``s."""
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while True:
            event = await events.get()
            data = event.get("data", {})
            new = data.get("new_state") or {}
            if data.get("entity_id") == entity_id and accept(new.get("state")):
                return time.perf_counter(), new


def _near(value: float) -> Any:
    def accept(state: Any) -> bool:
        try:
            return abs(float(state) - value) < 0.5
        except (TypeError, ValueError):
            return False

    return accept


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99


async def _reaction_rows() -> list[Row]:
    from tests.e2e.appdaemon_factory import AppDaemonFactory
    from tests.e2e.ha import HomeAssistant
    from tests.e2e.ha_client import HaClient
    from tests.e2e.ha_config import (
        DISCHARGE_DURATION,
        DISCHARGE_ENABLE,
        DISCHARGE_POWER,
        DOMAINS,
        HaConfig,
    )
    from tests.e2e.ha_install import ensure_installed, install_from_env
    from tests.e2e.process import free_port

    install = install_from_env()
    await asyncio.to_thread(ensure_installed, install, DOMAINS)
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-guard-") as tmp:
        ha = HomeAssistant(install, Path(tmp) / "ha", HaConfig(port=free_port()))
        factory = AppDaemonFactory(ha, Path(tmp))
        progress("starting Home Assistant")
        await asyncio.to_thread(ha.start)
        try:
            async with HaClient(ha.url, ha.token) as client:
                for entity, value in ((GRID, 0), (SOC, 80), (EXPORTED, 1.0), (FLOOR_IN, 0)):
                    await client.set_state(entity, value)
                progress("starting AppDaemon with the guard and the pass-through floor")
                ad = await factory(
                    apps={
                        "export_guard": _guard_app(DISCHARGE_POWER, DISCHARGE_ENABLE),
                        "floor": {
                            "module": "floor_app",
                            "class": "PassThrough",
                            "source": FLOOR_IN,
                            "target": DISCHARGE_DURATION,
                        },
                    },
                    test_apps={"floor_app.py": FLOOR_APP},
                )
                await asyncio.to_thread(ad.wait_app, "export_guard")
                await asyncio.to_thread(ad.wait_app, "floor")
                async with client.websocket() as ws:
                    events = await ws.subscribe_events("state_changed")
                    try:
                        guard, floor = await _sample(
                            client, events, DISCHARGE_POWER, DISCHARGE_DURATION
                        )
                    except TimeoutError:
                        progress("AppDaemon log tail:\n" + ad.log_text()[-3000:])
                        raise
        finally:
            factory.stop_all()
            await asyncio.to_thread(ha.stop)
    g50, g99 = _percentiles(guard)
    f50, f99 = _percentiles(floor)
    note = f"{len(guard)} crossings"
    return [
        row("floor: pass-through app, p50", f50 * 1e3, "ms", note=note),
        row("floor: pass-through app, p99", f99 * 1e3, "ms", note=note),
        row("guard: limit crossing -> actuator, p50", g50 * 1e3, "ms", note=note),
        row("guard: limit crossing -> actuator, p99", g99 * 1e3, "ms", note=note),
        row("guard p50 / floor p50", g50 / f50, "x", goal="<= 1.5"),
        row("guard p99 / floor p99", g99 / f99, "x", goal="<= 2"),
    ]


async def _sample(
    client: Any, events: asyncio.Queue[dict[str, Any]], power: str, floor_target: str
) -> tuple[list[float], list[float]]:
    """Interleave guard crossings and floor pass-throughs; return seconds each."""
    await client.rest(
        "POST", "/api/events/gridwatch_export_guard", {"action": "start", "power_w": HIGH_POWER_W}
    )
    await _changed(events, power, _near(HIGH_POWER_W))
    await _idle(events)
    guard: list[float] = []
    floor: list[float] = []
    progress(f"{CROSSINGS} limit crossings, each paired with a floor sample")
    for i in range(CROSSINGS):
        # Crossing: the guard must lower the power. Timed.
        began = time.perf_counter()
        await client.set_state(GRID, CROSSING_W)
        seen, _ = await _changed(events, power, _near(LOW_POWER_W))
        guard.append(seen - began)
        await _idle(events)
        # Relief: power goes back up (not timed), ready for the next crossing.
        await client.set_state(GRID, RELIEF_W)
        await _changed(events, power, _near(HIGH_POWER_W))
        await _idle(events)
        # The floor, same path minus the logic: a new value each time.
        value = float(100 + i % 2)
        began = time.perf_counter()
        await client.set_state(FLOOR_IN, value)
        seen, _ = await _changed(events, floor_target, _near(value))
        floor.append(seen - began)
    return guard, floor


async def _idle(events: asyncio.Queue[dict[str, Any]]) -> None:
    """Wait until the guard reports its last power change verified."""
    await _changed(
        events,
        "sensor.export_guard_last_action",
        lambda state: isinstance(state, str) and state.endswith("verified"),
    )


async def run() -> list[Row]:
    rows = _pure_rows()
    if "--pure" not in sys.argv[1:]:
        rows += await _reaction_rows()
    return rows


if __name__ == "__main__":
    print(format_table("guard", asyncio.run(run())))
