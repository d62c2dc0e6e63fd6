"""A small Home Assistant REST client for the simulator.

The simulator is a device, not an app: it talks to HA the way a meter
integration's data would arrive, through ``/api/states`` and ``/api/services``
with a long-lived token. Every request is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

# HA answers a state read or write on loopback within milliseconds; a request
# slower than this means HA is restarting or wedged, and the simulator moves
# on to its next step rather than falling behind.
REQUEST_TIMEOUT_S = 5.0


class HaRestError(Exception):
    """A request to HA failed (refused, timed out or answered with an error)."""


class HaRest:
    """REST client for one HA instance.

    Args:
        base_url: e.g. ``http://127.0.0.1:8123``.
        token: a long-lived access token.
        session: an aiohttp session to use; one is created (and closed by
            :meth:`close`) when not given.
    """

    def __init__(
        self, base_url: str, token: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._own_session = session is None
        self._session = session

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            )
        return self._session

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any REST call (JSON in and out; ``None`` for a GET that found nothing).

        Raises:
            HaRestError: refused, timed out or answered with an error.
        """
        return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with (
                asyncio.timeout(REQUEST_TIMEOUT_S),
                self._http().request(method, url, json=body, headers=self._headers) as resp,
            ):
                if resp.status == 404 and method == "GET":
                    return None
                if resp.status >= 400:
                    text = await resp.text()
                    raise HaRestError(f"{method} {path}: HTTP {resp.status}: {text[:200]}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise HaRestError(f"{method} {path}: {err!r}") from err

    async def get_state(self, entity_id: str) -> str | None:
        """The entity's state string, or None when HA does not know it."""
        body = await self._request("GET", f"/api/states/{entity_id}")
        return None if not isinstance(body, dict) else str(body.get("state"))

    async def get_states(self, entity_ids: Iterable[str]) -> dict[str, str | None]:
        """Several states at once (concurrent reads)."""
        ids = list(entity_ids)
        values = await asyncio.gather(*(self.get_state(e) for e in ids))
        return dict(zip(ids, values, strict=True))

    async def set_state(self, entity_id: str, state: str, attributes: Mapping[str, Any]) -> None:
        """Write an entity's state and attributes (as an integration would)."""
        await self._request(
            "POST", f"/api/states/{entity_id}", {"state": state, "attributes": dict(attributes)}
        )

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> None:
        """Call a service, e.g. ``input_boolean.turn_off``."""
        await self._request("POST", f"/api/services/{domain}/{service}", dict(data))
