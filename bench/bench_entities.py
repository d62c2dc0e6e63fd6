"""MQTT entity backend figures (issue 11): what an app's entity writes cost
through MQTT discovery, against a real mosquitto on loopback.

- first start: announcing N entities (retained config + state + attributes
  each), then the sweep that publishes the manifest once;
- steady state: N state updates (two retained messages each);
- republish after HA's birth message (configs again, then states);
- next start with half the entities gone: the sweep removing them;
- last will: a backend whose connection dies without a goodbye, until the
  broker publishes its ``offline`` (keepalive 5 s: the broker waits 1.5x).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Row, progress, row

ENTITIES = 500
KEEPALIVE_S = 5
ATTRIBUTES = {
    "friendly_name": "Bench meter energy today",
    "unit_of_measurement": "kWh",
    "device_class": "energy",
    "state_class": "total",
    "last_reset": "2026-06-01T00:00:00+02:00",
    "stale": False,
    "statistic_id": "sensor.bench_meter",
    "resets": 0,
}


def _ids(count: int) -> list[str]:
    return [f"sensor.bench_meter_{i}_energy_today" for i in range(count)]


async def run() -> list[Row]:
    from gridwatch.config.entities_schema import MqttEntitiesConfig
    from gridwatch.runtime.entity_backend import build_mqtt_backend
    from tests.support.mosquitto import Mosquitto

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-entities-") as workdir:
        broker = Mosquitto(Path(workdir))
        broker.start()
        try:
            cfg = MqttEntitiesConfig(host=broker.host, port=broker.port, keepalive_s=KEEPALIVE_S)
            ids = _ids(ENTITIES)

            progress("announcing", ENTITIES, "entities")
            backend = build_mqtt_backend("bench", cfg)
            await backend.start()
            began = time.perf_counter()
            for n, entity_id in enumerate(ids):
                await backend.set_entity(entity_id, f"{n / 10:.3f}", ATTRIBUTES)
            announce_s = time.perf_counter() - began
            began = time.perf_counter()
            await backend.sweep()
            sweep_first_s = time.perf_counter() - began
            rows.append(
                row(
                    f"first write of {ENTITIES} entities", announce_s * 1000 / ENTITIES, "ms/entity"
                )
            )
            rows.append(row("manifest after start (one publish)", sweep_first_s * 1000, "ms"))

            progress("updating", ENTITIES, "states")
            began = time.perf_counter()
            for n, entity_id in enumerate(ids):
                await backend.set_entity(entity_id, f"{n / 10 + 1:.3f}", ATTRIBUTES)
            update_s = time.perf_counter() - began
            rows.append(row("state updates, QoS 1 retained", ENTITIES / update_s, "writes/s"))

            began = time.perf_counter()
            written = await backend.republish()
            rows.append(
                row(
                    "republish after HA's birth",
                    (time.perf_counter() - began) * 1000,
                    "ms",
                    note=f"{written} entities",
                )
            )
            await backend.close()

            progress("next start with half the entities gone")
            again = build_mqtt_backend("bench", cfg)
            await again.start()
            for entity_id in ids[: ENTITIES // 2]:
                await again.set_entity(entity_id, "1", ATTRIBUTES)
            began = time.perf_counter()
            removed = await again.sweep()
            rows.append(
                row(
                    "sweep of removed entities",
                    (time.perf_counter() - began) * 1000,
                    "ms",
                    note=f"{len(removed)} removed",
                )
            )
            await again.close()

            progress("last will after a dead connection")
            rows.append(
                row(
                    "offline after a dead connection",
                    await _last_will(cfg, broker),
                    "s",
                    goal=f"<= {1.5 * KEEPALIVE_S:g} (1.5 x keepalive)",
                )
            )
        finally:
            broker.stop()
    return rows


async def _last_will(cfg: Any, broker: Any) -> float:
    """Seconds from a silently dead connection to the broker's ``offline``."""
    from gridwatch.runtime.entity_backend import build_mqtt_backend
    from gridwatch.transport.link import Message
    from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
    from tests.support.fault_proxy import FaultProxy

    proxy = FaultProxy(broker.host, broker.port)
    await proxy.start()
    offline = asyncio.Event()

    def on_status(message: Message) -> None:
        if message.payload == b"offline":
            offline.set()

    watcher = MqttLink("watch", MqttSettings(host=broker.host, port=broker.port))
    await watcher.subscribe("gridwatch/dying/availability", on_status, qos=1)
    await watcher.connect(10)
    victim = build_mqtt_backend(
        "dying", type(cfg)(host=proxy.host, port=proxy.port, keepalive_s=KEEPALIVE_S)
    )
    try:
        await victim.start()
        await victim.set_entity("sensor.x", "1", {})
        await asyncio.sleep(0.2)
        offline.clear()
        began = time.monotonic()
        proxy.blackhole()  # the host vanished: no FIN, no DISCONNECT
        async with asyncio.timeout(10 * KEEPALIVE_S):
            await offline.wait()
        return time.monotonic() - began
    finally:
        await watcher.disconnect()
        await proxy.close()
        await victim.close()
