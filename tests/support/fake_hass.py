"""An in-memory Home Assistant implementing :class:`gridwatch.hass.ports.HassPort`.

Used by the unit tests of every app. Deterministic: callbacks run inline
(awaited before the call that triggered them returns), timers run only when
the test calls :meth:`FakeHass.advance`, and time comes from a
:class:`~tests.support.clock.FakeClock`.

Quick reference::

    hass = FakeHass()
    hass.seed("sensor.grid_power", "-1200", {"unit_of_measurement": "W"})  # a device
    await hass.set_device_state("sensor.grid_power", "unavailable")  # fires listeners
    hass.script_service("number/set_value", Succeed(set_state=("number.dis", "0")))
    hass.script_service("notify/phone", Fail("no such device"), TimeOut())
    hass.script_websocket("recorder/statistics_during_period", {"sensor.x": [...]})
    await hass.advance(30)              # moves the clock, runs due timers
    await hass.simulate_restart()       # HA forgets set_state entities + notifications
    hass.calls / hass.fired / hass.ws_commands / hass.notifications / hass.entities

Restarts: real AppDaemon 4.5.13 also TERMINATES every app when HA goes
away and creates new app objects when it returns. :meth:`FakeHass.simulate_restart`
models only HA's side (plus the adapter's republish and ha-started hooks);
to test what survives in an app, also ``terminate()`` it and build a new
one with ``tests.support.app_harness.make_app`` (see tests/apps/test_notifier.py).

Services understood without scripting: ``persistent_notification/create``
and ``/dismiss`` (kept in :attr:`FakeHass.notifications`), ``input_number``,
``number`` ``set_value``, ``input_boolean``/``switch`` ``turn_on``/``turn_off``
(set the entity's state, as HA does). Any other unscripted service succeeds
with ``None`` unless ``strict_services=True``, then it raises ServiceError
like HA for an unknown service.
"""

from __future__ import annotations

import inspect
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

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
from gridwatch.runtime.adapter import encode_state_body
from tests.support.clock import FakeClock

# --- scripted outcomes ---------------------------------------------------------


@dataclass(frozen=True)
class Succeed:
    """The call succeeds; optionally sets an entity state as the real service would.

    Attributes:
        result: what the call returns.
        set_state: ``(entity_id, state)`` or ``(entity_id, state, attributes)``.
    """

    result: Any = None
    set_state: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Fail:
    """The call fails with :class:`ServiceError` / :class:`CommandError`."""

    reason: str = "scripted failure"


@dataclass(frozen=True)
class TimeOut:
    """The call times out: the fake clock advances by the call's timeout,
    then :class:`ServiceTimeout` / :class:`CommandTimeout` is raised."""


Outcome = Succeed | Fail | TimeOut


@dataclass(frozen=True)
class ServiceCall:
    """One recorded service call."""

    service: str  # normalised ``domain/service``
    data: Mapping[str, Any]
    timeout_s: float
    at: float  # fake monotonic time of the call


@dataclass
class _Timer:
    due: float
    callback: TickCallback
    interval: float | None
    seq: int
    cancelled: bool = False


class FakeHandle:
    """Cancels one registration of the fake."""

    def __init__(self, on_cancel: Callable[[], None]) -> None:
        self._on_cancel: Callable[[], None] | None = on_cancel

    @property
    def cancelled(self) -> bool:
        return self._on_cancel is None

    async def cancel(self) -> None:
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel()


async def _call(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


# --- the fake ------------------------------------------------------------------


class FakeHass:
    """In-memory HA + AppDaemon behind the :class:`~gridwatch.hass.ports.HassPort` port.

    Args:
        clock: the time source (a new :class:`FakeClock` by default).
        strict_services: unscripted, unknown services fail like in HA.
    """

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        strict_services: bool = False,
        reports_unchanged: bool = True,
    ) -> None:
        self.clock = clock or FakeClock()
        self.strict_services = strict_services
        # HA 2024.4+ keeps last_reported; False: an older HA, which has none.
        self.reports_unchanged = reports_unchanged
        self._states: dict[str, EntityState] = {}
        # What AppDaemon's cache still shows where HA took a write that
        # fired no event (the same value again: HA 2024.4+ moves only
        # last_reported, and nothing tells AppDaemon).
        self._cache_behind: dict[str, EntityState] = {}
        self.owned: dict[str, tuple[StateValue, dict[str, Any]]] = {}
        self.calls: list[ServiceCall] = []
        self.fired: list[tuple[str, dict[str, Any]]] = []
        self.ws_commands: list[dict[str, Any]] = []
        self.notifications: dict[str, dict[str, Any]] = {}
        self.entity_writes: list[tuple[str, str, dict[str, Any]]] = []
        self.restarts = 0
        # Entities AppDaemon's cache has lost (get_state answers None; HA
        # itself, through read_state, still has them).
        self.cache_lost: set[str] = set()
        self.rest_reads: list[str] = []
        self.started = False
        self.closed = False
        self._service_script: dict[str, deque[Outcome]] = defaultdict(deque)
        self._ws_script: dict[str, deque[Any]] = defaultdict(deque)
        self._state_listeners: dict[str, list[StateCallback]] = defaultdict(list)
        self._event_listeners: dict[str, list[EventCallback]] = defaultdict(list)
        self._ha_started: list[TickCallback] = []
        self._timers: list[_Timer] = []
        self._seq = 0

    # ------------------------------------------------------------------
    # Test setup and inspection

    def seed(self, entity_id: str, state: Any, attributes: Mapping[str, Any] | None = None) -> None:
        """Put an entity into HA without notifying listeners (initial world)."""
        self._cache_behind.pop(entity_id, None)
        self._states[entity_id] = self._make_state(entity_id, state, attributes or {})

    async def set_device_state(
        self, entity_id: str, state: Any, attributes: Mapping[str, Any] | None = None
    ) -> None:
        """Change an entity as a device/integration would; fires state listeners.

        ``attributes=None`` keeps the current attributes.
        """
        old = self._states.get(entity_id)
        attrs = dict(old.attributes) if attributes is None and old is not None else attributes
        new = self._make_state(entity_id, state, attrs or {})
        if old is not None and old.raw == new.raw:
            # HA keeps last_changed for the same value (last_reported moves).
            new = EntityState(
                entity_id, new.raw, new.attributes, old.last_changed, new.last_reported
            )
        await self._store(entity_id, old, new)

    async def remove_entity(self, entity_id: str) -> None:
        """Delete an entity from HA; state listeners get ``new=None``.

        Also the port's ``remove_entity``: the entity is no longer owned.
        """
        self.owned.pop(entity_id, None)
        old = self._states.pop(entity_id, None)
        if old is not None:
            for cb in list(self._state_listeners.get(entity_id, ())):
                await _call(cb, entity_id, old, None)

    def state_of(self, entity_id: str) -> EntityState | None:
        """The entity as HA holds it now (sync, for assertions)."""
        return self._states.get(entity_id)

    @property
    def entities(self) -> Mapping[str, EntityState]:
        """Every entity HA holds now."""
        return MappingProxyType(self._states)

    def script_service(self, service: str, *outcomes: Outcome) -> None:
        """Queue outcomes for the next calls of ``service`` (one per call, in order).

        After the queue is empty the service falls back to its default behaviour.
        """
        self._service_script[_norm(service)].extend(outcomes)

    def script_websocket(self, command_type: str, *responses: Any) -> None:
        """Queue responses for commands of ``command_type``: a result value,
        :class:`Fail`, :class:`TimeOut`, or a callable ``f(command) -> result``.
        Unscripted commands fail with :class:`CommandError` ("unknown_command")."""
        self._ws_script[command_type].extend(responses)

    def calls_to(self, service: str) -> list[ServiceCall]:
        """The recorded calls of one service."""
        return [c for c in self.calls if c.service == _norm(service)]

    def events_of(self, event: str) -> list[dict[str, Any]]:
        """The data of every fired event of that type."""
        return [data for name, data in self.fired if name == event]

    def listener_count(self, entity_or_event: str) -> int:
        """Active state + event listeners for an entity id or event type."""
        return len(self._state_listeners.get(entity_or_event, ())) + len(
            self._event_listeners.get(entity_or_event, ())
        )

    @property
    def pending_timers(self) -> int:
        """Timers still scheduled."""
        return sum(1 for t in self._timers if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in time order."""
        end = self.clock.monotonic() + seconds
        while True:
            live = [t for t in self._timers if not t.cancelled and t.due <= end]
            if not live:
                break
            timer = min(live, key=lambda t: (t.due, t.seq))
            if timer.due > self.clock.monotonic():
                self.clock.advance(timer.due - self.clock.monotonic())
            if timer.interval is None:
                timer.cancelled = True
            else:
                timer.due += timer.interval
            await _call(timer.callback)
        self._timers = [t for t in self._timers if not t.cancelled]
        if end > self.clock.monotonic():
            self.clock.advance(end - self.clock.monotonic())

    async def simulate_restart(self, *, republish: bool = True) -> None:
        """HA restarts: it forgets entities written with set_state and every
        persistent notification; then (like the adapter) the owned entities
        are republished and the ha-started hooks run.

        Args:
            republish: False to see what HA holds before the port republishes.
        """
        self.restarts += 1
        for entity_id in self.owned:
            self._states.pop(entity_id, None)
        self.notifications.clear()
        if not republish:
            return
        await self.finish_restart()

    async def finish_restart(self) -> None:
        """Second half of :meth:`simulate_restart` (republish + hooks)."""
        for entity_id, (state, attributes) in list(self.owned.items()):
            await self._write(entity_id, state, attributes)
        for cb in list(self._ha_started):
            await _call(cb)

    # ------------------------------------------------------------------
    # Managed-port lifecycle (what GridwatchApp calls)

    async def start(self) -> None:
        """Nothing to register: :meth:`simulate_restart` drives the hooks."""
        self.started = True

    async def close(self) -> None:
        """Drop every listener, hook and timer, as the adapter's close() does."""
        self._state_listeners.clear()
        self._event_listeners.clear()
        self._ha_started.clear()
        for timer in self._timers:
            timer.cancelled = True
        self._timers.clear()
        self.closed = True

    # ------------------------------------------------------------------
    # HassPort: states

    async def get_state(self, entity_id: str) -> EntityState | None:
        if entity_id in self.cache_lost:
            return None  # AppDaemon 4.5.13 after the entity was removed and re-added
        return self._cache_behind.get(entity_id) or self._states.get(entity_id)

    async def read_state(self, entity_id: str) -> EntityState | None:
        # Past the (simulated) cache: "HA" itself still has the entity.
        self.rest_reads.append(entity_id)
        return self._states.get(entity_id)

    async def listen_state(self, entity_id: str, callback: StateCallback) -> FakeHandle:
        self._state_listeners[entity_id].append(callback)
        return FakeHandle(lambda: _remove(self._state_listeners[entity_id], callback))

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        if "." not in entity_id:
            raise ValueError(f"entity id {entity_id!r} has no domain")
        try:
            # The adapter's own encoder: what it cannot send, the fake refuses.
            encode_state_body(state, attributes)
        except ValueError as err:
            raise HassError(f"cannot write {entity_id}: {err}") from err
        self.owned[entity_id] = (state, dict(attributes))
        await self._write(entity_id, state, attributes)

    # ------------------------------------------------------------------
    # HassPort: services, events, websocket

    async def call_service(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
    ) -> Any:
        name = _norm(service)
        payload = dict(data or {})
        self.calls.append(ServiceCall(name, MappingProxyType(payload), timeout_s, self.clock()))
        script = self._service_script.get(name)
        if script:
            outcome = script.popleft()
            if isinstance(outcome, TimeOut):
                self.clock.advance(timeout_s)
                raise ServiceTimeout(name, timeout_s)
            if isinstance(outcome, Fail):
                raise ServiceError(name, outcome.reason)
            if outcome.set_state is not None:
                entity_id, state, *rest = outcome.set_state
                await self.set_device_state(entity_id, state, rest[0] if rest else None)
            return outcome.result
        return await self._default_service(name, payload)

    async def fire_event(self, event: str, data: Mapping[str, Any]) -> None:
        copy = dict(data)
        self.fired.append((event, copy))
        for cb in list(self._event_listeners.get(event, ())):
            await _call(cb, event, dict(copy))

    async def listen_event(self, event: str, callback: EventCallback) -> FakeHandle:
        self._event_listeners[event].append(callback)
        return FakeHandle(lambda: _remove(self._event_listeners[event], callback))

    async def websocket_command(
        self,
        command: Mapping[str, Any],
        *,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> Any:
        cmd = dict(command)
        self.ws_commands.append(cmd)
        kind = str(cmd.get("type", ""))
        script = self._ws_script.get(kind)
        if not script:
            raise CommandError(kind, "unknown_command: not scripted in FakeHass")
        response = script.popleft()
        if isinstance(response, TimeOut):
            self.clock.advance(timeout_s)
            raise CommandTimeout(kind, timeout_s)
        if isinstance(response, Fail):
            raise CommandError(kind, response.reason)
        return response(cmd) if callable(response) else response

    # ------------------------------------------------------------------
    # HassPort: clock, scheduler, lifecycle

    def now(self) -> datetime:
        return self.clock.now()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    async def run_every(
        self, callback: TickCallback, interval_s: float, *, first_in_s: float | None = None
    ) -> FakeHandle:
        if interval_s <= 0:
            raise ValueError(f"interval must be > 0, got {interval_s}")
        first = interval_s if first_in_s is None else first_in_s
        return self._add_timer(callback, first, interval_s)

    async def run_in(self, callback: TickCallback, delay_s: float) -> FakeHandle:
        return self._add_timer(callback, max(0.0, delay_s), None)

    async def listen_ha_started(self, callback: TickCallback) -> FakeHandle:
        self._ha_started.append(callback)
        return FakeHandle(lambda: _remove(self._ha_started, callback))

    # ------------------------------------------------------------------
    # Internals

    def _add_timer(
        self, callback: TickCallback, delay: float, interval: float | None
    ) -> FakeHandle:
        self._seq += 1
        timer = _Timer(self.clock() + delay, callback, interval, self._seq)
        self._timers.append(timer)

        def cancel() -> None:
            timer.cancelled = True

        return FakeHandle(cancel)

    def _make_state(self, entity_id: str, state: Any, attributes: Mapping[str, Any]) -> EntityState:
        raw = None if state is None else _state_text(state)
        now = self.clock.now()
        # As HA 2024.4+: every write is a report, changed or not.
        reported = now if self.reports_unchanged else None
        return EntityState(entity_id, raw, MappingProxyType(dict(attributes)), now, reported)

    async def _write(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        old = self._states.get(entity_id)
        new = self._make_state(entity_id, state, attributes)
        if old is not None and old.raw == new.raw:
            # HA keeps last_changed when only attributes change.
            new = EntityState(
                entity_id, new.raw, new.attributes, old.last_changed, new.last_reported
            )
        self.entity_writes.append((entity_id, new.raw or "", dict(attributes)))
        await self._store(entity_id, old, new)

    async def _store(self, entity_id: str, old: EntityState | None, new: EntityState) -> None:
        self._states[entity_id] = new
        if old is not None and old.raw == new.raw and old.attributes == new.attributes:
            self._cache_behind.setdefault(entity_id, old)
            return  # HA fires no state_changed for an identical write
        self._cache_behind.pop(entity_id, None)
        for cb in list(self._state_listeners.get(entity_id, ())):
            await _call(cb, entity_id, old, new)

    async def _default_service(self, name: str, data: dict[str, Any]) -> Any:
        domain, service = split_service(name)
        entity_id = data.get("entity_id")
        if name == "persistent_notification/create":
            nid = str(data.get("notification_id") or f"auto_{len(self.notifications)}")
            self.notifications[nid] = {"title": data.get("title"), "message": data.get("message")}
            return None
        if name == "persistent_notification/dismiss":
            self.notifications.pop(str(data.get("notification_id")), None)
            return None
        if isinstance(entity_id, str):
            if service == "set_value" and domain in {"input_number", "number"}:
                await self.set_device_state(entity_id, data.get("value"))
                return None
            if service in {"turn_on", "turn_off"} and domain in {"input_boolean", "switch"}:
                await self.set_device_state(entity_id, "on" if service == "turn_on" else "off")
                return None
        if self.strict_services:
            raise ServiceError(name, f"Service {name.replace('/', '.')} not found")
        return None


def _norm(service: str) -> str:
    domain, name = split_service(service)
    return f"{domain}/{name}"


def _remove(items: list[Any], item: Any) -> None:
    if item in items:
        items.remove(item)


def _state_text(state: Any) -> str:
    """How HA shows a written state: booleans as on/off, numbers as text."""
    if isinstance(state, bool):
        return "on" if state else "off"
    return str(state)
