"""An AppDaemon app that lets end-to-end tests drive the real adapter.

Copied into AppDaemon's app_dir by the harness (this directory has no
``__init__.py``: AppDaemon imports the module by its bare name). On start it
listens for probes, then writes the entities of ``args['entities']``
through the adapter. Each
``gridwatch_e2e_probe`` event (fired by the test through HA's REST API) runs
one adapter operation, and the outcome is written to
``sensor.e2e_probe_<request_id>`` (attributes ``ok``, ``result`` or
``error_type`` / ``error_types`` / ``error``), where the test reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from appdaemon.adapi import ADAPI

from gridwatch.runtime.adapter import AppDaemonHassPort

PROBE_EVENT = "gridwatch_e2e_probe"


class AdapterProbe(ADAPI):
    """Runs adapter operations on request and reports the outcome."""

    async def initialize(self) -> None:
        self.port = AppDaemonHassPort(self)
        await self.port.start()
        # Listen first: once the entities show in HA, probes are heard.
        await self.port.listen_event(PROBE_EVENT, self.on_probe)
        for entity_id, spec in dict(self.args.get("entities", {})).items():
            await self.port.set_entity(entity_id, spec["state"], spec["attributes"])

    async def terminate(self) -> None:
        await self.port.close()

    async def on_probe(self, _event: str, data: Mapping[str, Any]) -> None:
        request_id = str(data["request_id"])
        try:
            result = await self.run(str(data["op"]), data)
            outcome: dict[str, Any] = {"ok": True, "result": result}
        except Exception as err:  # the point of the probe: report what was raised
            outcome = {
                "ok": False,
                "error_type": type(err).__name__,
                "error_types": [c.__name__ for c in type(err).__mro__],
                "error": str(err),
            }
        await self.port.set_entity(f"sensor.e2e_probe_{request_id}", "done", outcome)

    async def run(self, op: str, data: Mapping[str, Any]) -> Any:
        if op == "set_entity":
            await self.port.set_entity(data["entity_id"], data["state"], data["attributes"])
            return None
        if op == "get_state":
            state = await self.port.get_state(data["entity_id"])
            if state is None:
                return None
            return {"raw": state.raw, "attributes": dict(state.attributes)}
        if op == "read_state":
            state = await self.port.read_state(data["entity_id"])
            if state is None:
                return None
            return {
                "raw": state.raw,
                "last_changed": _iso(state.last_changed),
                "last_reported": _iso(state.last_reported),
            }
        if op == "call_service":
            return await self.port.call_service(
                data["service"], data.get("data"), timeout_s=float(data.get("timeout_s", 5))
            )
        if op == "websocket":
            return await self.port.websocket_command(
                data["command"], timeout_s=float(data.get("timeout_s", 15))
            )
        if op == "republish":
            return await self.port.republish()
        raise ValueError(f"unknown probe op {op!r}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
