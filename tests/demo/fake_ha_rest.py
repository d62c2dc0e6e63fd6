"""A loopback stand-in for Home Assistant's REST API (states and services).

Only what the simulator uses: read a state, write a state, call a service
(input_boolean.turn_on/turn_off act on the stored state). Checks the bearer
token like HA does; ``down`` makes every request answer 503 (HA restarting).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

TOKEN = "test-token"


class FakeHaRest:
    """The fake HA. ``states`` maps entity id -> {"state", "attributes"}."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.services: list[tuple[str, str, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.writes = 0
        self.down = False
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/states/{entity_id}", self._get)
        app.router.add_post("/api/states/{entity_id}", self._post)
        app.router.add_post("/api/services/{domain}/{service}", self._service)
        app.router.add_post("/api/events/{event}", self._event)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set(self, entity_id: str, state: str) -> None:
        self.states[entity_id] = {"state": state, "attributes": {}}

    def state(self, entity_id: str) -> str | None:
        entry = self.states.get(entity_id)
        return None if entry is None else str(entry["state"])

    def _refuse(self, request: web.Request) -> web.Response | None:
        if self.down:
            return web.json_response({"message": "starting"}, status=503)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "unauthorized"}, status=401)
        return None

    async def _get(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        entity_id = request.match_info["entity_id"]
        if entity_id not in self.states:
            return web.json_response({"message": "Entity not found."}, status=404)
        return web.json_response({"entity_id": entity_id, **self.states[entity_id]})

    async def _post(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        body = await request.json()
        entity_id = request.match_info["entity_id"]
        self.states[entity_id] = {"state": body["state"], "attributes": body.get("attributes", {})}
        self.writes += 1
        return web.json_response({"entity_id": entity_id, **self.states[entity_id]})

    async def _service(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        body = await request.json()
        domain, service = request.match_info["domain"], request.match_info["service"]
        self.services.append((domain, service, body))
        if domain == "input_boolean" and service in ("turn_on", "turn_off"):
            self.set(body["entity_id"], "on" if service == "turn_on" else "off")
        return web.json_response([])

    async def _event(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        self.events.append((request.match_info["event"], await request.json()))
        return web.json_response({"message": f"Event {request.match_info['event']} fired."})
