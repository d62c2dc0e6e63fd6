"""Ports: the only view of Home Assistant that Gridwatch logic and apps get.

Apps receive one :class:`HassPort` (the AppDaemon adapter in production,
``tests.support.fake_hass.FakeHass`` in tests). It is composed from small
protocols so a helper that only reads states can ask for a
:class:`StateReader` alone.

Contract shared by every implementation:

- All methods are called on the event loop (Gridwatch apps are async
  AppDaemon apps). Methods doing I/O are ``async``.
- Callbacks handed to the ports may be plain functions or coroutine
  functions; the implementation awaits the latter. They run on the loop.
- Entities written with :meth:`EntityWriter.set_entity` are owned by the
  port: it republishes each, with its full attributes, whenever HA
  (re)starts, before calling the :meth:`Lifecycle.listen_ha_started`
  callbacks.
- Numeric states and attribute values of ``0``/``False`` arrive in HA
  intact (AppDaemon 4.5.13 would drop them; the adapter works around it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from gridwatch.hass.states import ParsedFloat, missing_reason, parse_float, parse_state

# Default limits; each call can pass its own. A service that HA does not
# answer within 5 s is treated as failed (DESIGN: verified actuator call).
DEFAULT_SERVICE_TIMEOUT_S = 5.0
# Statistics queries over a month of hourly rows can take a few seconds on a
# Raspberry Pi's sqlite recorder.
DEFAULT_COMMAND_TIMEOUT_S = 15.0

# A state/attribute value the ports accept when writing an entity.
StateValue = str | int | float | bool | None


@dataclass(frozen=True)
class EntityState:
    """One entity's state as read from HA, parsed at the boundary.

    Attributes:
        entity_id: e.g. ``sensor.grid_power``.
        raw: the state exactly as HA reported it (``"unavailable"`` included).
        attributes: the entity's attributes (read-only mapping).
        last_changed: when the state last changed (tz-aware), if known.
        last_reported: when HA last received this reading, changed or not
            (HA 2024.4+; ``None`` where HA does not report it). A sensor
            that reports the same value every few seconds keeps an old
            ``last_changed`` but a fresh ``last_reported``.
    """

    entity_id: str
    raw: str | None
    attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    last_changed: datetime | None = None
    last_reported: datetime | None = None

    @property
    def reported_at(self) -> datetime | None:
        """The newest time HA is known to have had this reading.

        ``last_reported`` where HA gives it, else ``last_changed``: the
        time to judge a reading's age by (a steady but live reading is not
        stale on HA 2024.4+; on older HA only a change proves it live).
        """
        if self.last_reported is None:
            return self.last_changed
        if self.last_changed is None:
            return self.last_reported
        return max(self.last_reported, self.last_changed)

    @property
    def state(self) -> str | None:
        """The state text, or ``None`` for ``unknown``/``unavailable``/``''``."""
        return parse_state(self.raw)

    @property
    def available(self) -> bool:
        """True when the state holds a value (not unknown/unavailable/empty)."""
        return missing_reason(self.raw) is None

    def number(self) -> ParsedFloat:
        """The state as a finite number, or the reason it is not one."""
        return parse_float(self.raw)

    def attribute_number(self, name: str) -> ParsedFloat:
        """An attribute as a finite number, or the reason it is not one.

        Args:
            name: attribute name.
        """
        if name not in self.attributes:
            return ParsedFloat(None, f"no attribute {name!r}")
        return parse_float(self.attributes[name])


# --- callbacks -------------------------------------------------------------

CallbackResult = None | Awaitable[None]
StateCallback = Callable[[str, EntityState | None, EntityState | None], CallbackResult]
"""``callback(entity_id, old, new)``; ``None`` when the entity did not / no longer exists."""
EventCallback = Callable[[str, Mapping[str, Any]], CallbackResult]
"""``callback(event_name, data)``."""
TickCallback = Callable[[], CallbackResult]
"""A scheduled callback or lifecycle hook, called with no arguments."""


@runtime_checkable
class Handle(Protocol):
    """A registration (listener, timer) that can be cancelled.

    Cancelling twice, or after the port was closed, is harmless.
    """

    async def cancel(self) -> None:
        """Stop the listener or timer."""


# --- small ports -----------------------------------------------------------


class StateReader(Protocol):
    """Reads entity states."""

    async def get_state(self, entity_id: str) -> EntityState | None:
        """Read one entity.

        Args:
            entity_id: e.g. ``sensor.grid_power``.

        Returns:
            The entity's state (check :attr:`EntityState.available`), or
            ``None`` when HA has no such entity.
        """
        ...


class FreshStateReader(Protocol):
    """Reads entity states from HA itself, not from a cache."""

    async def read_state(self, entity_id: str) -> EntityState | None:
        """Read one entity as HA has it now, past AppDaemon's cache.

        HA 2024.4+ updates ``last_reported`` of an unchanged reading without
        a state_changed event, so no cache fed by events (AppDaemon's) sees
        it move: ask HA when a reading's liveness matters. And AppDaemon
        4.5.13 drops an entity from its cache when HA removes it and ignores
        it when it comes back (an integration or YAML reload), so
        :meth:`StateReader.get_state` answers ``None`` for ever: this read
        does not go through that cache. Slower: for fallbacks and checks.

        Args:
            entity_id: e.g. ``sensor.grid_power``.

        Returns:
            The entity's state, or ``None`` when HA has no such entity.

        Raises:
            HassError: HA could not be asked.
        """
        ...


class StateListener(Protocol):
    """Notifies changes of entity states."""

    async def listen_state(self, entity_id: str, callback: StateCallback) -> Handle:
        """Call ``callback(entity_id, old, new)`` on every change of the
        entity's state or attributes.

        Args:
            entity_id: the entity to watch.
            callback: sync or async callable.

        Returns:
            A handle that cancels the listener.
        """
        ...


class EntityWriter(Protocol):
    """Creates and updates entities the app owns."""

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        """Write an entity's state with its FULL attributes (not a patch).

        The port remembers the entity and republishes it after HA restarts.

        Args:
            entity_id: e.g. ``sensor.gridwatch_headroom``.
            state: the state; numbers and booleans are sent safely
                (``0`` stays ``"0"``, ``False`` becomes ``"off"``).
            attributes: every attribute the entity should have.

        Raises:
            HassError: HA refused the write.
        """
        ...

    async def remove_entity(self, entity_id: str) -> None:
        """Delete an entity the app wrote earlier and forget it (no republish).

        Removing an entity HA does not have is not an error.

        Args:
            entity_id: e.g. ``sensor.old_meter_energy_today``.

        Raises:
            HassError: HA (or the broker) could not be reached.
        """
        ...


class ServiceCaller(Protocol):
    """Calls HA services."""

    async def call_service(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
    ) -> Any:
        """Call a service and wait for HA's answer.

        Args:
            service: ``domain/service`` (``domain.service`` is accepted too).
            data: service data, e.g. ``{"entity_id": "number.x", "value": 0}``.
            timeout_s: how long to wait for HA's answer.

        Returns:
            HA's result (may be ``None``; most services return nothing useful).

        Raises:
            ServiceTimeout: no answer within ``timeout_s``.
            ServiceError: HA refused the call or the service does not exist.
        """
        ...


class EventBus(Protocol):
    """Fires and listens to HA events."""

    async def fire_event(self, event: str, data: Mapping[str, Any]) -> None:
        """Fire an event on HA's bus (listeners of this app get it too).

        Args:
            event: event type, e.g. ``gridwatch_notice``.
            data: JSON-serialisable event data.
        """
        ...

    async def listen_event(self, event: str, callback: EventCallback) -> Handle:
        """Call ``callback(event, data)`` for every event of that type.

        Args:
            event: event type.
            callback: sync or async callable.

        Returns:
            A handle that cancels the listener.
        """
        ...


class WebsocketCommander(Protocol):
    """Sends raw websocket commands (``recorder/statistics_during_period``)."""

    async def websocket_command(
        self,
        command: Mapping[str, Any],
        *,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> Any:
        """Send one command and return HA's ``result``.

        Args:
            command: the command with its ``type`` (no ``id``: the port assigns it).
            timeout_s: how long to wait for the answer.

        Returns:
            The ``result`` member of HA's answer.

        Raises:
            CommandTimeout: no answer within ``timeout_s``.
            CommandError: HA answered ``success: false`` or the socket is down.
        """
        ...


class Clock(Protocol):
    """Wall and monotonic time (logic takes these as arguments)."""

    def now(self) -> datetime:
        """Current wall time, tz-aware (AppDaemon's time zone)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never jumps (for ages, timeouts)."""
        ...


class Scheduler(Protocol):
    """Timers."""

    async def run_every(
        self, callback: TickCallback, interval_s: float, *, first_in_s: float | None = None
    ) -> Handle:
        """Call ``callback()`` every ``interval_s`` seconds.

        Args:
            callback: sync or async callable.
            interval_s: period, > 0.
            first_in_s: delay of the first call (default: ``interval_s``).

        Returns:
            A handle that stops the timer.
        """
        ...

    async def run_in(self, callback: TickCallback, delay_s: float) -> Handle:
        """Call ``callback()`` once after ``delay_s`` seconds.

        Returns:
            A handle that cancels the timer (harmless after it ran).
        """
        ...


class Lifecycle(Protocol):
    """HA restarts and reconnects."""

    async def listen_ha_started(self, callback: TickCallback) -> Handle:
        """Call ``callback()`` every time HA (re)starts or AppDaemon reconnects
        to it, after the port has republished the entities it owns.

        Note: AppDaemon 4.5.13 terminates the apps of HA's namespace when the
        connection drops and creates NEW app objects when it returns, so an
        app mostly sees a restart as a fresh ``setup``; state that must
        survive (the notifier's notices) is kept outside the app object.

        Returns:
            A handle that cancels the hook.
        """
        ...


class HassPort(
    StateReader,
    FreshStateReader,
    StateListener,
    EntityWriter,
    ServiceCaller,
    EventBus,
    WebsocketCommander,
    Clock,
    Scheduler,
    Lifecycle,
    Protocol,
):
    """Everything an app may do with Home Assistant; what apps receive."""


def split_service(service: str) -> tuple[str, str]:
    """Split ``domain/service`` or ``domain.service`` into its two parts.

    Args:
        service: e.g. ``persistent_notification/create``.

    Returns:
        ``(domain, service)``.

    Raises:
        ValueError: not of that form.
    """
    sep = "/" if "/" in service else "."
    domain, _, name = service.partition(sep)
    if not domain or not name or sep in name:
        raise ValueError(f"service {service!r} is not 'domain/service'")
    return domain, name
