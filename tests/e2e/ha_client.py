"""Async client the end-to-end tests use to look at (and poke) Home Assistant.

REST for states and services, a websocket for what REST cannot do in 2024.1:
persistent notifications, recorder statistics, event subscriptions and raw
commands. Every request has a timeout; a failed command raises
``HaCommandError`` with HA's error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

REQUEST_TIMEOUT_S = 10.0
# Bounded queue per subscription: a test that stops reading cannot make the
# receive loop grow memory without limit; overflow drops the oldest event.
SUBSCRIPTION_QUEUE_SIZE = 1000

T = TypeVar("T")


class HaCommandError(RuntimeError):
    """A websocket command or REST call was refused by Home Assistant.

    Attributes:
        code: HA's error code (websocket) or the HTTP status as a string.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll an async probe until its value satisfies a predicate.

    Args:
        probe: Returns the current value (e.g. a state dict).
        predicate: True when the value is the one awaited.
        timeout: Seconds before giving up.
        interval: Seconds between probes.
        what: Named in the timeout message.

    Returns:
        The first value that satisfied the predicate.

    Raises:
        TimeoutError: With the last value seen, when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if predicate(value):
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)


class HaWebSocket:
    """One authenticated websocket connection with a single receive loop.

    Results are matched to commands by id; events go to the queue of their
    subscription. Use through ``HaClient.websocket()``.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._receive_loop(), name="ha-ws-reader")

    async def command(self, type_: str, timeout: float = REQUEST_TIMEOUT_S, **fields: Any) -> Any:
        """Send one command and return its result.

        Args:
            type_: The command type, e.g. ``recorder/statistics_during_period``.
            timeout: Seconds to wait for the result.
            **fields: The command's other fields.

        Returns:
            The ``result`` member of HA's answer.

        Raises:
            HaCommandError: HA answered ``success: false``.
            TimeoutError: No answer in time.
            ConnectionError: The socket closed first.
        """
        msg_id, future = self._new_request()
        try:
            async with asyncio.timeout(timeout):
                await self._ws.send_json({"id": msg_id, "type": type_, **fields})
                return await future
        finally:
            self._pending.pop(msg_id, None)

    async def subscribe_events(
        self, event_type: str | None = None
    ) -> asyncio.Queue[dict[str, Any]]:
        """Subscribe to HA events; the queue receives each event dict.

        Args:
            event_type: e.g. ``state_changed``; None for every event.

        Returns:
            A bounded queue of event dicts (``event_type``, ``data``, ``time_fired``...).
        """
        fields = {} if event_type is None else {"event_type": event_type}
        return await self.subscribe("subscribe_events", **fields)

    async def subscribe(self, type_: str, **fields: Any) -> asyncio.Queue[dict[str, Any]]:
        """Run a subscription command; the queue receives each ``event`` payload.

        Args:
            type_: e.g. ``persistent_notification/subscribe``.
            **fields: The command's other fields.

        Returns:
            A bounded queue of the ``event`` members HA sends for it.

        Raises:
            HaCommandError: HA refused the subscription.
            TimeoutError: No answer in time.
        """
        msg_id, future = self._new_request()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIPTION_QUEUE_SIZE)
        # Registered before sending: HA may send the first event (e.g. the
        # current notifications) right after the result.
        self._subscriptions[msg_id] = queue
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await self._ws.send_json({"id": msg_id, "type": type_, **fields})
                await future
        except BaseException:
            self._subscriptions.pop(msg_id, None)
            raise
        finally:
            self._pending.pop(msg_id, None)
        return queue

    def _new_request(self) -> tuple[int, asyncio.Future[Any]]:
        if self._reader.done():
            raise ConnectionError("websocket to Home Assistant is closed")
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        return msg_id, future

    async def _receive_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                self._dispatch(msg.json())
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("websocket to Home Assistant closed"))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        msg_id = msg.get("id")
        if msg.get("type") == "event" and msg_id in self._subscriptions:
            queue = self._subscriptions[msg_id]
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(msg["event"])
            return
        future = self._pending.get(msg_id) if isinstance(msg_id, int) else None
        if future is None or future.done():
            return
        if msg.get("success"):
            future.set_result(msg.get("result"))
        else:
            error = msg.get("error") or {}
            future.set_exception(HaCommandError(str(error.get("code")), str(error.get("message"))))

    async def close(self) -> None:
        """Close the socket and stop the receive loop."""
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class HaClient:
    """REST + websocket access to one Home Assistant, as the owner.

    Args:
        url: Base URL, e.g. ``http://127.0.0.1:8123``.
        token: A long-lived access token.
    """

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open HTTP session (inside ``async with``)."""
        if self._session is None:
            raise RuntimeError("use HaClient inside 'async with'")
        return self._session

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call a REST endpoint and return its decoded JSON (None for 404).

        Args:
            method: HTTP method.
            path: Path under the base URL, e.g. ``/api/states``.
            body: JSON body, if any.

        Returns:
            The decoded answer, or None when HA answered 404.

        Raises:
            HaCommandError: Any other error status.
        """
        async with self.session.request(method, f"{self.url}{path}", json=body) as resp:
            if resp.status == 404:
                return None
            if resp.status >= 400:
                raise HaCommandError(str(resp.status), await resp.text())
            return await resp.json()

    # -- states and services -----------------------------------------------

    async def get_state(self, entity_id: str) -> dict[str, Any] | None:
        """Return an entity's state object, or None if HA does not know it."""
        state: dict[str, Any] | None = await self.rest("GET", f"/api/states/{entity_id}")
        return state

    async def get_states(self) -> dict[str, dict[str, Any]]:
        """Return every state object, keyed by entity id."""
        states = await self.rest("GET", "/api/states")
        return {s["entity_id"]: s for s in states}

    async def set_state(
        self, entity_id: str, state: Any, attributes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write a state the way a REST client does (POST /api/states/<id>).

        Args:
            entity_id: The entity to write.
            state: The new state; sent as a string, as HA stores it.
            attributes: The full attribute set (replaces the old one).

        Returns:
            The state object HA stored.
        """
        body = {"state": str(state), "attributes": dict(attributes or {})}
        stored: dict[str, Any] = await self.rest("POST", f"/api/states/{entity_id}", body)
        return stored

    async def call_service(
        self, domain: str, service: str, data: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Call a service and return the states it changed.

        Raises:
            HaCommandError: HA refused the call (400 for an unknown service).
        """
        changed = await self.rest("POST", f"/api/services/{domain}/{service}", dict(data or {}))
        if changed is None:
            raise HaCommandError("404", f"no service {domain}.{service}")
        result: list[dict[str, Any]] = changed
        return result

    async def set_number(self, entity_id: str, value: float) -> None:
        """Set an input_number through its service (as a user would)."""
        await self.call_service(
            "input_number", "set_value", {"entity_id": entity_id, "value": value}
        )

    async def wait_state(
        self,
        entity_id: str,
        predicate: Callable[[dict[str, Any] | None], bool],
        *,
        timeout: float = 10.0,
    ) -> dict[str, Any] | None:
        """Poll an entity until its state object satisfies ``predicate``.

        Returns:
            The matching state object (None if the predicate accepted absence).

        Raises:
            TimeoutError: The predicate stayed false.
        """
        return await wait_for(
            lambda: self.get_state(entity_id), predicate, timeout=timeout, what=entity_id
        )

    # -- websocket ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[HaWebSocket]:
        """Open an authenticated websocket for the block's duration.

        Raises:
            HaCommandError: Authentication was refused.
        """
        ws_url = f"{self.url}/api/websocket"
        async with self.session.ws_connect(
            ws_url, receive_timeout=None, heartbeat=20, max_msg_size=16 * 1024 * 1024
        ) as raw:
            hello = await raw.receive_json(timeout=REQUEST_TIMEOUT_S)
            if hello.get("type") != "auth_required":
                raise HaCommandError("protocol", f"unexpected greeting {hello}")
            await raw.send_json({"type": "auth", "access_token": self._token})
            auth = await raw.receive_json(timeout=REQUEST_TIMEOUT_S)
            if auth.get("type") != "auth_ok":
                raise HaCommandError("auth", str(auth))
            ws = HaWebSocket(raw)
            try:
                yield ws
            finally:
                await ws.close()

    async def ws_command(self, type_: str, **fields: Any) -> Any:
        """Run one websocket command on a short-lived connection.

        Args:
            type_: Command type.
            **fields: Its fields.

        Returns:
            The command's result.
        """
        async with self.websocket() as ws:
            return await ws.command(type_, **fields)

    async def notifications(self) -> dict[str, dict[str, Any]]:
        """Return the persistent notifications, keyed by notification_id."""
        found = await self.ws_command("persistent_notification/get")
        return {n["notification_id"]: n for n in found}

    async def validate_statistics(self) -> dict[str, list[dict[str, Any]]]:
        """Run the recorder's statistics validation (Developer tools > Statistics).

        Returns:
            Issues per statistic id (``type`` and ``data`` each); ids
            without issues are absent.
        """
        issues: dict[str, list[dict[str, Any]]] = await self.ws_command(
            "recorder/validate_statistics"
        )
        return issues

    async def energy_validate(self, prefs: Mapping[str, Any]) -> dict[str, Any]:
        """Save Energy dashboard preferences, then run the dashboard's validation.

        Args:
            prefs: ``energy/save_prefs`` fields (``energy_sources``,
                ``device_consumption``), the same shape in 2024.1 and 2026.2.

        Returns:
            ``energy/validate``'s answer: ``energy_sources`` (a list of issue
            lists, one per source) and ``device_consumption``.
        """
        async with self.websocket() as ws:
            await ws.command("energy/save_prefs", **dict(prefs))
            result: dict[str, Any] = await ws.command("energy/validate")
        return result

    async def import_statistics(
        self,
        statistic_id: str,
        stats: Iterable[Mapping[str, Any]],
        *,
        unit: str = "kWh",
        name: str | None = None,
        has_sum: bool = True,
        has_mean: bool = False,
    ) -> None:
        """Seed long-term statistics through ``recorder/import_statistics``.

        An entity id (``sensor.x``) imports as source ``recorder``; an
        external id (``domain:name``) as source ``domain``. HA queues the
        import: use ``wait_statistics`` before reading it back.

        Args:
            statistic_id: Entity id or external statistic id.
            stats: Rows with ``start`` (tz-aware datetime or ISO string, on
                the hour) and ``sum`` / ``state`` / ``mean`` / ``min`` / ``max``.
            unit: Unit of measurement of the values.
            name: Display name.
            has_sum: The rows carry a running ``sum`` (energy meters).
            has_mean: The rows carry ``mean``/``min``/``max`` (power sensors).
        """
        source = statistic_id.split(":")[0] if ":" in statistic_id else "recorder"
        rows = [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in stats
        ]
        await self.ws_command(
            "recorder/import_statistics",
            metadata={
                "has_mean": has_mean,
                "has_sum": has_sum,
                "name": name,
                "source": source,
                "statistic_id": statistic_id,
                "unit_of_measurement": unit,
            },
            stats=rows,
        )

    async def statistics_during_period(
        self,
        statistic_ids: list[str],
        start: datetime,
        end: datetime | None = None,
        period: str = "hour",
        types: Iterable[str] = ("sum", "state", "change"),
    ) -> dict[str, list[dict[str, Any]]]:
        """Read statistics back, as the energy tally does.

        Returns:
            Rows per statistic id (ids with no data are absent).
        """
        fields: dict[str, Any] = {
            "statistic_ids": statistic_ids,
            "start_time": start.isoformat(),
            "period": period,
            "types": list(types),
        }
        if end is not None:
            fields["end_time"] = end.isoformat()
        result: dict[str, list[dict[str, Any]]] = await self.ws_command(
            "recorder/statistics_during_period", **fields
        )
        return result

    async def wait_statistics(
        self, statistic_id: str, start: datetime, rows: int, *, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until the recorder returns at least ``rows`` hourly rows.

        Raises:
            TimeoutError: The import did not land in time.
        """

        async def probe() -> list[dict[str, Any]]:
            found = await self.statistics_during_period([statistic_id], start)
            return found.get(statistic_id, [])

        return await wait_for(
            probe, lambda got: len(got) >= rows, timeout=timeout, what=f"statistics {statistic_id}"
        )
