"""The suite-wide entity backend choice, applied to an app's HA port.

``entities: {backend: rest}`` (the default) leaves the adapter as it is:
entities go to HA's ``/api/states``. ``backend: mqtt`` wraps the app's port
in :class:`MqttEntitiesPort`: entity writes go to an
:class:`~gridwatch.runtime.mqtt_entities.MqttEntityBackend`, everything else
(reads, services, events, timers) still goes through AppDaemon. The apps
see the same :class:`~gridwatch.hass.ports.HassPort` either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from gridwatch.config.entities_schema import EntitiesConfig, MqttEntitiesConfig
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import (
    DEFAULT_COMMAND_TIMEOUT_S,
    DEFAULT_SERVICE_TIMEOUT_S,
    EntityState,
    EventCallback,
    Handle,
    HassPort,
    StateCallback,
    StateValue,
    TickCallback,
)
from gridwatch.hass.states import slugify
from gridwatch.runtime.mqtt_discovery import DiscoveryDevice, DiscoveryLayout
from gridwatch.runtime.mqtt_entities import MqttEntityBackend
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings

# HA's websocket error code when config/entity_registry/get finds no entry.
REGISTRY_NOT_FOUND: Final = "not_found"
# The lookup is a local websocket round trip; it holds up the entity's first
# write, which must not wait for a slow HA (the write itself needs no HA).
REGISTRY_LOOKUP_TIMEOUT_S: Final = 3.0
# The suite's version, shown in HA as the entities' origin.
SUITE_VERSION: Final = "0.1.0"


class _ManagedPort(HassPort, Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


def app_device(app_name: str) -> DiscoveryDevice:
    """The device of an app (named as in apps.yaml)."""
    return DiscoveryDevice(identifier=f"gridwatch_{slugify(app_name)}", name=app_name)


def sub_device(app_name: str, name: str, model: str) -> DiscoveryDevice:
    """A device of its own inside an app (a link of the link monitor).

    No ``via_device``: HA resolves it only to a device that already exists,
    and the link monitor has no entity of its own to create the app's.
    """
    parent = app_device(app_name)
    return DiscoveryDevice(
        identifier=f"{parent.identifier}_{slugify(name)}",
        name=name,
        model=f"{model} ({app_name})",
    )


def mqtt_settings(app_name: str, cfg: MqttEntitiesConfig, layout: DiscoveryLayout) -> MqttSettings:
    """The link settings of an app's entity backend."""
    return MqttSettings(
        host=cfg.host,
        port=cfg.port,
        # Stable per app: the broker replaces a stale session of the same app.
        client_id=f"gridwatch-entities-{slugify(app_name)}",
        username=cfg.username,
        password=cfg.password,
        keepalive_s=cfg.keepalive_s,
        tls=cfg.tls,
        ca_file=cfg.ca_file,
        tls_insecure=cfg.tls_insecure,
        availability_topic=layout.availability_topic,
        default_qos=1,
    )


def build_mqtt_backend(
    app_name: str,
    cfg: MqttEntitiesConfig,
    *,
    devices: Mapping[str, DiscoveryDevice] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    configured_apps: Callable[[], set[str]] | None = None,
) -> MqttEntityBackend:
    """The MQTT backend of one app (not yet started)."""
    layout = DiscoveryLayout(
        app=slugify(app_name),
        discovery_prefix=cfg.discovery_prefix,
        base_topic=cfg.base_topic,
    )
    link = MqttLink(
        f"{slugify(app_name)}_entities",
        mqtt_settings(app_name, cfg, layout),
        logger=logger if isinstance(logger, logging.Logger) else None,
    )
    return MqttEntityBackend(
        link,
        layout,
        app_device(app_name),
        devices=devices,
        logger=logger,
        birth_topic=cfg.birth_topic,
        configured_apps=configured_apps,
        sw_version=SUITE_VERSION,
    )


class MqttEntitiesPort:
    """A HassPort whose entity writes go to MQTT discovery.

    Before an entity is first announced, a state of the same id that HA's
    entity registry does not know is deleted: it was written by the REST
    backend, and HA would otherwise give the MQTT entity a ``_2`` id.

    Args:
        inner: the app's AppDaemon port (FakeHass in tests).
        backend: the app's MQTT backend.
        logger: the app's logger.
    """

    def __init__(
        self,
        inner: _ManagedPort,
        backend: MqttEntityBackend,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.inner = inner
        self.backend = backend
        self._log = logger or logging.getLogger(__name__)
        self._checked: set[str] = set()

    async def start(self) -> None:
        await self.inner.start()
        await self.backend.start()

    async def close(self) -> None:
        try:
            await self.backend.close()
        finally:
            await self.inner.close()

    async def settle(self, keep: Iterable[str] = ()) -> None:
        """The app has started: remove ghosts (see ``MqttEntityBackend.sweep``)."""
        await self.backend.sweep(keep)

    # --- entity writes: MQTT ------------------------------------------------

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        if entity_id not in self._checked:
            await self._drop_rest_leftover(entity_id)
        await self.backend.set_entity(entity_id, state, attributes)
        # HADashboard reads AppDaemon's cache, which learns of an entity HA
        # creates later only if told (see AppDaemonHassPort.track_entity).
        track = getattr(self.inner, "track_entity", None)
        if track is not None:
            try:
                await track(entity_id, state, attributes)
            except Exception as err:  # the write itself succeeded
                self._log.debug("AppDaemon cache of %s: %s", entity_id, err)

    async def remove_entity(self, entity_id: str) -> None:
        await self.backend.remove_entity(entity_id)

    async def _drop_rest_leftover(self, entity_id: str) -> None:
        try:
            await self.inner.websocket_command(
                {"type": "config/entity_registry/get", "entity_id": entity_id},
                timeout_s=REGISTRY_LOOKUP_TIMEOUT_S,
            )
        except HassError as err:
            if REGISTRY_NOT_FOUND not in str(err):
                # HA unreachable or slow: decide on a later write, never
                # delete the state of an entity that may be registered.
                self._log.debug("could not look %s up in HA's registry: %s", entity_id, err)
                return
            try:
                if await self.inner.get_state(entity_id) is not None:
                    self._log.info("MQTT entities: replacing %s written over REST", entity_id)
                    await self.inner.remove_entity(entity_id)
            except HassError as err2:
                self._log.debug("could not remove the REST state of %s: %s", entity_id, err2)
                return
        self._checked.add(entity_id)

    # --- everything else: the inner port ------------------------------------

    async def get_state(self, entity_id: str) -> EntityState | None:
        return await self.inner.get_state(entity_id)

    async def read_state(self, entity_id: str) -> EntityState | None:
        return await self.inner.read_state(entity_id)

    async def listen_state(self, entity_id: str, callback: StateCallback) -> Handle:
        return await self.inner.listen_state(entity_id, callback)

    async def call_service(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
    ) -> Any:
        return await self.inner.call_service(service, data, timeout_s=timeout_s)

    async def fire_event(self, event: str, data: Mapping[str, Any]) -> None:
        await self.inner.fire_event(event, data)

    async def listen_event(self, event: str, callback: EventCallback) -> Handle:
        return await self.inner.listen_event(event, callback)

    async def websocket_command(
        self, command: Mapping[str, Any], *, timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    ) -> Any:
        return await self.inner.websocket_command(command, timeout_s=timeout_s)

    def now(self) -> datetime:
        return self.inner.now()

    def monotonic(self) -> float:
        return self.inner.monotonic()

    async def run_every(
        self, callback: TickCallback, interval_s: float, *, first_in_s: float | None = None
    ) -> Handle:
        return await self.inner.run_every(callback, interval_s, first_in_s=first_in_s)

    async def run_in(self, callback: TickCallback, delay_s: float) -> Handle:
        return await self.inner.run_in(callback, delay_s)

    async def listen_ha_started(self, callback: TickCallback) -> Handle:
        return await self.inner.listen_ha_started(callback)


def wrap_port(
    port: _ManagedPort,
    app_name: str,
    entities: EntitiesConfig,
    *,
    devices: Mapping[str, DiscoveryDevice] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    configured_apps: Callable[[], set[str]] | None = None,
) -> _ManagedPort:
    """The port an app gets for its entities config."""
    if entities.backend != "mqtt" or entities.mqtt is None:
        return port
    backend = build_mqtt_backend(
        app_name, entities.mqtt, devices=devices, logger=logger, configured_apps=configured_apps
    )
    return MqttEntitiesPort(port, backend, logger)
