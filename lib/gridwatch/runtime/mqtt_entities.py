"""The MQTT entity backend: an app's entities announced by MQTT discovery.

:class:`MqttEntityBackend` implements the ``set_entity`` / ``remove_entity``
half of the :class:`~gridwatch.hass.ports.EntityWriter` port over one
:class:`~gridwatch.transport.mqtt_link.MqttLink` per app:

- The first write of an entity publishes its discovery config (retained;
  again only when name, unit, classes or icon change), then every write
  publishes the state and the JSON attributes (retained). HA keeps them
  across its own restarts by reading the retained messages back.
- The link's last will marks the app ``offline`` (retained) when AppDaemon
  dies; it publishes ``online`` after each connect and ``offline`` when the
  app stops. Every entity lists that topic in its availability.
- A retained manifest (``<base>/<app>/manifest``) lists what the app
  announced. When the app has started, :meth:`MqttEntityBackend.sweep`
  removes what an earlier run announced and this one no longer has (a link
  or meter deleted from apps.yaml), and the manifests of Gridwatch apps no
  longer in apps.yaml, so no ghost entity stays in HA.
- HA's birth message (``homeassistant/status: online``) and every reconnect
  of the link make the backend publish everything again, for a broker that
  lost its retained store.

Transport errors become :class:`~gridwatch.hass.errors.HassError`, which the
apps' writers already treat as "HA is away, retry next round".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import StateValue
from gridwatch.runtime.mqtt_discovery import (
    DiscoveryDevice,
    DiscoveryLayout,
    EntityTopics,
    attributes_payload,
    discovery_config,
    dump,
    manifest_payload,
    parse_manifest,
    state_payload,
)
from gridwatch.transport.errors import TransportError
from gridwatch.transport.link import Message

# Retained configs and states must reach the broker: at-least-once.
QOS: Final = 1
# How long to wait for the broker's retained manifests after subscribing.
# Mosquitto sends retained messages right after the SUBACK, so the probe
# (published after) normally arrives within milliseconds.
MANIFEST_WAIT_S: Final = 5.0
# The first connect at app start; after that the link reconnects by itself.
CONNECT_TIMEOUT_S: Final = 15.0


class BackendLink(Protocol):
    """What the backend needs of an MQTT link (``MqttLink``'s public API)."""

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        ...

    async def connect(self, timeout: float | None = None) -> None:
        """Connect once, then keep reconnecting until disconnect."""
        ...

    def start(self) -> None:
        """Connect in the background."""
        ...

    async def disconnect(self) -> None:
        """Close (publishes the retained ``offline``)."""
        ...

    async def publish(
        self,
        topic: str,
        payload: bytes | str | None,
        qos: int | None = None,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Publish one message."""
        ...

    async def subscribe(self, key: str, callback: Callable[[Message], None], **options: Any) -> Any:
        """Subscribe (replayed after every reconnect)."""
        ...


class MqttEntityBackend:
    """One app's entities over MQTT discovery (see the module docstring).

    Args:
        link: the app's MQTT link (its availability topic must be
            ``layout.availability_topic``).
        layout: the app's topic layout.
        app_device: the app's device.
        devices: entity id -> device, for entities grouped under another
            device (a link's); all others belong to ``app_device``.
        logger: the app's logger.
        birth_topic: HA's birth topic (``online`` there: publish again).
        configured_apps: the slugs of the Gridwatch apps in apps.yaml now;
            manifests of other apps are swept. None: never sweep other apps.
        sw_version: the suite's version, shown as the origin's.
    """

    def __init__(
        self,
        link: BackendLink,
        layout: DiscoveryLayout,
        app_device: DiscoveryDevice,
        *,
        devices: Mapping[str, DiscoveryDevice] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        birth_topic: str | None = "homeassistant/status",
        configured_apps: Callable[[], set[str]] | None = None,
        sw_version: str | None = None,
    ) -> None:
        self._link = link
        self.layout = layout
        self.app_device = app_device
        self._devices = dict(devices or {})
        self._log = logger or logging.getLogger(__name__)
        self._birth_topic = birth_topic
        self._configured_apps = configured_apps
        self._sw_version = sw_version
        self._announced: dict[str, dict[str, Any]] = {}  # entity id -> config sent
        self._last: dict[str, tuple[StateValue, dict[str, Any]]] = {}
        self._current: dict[str, EntityTopics] = {}  # announced by this run
        self._previous: dict[str, EntityTopics] = {}  # earlier runs', not yet swept
        self._published_manifest: str | None = None
        # Until the app has started (sweep), new entities only mark the
        # manifest dirty: publishing it per entity would cost O(n^2) bytes
        # for an app announcing hundreds at once.
        self._settled = False
        self._manifests: dict[str, dict[str, EntityTopics]] = {}  # app slug -> manifest
        self._probe = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------
    # Lifecycle

    async def start(self, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect, read the retained manifests; never raises.

        A broker that is down is logged; the link keeps trying in the
        background and writes fail (and are retried by the apps) until then.
        """
        base = self.layout.base_topic
        await self._link.subscribe(f"{base}/+/manifest", self._on_manifest, qos=QOS)
        await self._link.subscribe(self._probe_topic, self._on_probe, qos=QOS)
        await self._link.subscribe(self.layout.availability_topic, self._on_own_status, qos=QOS)
        if self._birth_topic:
            await self._link.subscribe(self._birth_topic, self._on_birth, qos=QOS)
        try:
            await self._link.connect(connect_timeout_s)
        except TransportError as err:
            self._log.warning(
                "MQTT entities: broker not reachable (%s); retrying in the background", err
            )
            self._link.start()
            return
        await self._read_manifests()

    async def close(self) -> None:
        """Stop: the retained ``offline`` makes every entity unavailable."""
        for task in list(self._tasks):
            task.cancel()
        try:
            if self._link.connected:
                await self._publish_manifest()  # what this run announced, if not yet
            await self._link.disconnect()
        except TransportError as err:
            self._log.debug("MQTT entities: disconnect: %s", err)

    # ------------------------------------------------------------------
    # EntityWriter

    async def set_entity(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        """Announce ``entity_id`` if new or changed, then publish its state.

        Raises:
            HassError: not an entity MQTT discovery can carry, or the broker
                could not be reached (nothing is queued).
        """
        async with self._lock:
            self._last[entity_id] = (state, dict(attributes))
            await self._write(entity_id, state, attributes)

    async def remove_entity(self, entity_id: str) -> None:
        """Delete the entity from HA (empty retained config) and forget it.

        Raises:
            HassError: the broker could not be reached.
        """
        async with self._lock:
            self._last.pop(entity_id, None)
            self._announced.pop(entity_id, None)
            topics = self._current.pop(entity_id, None) or self._previous.pop(entity_id, None)
            if topics is None:
                try:
                    topics = self.layout.entity_topics(self._device_of(entity_id), entity_id)
                except ValueError:
                    return  # never announceable, so never announced
            try:
                await self._clear(topics)
                await self._publish_manifest()
            except TransportError as err:
                raise HassError(f"MQTT: cannot remove {entity_id}: {err}") from err

    # ------------------------------------------------------------------
    # Ghosts

    async def sweep(self, keep: Iterable[str] = ()) -> list[str]:
        """Remove what earlier runs announced and this one does not have.

        Call once the app has published its entities. Entities in ``keep``
        stay (the app will write them later, e.g. after its first cycle).
        Manifests of Gridwatch apps no longer configured are emptied too.

        Returns:
            The entity ids removed.
        """
        removed: list[str] = []
        keep_set = set(keep)
        async with self._lock:
            self._settled = True
            if not self._link.connected:
                return removed
            try:
                for entity_id, topics in list(self._previous.items()):
                    if entity_id in keep_set or entity_id in self._current:
                        continue
                    await self._clear(topics)
                    removed.append(entity_id)
                    del self._previous[entity_id]
                await self._publish_manifest()
                removed += await self._sweep_other_apps()
            except (TransportError, HassError) as err:
                self._log.warning("MQTT entities: removing old entities failed: %s", err)
        if removed:
            self._log.info("MQTT entities: removed %s", ", ".join(sorted(removed)))
        return removed

    async def _sweep_other_apps(self) -> list[str]:
        if self._configured_apps is None:
            return []
        configured = self._configured_apps()
        removed: list[str] = []
        for app, manifest in list(self._manifests.items()):
            if app == self.layout.app or app in configured:
                continue
            for entity_id, topics in manifest.items():
                await self._clear(topics)
                removed.append(entity_id)
            base = self.layout.base_topic
            await self._link.publish(f"{base}/{app}/manifest", "", QOS, True)
            await self._link.publish(f"{base}/{app}/availability", "", QOS, True)
            self._manifests.pop(app, None)  # (our empty manifest may have echoed)
        return removed

    # ------------------------------------------------------------------
    # Republishing

    async def republish(self) -> int:
        """Announce and publish every entity again.

        Returns:
            How many entities were written; failures are logged.
        """
        written = 0
        async with self._lock:
            self._announced.clear()
            for entity_id, (state, attributes) in list(self._last.items()):
                try:
                    await self._write(entity_id, state, attributes)
                    written += 1
                except HassError as err:
                    self._log.warning("MQTT entities: republishing %s failed: %s", entity_id, err)
                    break
        return written

    # ------------------------------------------------------------------
    # Internals

    @property
    def _probe_topic(self) -> str:
        return f"{self.layout.base_topic}/{self.layout.app}/probe"

    def _device_of(self, entity_id: str) -> DiscoveryDevice:
        return self._devices.get(entity_id, self.app_device)

    async def _write(
        self, entity_id: str, state: StateValue, attributes: Mapping[str, Any]
    ) -> None:
        try:
            topics, config = discovery_config(
                entity_id, attributes, self._device_of(entity_id), self.layout, self._sw_version
            )
        except ValueError as err:
            raise HassError(str(err)) from err
        try:
            if self._announced.get(entity_id) != config:
                old = self._current.get(entity_id) or self._previous.get(entity_id)
                if old is not None and old.config != topics.config:
                    # Moved to another device (node id): drop the old config.
                    await self._link.publish(old.config, "", QOS, True)
                await self._link.publish(topics.config, dump(config), QOS, True)
                self._announced[entity_id] = config
                self._current[entity_id] = topics
                self._previous.pop(entity_id, None)
                await self._publish_manifest()
            await self._link.publish(
                topics.state, dump(state_payload(state, attributes)), QOS, True
            )
            await self._link.publish(
                topics.attributes, dump(attributes_payload(attributes)), QOS, True
            )
        except ValueError as err:  # NaN / infinity in attributes
            raise HassError(f"cannot write {entity_id}: {err}") from err
        except TransportError as err:
            raise HassError(f"MQTT: cannot write {entity_id}: {err}") from err

    async def _clear(self, topics: EntityTopics) -> None:
        # Empty retained messages: HA deletes the entity, the broker forgets.
        for topic in (topics.config, topics.state, topics.attributes):
            await self._link.publish(topic, "", QOS, True)

    async def _publish_manifest(self) -> None:
        # Earlier runs' entities stay listed until swept: a crash before the
        # sweep must not lose track of them.
        payload = manifest_payload({**self._previous, **self._current})
        if payload == self._published_manifest:
            return
        await self._link.publish(self.layout.manifest_topic, payload, QOS, True)
        self._published_manifest = payload

    async def _read_manifests(self) -> None:
        self._probe.clear()
        try:
            await self._link.publish(self._probe_topic, "probe", QOS, False)
            async with asyncio.timeout(MANIFEST_WAIT_S):
                await self._probe.wait()
        except (TransportError, TimeoutError) as err:
            self._log.warning("MQTT entities: could not read the manifests: %s", err or "timeout")

    def _on_manifest(self, message: Message) -> None:
        app = message.key.split("/")[-2]
        manifest = parse_manifest(message.payload)
        if manifest:
            self._manifests[app] = manifest
        else:
            self._manifests.pop(app, None)
        if app == self.layout.app and self._published_manifest is None:
            # Only the retained one from an earlier run, not our own echo.
            self._previous = {k: v for k, v in manifest.items() if k not in self._current}

    def _on_probe(self, _message: Message) -> None:
        self._probe.set()

    def _on_own_status(self, message: Message) -> None:
        # Our own retained "online" comes back after every (re)connect: a
        # broker restarted without persistence has lost every config.
        if message.payload == b"online" and self._last:
            self._spawn(self.republish())

    def _on_birth(self, message: Message) -> None:
        if message.payload == b"online" and self._last:
            self._log.info("MQTT entities: Home Assistant (re)started; publishing again")
            self._spawn(self.republish())

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
