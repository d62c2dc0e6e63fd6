"""Point the demo's Home Assistant at the demo's broker (``--entities mqtt``).

HA's MQTT integration is configured through a config entry, as a user does
in Settings > Devices & services. The demo's broker gets a new port and
password on every run, so an entry left by an earlier run is deleted first.
"""

from __future__ import annotations

from demo.ha_rest import HaRest, HaRestError

_ENTRIES = "/api/config/config_entries/entry"
_FLOW = "/api/config/config_entries/flow"


async def configure_mqtt(ha: HaRest, host: str, port: int, username: str, password: str) -> None:
    """Replace HA's MQTT config entry with one for this broker.

    Raises:
        HaRestError: HA refused a step (the message says which).
    """
    for entry in await ha.request("GET", f"{_ENTRIES}?domain=mqtt") or []:
        await ha.request("DELETE", f"{_ENTRIES}/{entry['entry_id']}")
    flow = await ha.request("POST", _FLOW, {"handler": "mqtt"})
    if not isinstance(flow, dict) or "flow_id" not in flow:
        raise HaRestError(f"HA did not start the MQTT setup: {flow!r}")
    result = await ha.request(
        "POST",
        f"{_FLOW}/{flow['flow_id']}",
        {"broker": host, "port": port, "username": username, "password": password},
    )
    if not isinstance(result, dict) or result.get("type") != "create_entry":
        raise HaRestError(f"HA refused the MQTT broker settings: {result!r}")
