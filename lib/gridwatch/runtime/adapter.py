"""The AppDaemon 4.5.13 adapter: :class:`~gridwatch.hass.ports.HassPort` for a live app.

With ``app_base.py`` the only module that touches AppDaemon. It absorbs the
traps DESIGN.md lists under "Writing to Home Assistant":

- ``set_state`` goes through AppDaemon's HTTP kwargs cleaner, which drops
  every value equal to ``0``/``False`` (``0 in (None, False)`` is true), in
  the state AND nested in attributes; HA answers 400 for a missing state.
  :meth:`AppDaemonHassPort.set_entity` therefore POSTs ``/api/states`` itself
  on the HASS plugin's authenticated session, with the state as text and
  the attributes JSON-encoded untouched.
- Entities written with ``set_state`` vanish from HA when it restarts. The
  adapter remembers every entity it wrote and republishes it with its full
  attributes on AppDaemon's ``plugin_started`` event (fired when the HASS
  plugin (re)connects). Note that AppDaemon 4.5.13 also *terminates* every
  app of the HA namespace when the connection drops and creates new app
  objects when it comes back, so a live app mostly republishes through its
  own ``setup``; the hook covers the cases where the app survives.
- ``call_service`` reports a timeout as ``{'success': False, 'ad_status':
  'TIMEOUT'}`` and an HA refusal as ``{'success': False, 'error': {...}}``,
  and returns ``None`` when the plugin is disconnected or AppDaemon's own
  service registry rejects the call: all become :class:`ServiceTimeout` /
  :class:`ServiceError`.
- AppDaemon API methods called on the loop return tasks: every one is awaited.
- Raw websocket commands go through the HASS plugin's ``websocket_send_json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from gridwatch.hass.errors import (
    CommandError,
    CommandTimeout,
    HassError,
    ServiceError,
    ServiceTimeout,
)
from gridwatch.hass.ports import (
    DEFAULT_COMMAND_TIMEOUT_S,
    DEFAULT_SERVICE_TIMEOUT_S,
    EntityState,
    EventCallback,
    StateCallback,
    StateValue,
    TickCallback,
    split_service,
)
from gridwatch.hass.states import parse_timestamp, state_text

if TYPE_CHECKING:
    from appdaemon.adapi import ADAPI

_LOGGER = logging.getLogger(__name__)

# Our own guard around AppDaemon's: if AppDaemon's websocket timeout (set to
# the caller's) does not fire, we stop waiting this much later.
_GUARD_MARGIN_S: Final = 2.0
# Writing one entity is a small local HTTP request; a slower HA is unhealthy.
SET_STATE_TIMEOUT_S: Final = 10.0
# AppDaemon's event that the HASS plugin (re)connected to a started HA.
PLUGIN_STARTED_EVENT: Final = "plugin_started"
# Keys AppDaemon's fire_event / websocket_send_json consume themselves: they
# would silently vanish from the data, so they are refused instead.
_RESERVED_EVENT_KEYS: Final = frozenset({"namespace", "timeout"})
_RESERVED_COMMAND_KEYS: Final = frozenset({"timeout", "silent", "id"})


class _AdHandle:
    """Cancels one AppDaemon registration (listener or timer)."""

    def __init__(self, cancel: Callable[[], Awaitable[Any]]) -> None:
        self._cancel: Callable[[], Awaitable[Any]] | None = cancel

    async def cancel(self) -> None:
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            await cancel()


async def _run(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def encode_state_body(state: StateValue, attributes: Mapping[str, Any]) -> bytes:
    """The JSON body of ``POST /api/states/<entity_id>``.

    Unlike AppDaemon's cleaner this keeps ``0``, ``0.0`` and ``False``
    attributes as they are; datetimes become ISO strings.

    Args:
        state: the state (sent as text, see :func:`~gridwatch.hass.states.state_text`).
        attributes: every attribute of the entity.

    Returns:
        UTF-8 JSON.

    Raises:
        ValueError: an attribute is NaN or infinite (not representable in JSON).
    """
    body = {"state": state_text(state), "attributes": dict(attributes)}
    return json.dumps(body, default=_json_default, allow_nan=False).encode()


def entity_state_from_ad(entity_id: str, raw: Any) -> EntityState | None:
    """Turn AppDaemon's ``attribute="all"`` state dict into an :class:`EntityState`.

    Args:
        entity_id: the entity.
        raw: AppDaemon's dict (``state``, ``attributes``, ``last_changed``) or None.

    Returns:
        The parsed state, or ``None`` when AppDaemon has no such entity.
    """
    if not isinstance(raw, Mapping):
        return None
    state = raw.get("state")
    attributes = raw.get("attributes")
    return EntityState(
        entity_id=entity_id,
        raw=None if state is None else state_text(state),
        attributes=MappingProxyType(dict(attributes) if isinstance(attributes, Mapping) else {}),
        last_changed=parse_timestamp(raw.get("last_changed")),
    )


def service_result(service: str, timeout_s: float, response: Any) -> Any:
    """Interpret what AppDaemon returned for a HASS service call.

    Args:
        service: ``domain/service``, for messages.
        timeout_s: the timeout the call had, for messages.
        response: AppDaemon's return value.

    Returns:
        HA's ``result`` member (often ``None``).

    Raises:
        ServiceTimeout: ``ad_status`` is ``TIMEOUT``.
        ServiceError: any other failure, including no response at all.
    """
    if not isinstance(response, Mapping):
        raise ServiceError(service, "no response (Home Assistant disconnected or service unknown)")
    status = response.get("ad_status")
    if status == "TIMEOUT":
        raise ServiceTimeout(service, timeout_s)
    if status == "TERMINATING":
        raise ServiceError(service, "AppDaemon is shutting down")
    if response.get("success") is not True:
        error = response.get("error")
        if isinstance(error, Mapping):
            raise ServiceError(service, f"{error.get('code')}: {error.get('message')}")
        raise ServiceError(service, f"unsuccessful response {dict(response)!r}")
    return response.get("result")


def command_result(command_type: str, timeout_s: float, response: Any) -> Any:
    """Interpret what ``websocket_send_json`` returned.

    Raises:
        CommandTimeout: ``ad_status`` is ``TIMEOUT``.
        CommandError: any other failure, including no response at all.
    """
    if not isinstance(response, Mapping):
        raise CommandError(command_type, "not connected to Home Assistant")
    if response.get("ad_status") == "TIMEOUT":
        raise CommandTimeout(command_type, timeout_s)
    if response.get("success") is not True:
        error = response.get("error")
        if isinstance(error, Mapping):
            raise CommandError(command_type, f"{error.get('code')}: {error.get('message')}")
        raise CommandError(command_type, f"status {response.get('ad_status')}")
    return response.get("result")


class AppDaemonHassPort:
    """:class:`~gridwatch.hass.ports.HassPort` on top of a running AppDaemon app.

    Args:
        app: the AppDaemon app (an ``ADAPI`` instance) this port acts for.

    Call :meth:`start` once (registers the reconnect hook) and :meth:`close`
    from the app's ``terminate``.
    """

    def __init__(self, app: ADAPI) -> None:
        # Typed Any on purpose: AppDaemon annotates its sync_decorator methods
        # with the coroutine's result, but on the loop they return a Task
        # that must be awaited (DESIGN: "await them").
        self._app: Any = app
        self._owned: dict[str, tuple[StateValue, dict[str, Any]]] = {}
        self._in_ad_cache: set[str] = set()
        self._ha_started: list[TickCallback] = []
        self._handles: list[_AdHandle] = []
        self._started_handle: _AdHandle | None = None

    @property
    def owned_entities(self) -> Mapping[str, tuple[StateValue, Mapping[str, Any]]]:
        """Entities this port wrote, with the last state and attributes."""
        return MappingProxyType(self._owned)

    async def start(self) -> None:
        """Listen for HA (re)connects to republish owned entities."""
        if self._started_handle is None:
            self._started_handle = await self._listen_event(PLUGIN_STARTED_EVENT, self._on_started)

    async def close(self) -> None:
        """Cancel every listener and timer this port registered."""
        handles, self._handles = self._handles, []
        if self._started_handle is not None:
            handles.append(self._started_handle)
            self._started_handle = None
        for handle in handles:
            try:
                await handle.cancel()
            except Exception:  # teardown must go on; AppDaemon cleans up anyway
                _LOGGER.debug("cancel failed during close", exc_info=True)

    # ------------------------------------------------------------------
    # States

    async def get_state(self, entity_id: str) -> EntityState | None:
        raw = await self._app.get_state(entity_id, attribute="all")
        state = entity_state_from_ad(entity_id, raw)
        if state is None and entity_id in self._owned:
            # set_entity bypasses AppDaemon, whose cache learns of a new
            # entity only when HA's state_changed event comes back: until
            # then, answer with what we wrote.
            value, attributes = self._owned[entity_id]
            return EntityState(entity_id, state_text(value), MappingProxyType(dict(attributes)))
        return state

    async def fetch_state_from_ha(
        self, entity_id: str, *, timeout_s: float = 5.0
    ) -> EntityState | None:
        plugin = self._plugin()
        fetch = getattr(plugin, "get_plugin_state", None)
        if fetch is None:
            return None
        try:
            async with asyncio.timeout(timeout_s + _GUARD_MARGIN_S):
                raw = await fetch(entity_id, timeout=timeout_s)
        except Exception:  # a failed read is "no answer"; the caller reads again
            _LOGGER.debug("REST read of %s failed", entity_id, exc_info=True)
            return None
        return entity_state_from_ad(entity_id, raw)

    async def listen_state(self, entity_id: str, callback: StateCallback) -> _AdHandle:
        async def on_change(
            entity: str, _attribute: str, old: Any, new: Any, **_kwargs: Any
        ) -> None:
            await _run(
                callback,
                entity,
                entity_state_from_ad(entity, old),
                entity_state_from_ad(entity, new),
            )

        ad_handle = await self._app.listen_state(on_change, entity_id, attribute="all")
        return self._track(lambda: self._app.cancel_listen_state(ad_handle, silent=True))

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        self._owned[entity_id] = (state, dict(attributes))
        await self._post_state(entity_id, state, attributes)
        if entity_id not in self._in_ad_cache:
            # AppDaemon 4.5.13 applies HA's state_changed events only to
            # entities already in its own state cache, so an entity first
            # written by this POST would stay invisible to HADashboard and
            # get_state: add it once.
            if not await self._app.entity_exists(entity_id):
                await self._app.add_entity(entity_id, state_text(state), dict(attributes))
            self._in_ad_cache.add(entity_id)

    async def _post_state(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        plugin = self._plugin()
        session = getattr(plugin, "session", None)
        config = getattr(plugin, "config", None)
        if session is None or config is None or not hasattr(config, "ha_url"):
            raise HassError(f"cannot write {entity_id}: no Home Assistant plugin connected")
        try:
            body = encode_state_body(state, attributes)
        except ValueError as err:  # NaN / infinity: JSON (and HA) cannot carry them
            raise HassError(f"cannot write {entity_id}: {err}") from err
        url = config.ha_url / f"api/states/{entity_id}"
        try:
            async with asyncio.timeout(SET_STATE_TIMEOUT_S):
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    status = int(resp.status)
                    text = (await resp.text())[:200] if status >= 400 else ""
        except TimeoutError as err:
            raise HassError(f"writing {entity_id}: no answer in {SET_STATE_TIMEOUT_S:g} s") from err
        except Exception as err:  # aiohttp errors, closed session: one typed error
            raise HassError(f"writing {entity_id} failed: {type(err).__name__}: {err}") from err
        if status >= 400:
            raise HassError(f"HA refused {entity_id}: HTTP {status}: {text}")

    # ------------------------------------------------------------------
    # Services, events, websocket

    async def call_service(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
    ) -> Any:
        domain, name = split_service(service)
        full = f"{domain}/{name}"
        # service_data carries the data whole: keys like entity_id/target/
        # namespace would otherwise be taken by AppDaemon's own parameters.
        # ``timeout`` is not passed: ADAPI would forward it to HA as data.
        try:
            async with asyncio.timeout(timeout_s + _GUARD_MARGIN_S):
                response = await self._app.call_service(
                    full,
                    service_data=dict(data or {}),
                    hass_timeout=timeout_s,
                    suppress_log_messages=True,
                )
        except TimeoutError as err:
            raise ServiceTimeout(full, timeout_s) from err
        except HassError:
            raise
        except Exception as err:  # AppDaemon ServiceException / DomainException ...
            raise ServiceError(full, f"{type(err).__name__}: {err}") from err
        return service_result(full, timeout_s, response)

    async def fire_event(self, event: str, data: Mapping[str, Any]) -> None:
        clash = _RESERVED_EVENT_KEYS & set(data)
        if clash:
            raise ValueError(f"event data keys {sorted(clash)} are reserved by AppDaemon")
        await self._app.fire_event(event, **dict(data))

    async def listen_event(self, event: str, callback: EventCallback) -> _AdHandle:
        return await self._listen_event(event, callback)

    async def _listen_event(self, event: str, callback: EventCallback) -> _AdHandle:
        async def on_event(name: str, data: Any, **_kwargs: Any) -> None:
            payload = dict(data) if isinstance(data, Mapping) else {}
            # The HASS plugin adds origin/time_fired/context here, and ADAPI's
            # fire_event adds "timeout": None to locally fired events: neither
            # is event data (fire_event refuses a "timeout" key).
            payload.pop("metadata", None)
            if "timeout" in payload and payload["timeout"] is None:
                del payload["timeout"]
            await _run(callback, name, payload)

        ad_handle = await self._app.listen_event(on_event, event)
        return self._track(lambda: self._app.cancel_listen_event(ad_handle, silent=True))

    async def websocket_command(
        self,
        command: Mapping[str, Any],
        *,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> Any:
        kind = str(command.get("type", ""))
        if not kind:
            raise ValueError("websocket command needs a 'type'")
        clash = _RESERVED_COMMAND_KEYS & set(command)
        if clash:
            raise ValueError(f"command keys {sorted(clash)} are reserved by AppDaemon")
        plugin = self._plugin()
        send = getattr(plugin, "websocket_send_json", None)
        if send is None:
            raise CommandError(kind, "no Home Assistant plugin in this namespace")
        try:
            async with asyncio.timeout(timeout_s + _GUARD_MARGIN_S):
                response = await send(timeout=timeout_s, silent=True, **dict(command))
        except TimeoutError as err:
            raise CommandTimeout(kind, timeout_s) from err
        except Exception as err:  # ConnectionResetError and friends
            raise CommandError(kind, f"{type(err).__name__}: {err}") from err
        return command_result(kind, timeout_s, response)

    # ------------------------------------------------------------------
    # Clock and scheduler

    def now(self) -> dt.datetime:
        tz = getattr(getattr(self._app, "AD", None), "tz", None) or dt.UTC
        return dt.datetime.now(tz)

    def monotonic(self) -> float:
        return time.monotonic()

    async def run_every(
        self, callback: TickCallback, interval_s: float, *, first_in_s: float | None = None
    ) -> _AdHandle:
        if interval_s <= 0:
            raise ValueError(f"interval must be > 0, got {interval_s}")
        first = interval_s if first_in_s is None else max(0.0, first_in_s)

        async def tick(**_kwargs: Any) -> None:
            await _run(callback)

        # AppDaemon moves a start that is already past by one interval, so
        # "run now" must be its "immediate", not the current time.
        start: Any = (
            "immediate" if first <= 0 else await self._app.get_now() + dt.timedelta(seconds=first)
        )
        ad_handle = await self._app.run_every(tick, start, interval_s)
        return self._track(lambda: self._app.cancel_timer(ad_handle, silent=True))

    async def run_in(self, callback: TickCallback, delay_s: float) -> _AdHandle:
        async def once(**_kwargs: Any) -> None:
            await _run(callback)

        ad_handle = await self._app.run_in(once, max(0.0, delay_s))
        return self._track(lambda: self._app.cancel_timer(ad_handle, silent=True))

    async def listen_ha_started(self, callback: TickCallback) -> _AdHandle:
        self._ha_started.append(callback)

        async def remove() -> None:
            if callback in self._ha_started:
                self._ha_started.remove(callback)

        return _AdHandle(remove)

    # ------------------------------------------------------------------
    # Internals

    def _plugin(self) -> Any:
        ad = getattr(self._app, "AD", None)
        if ad is None:
            return None
        return ad.plugins.get_plugin_object(self._app.namespace)

    def _track(self, cancel: Callable[[], Awaitable[Any]]) -> _AdHandle:
        handle = _AdHandle(cancel)
        self._handles.append(handle)
        return handle

    async def _on_started(self, _event: str, _data: Mapping[str, Any]) -> None:
        await self.republish()
        for callback in list(self._ha_started):
            try:
                await _run(callback)
            except Exception:
                _LOGGER.exception("ha-started hook %r raised", callback)

    async def republish(self) -> int:
        """Write every owned entity again with its full attributes.

        Returns:
            How many entities were written; failures are logged, not raised.
        """
        written = 0
        for entity_id, (state, attributes) in list(self._owned.items()):
            try:
                await self._post_state(entity_id, state, attributes)
                written += 1
            except HassError as err:
                _LOGGER.warning("republishing %s failed: %s", entity_id, err)
        return written
