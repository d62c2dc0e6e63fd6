"""The one base class of every Gridwatch app.

A Gridwatch app is an ASYNC AppDaemon app. It subclasses
:class:`GridwatchApp`, names its schema, and implements :meth:`setup`::

    class ExportGuard(GridwatchApp[GuardConfig]):
        schema = GuardSchema          # a gridwatch.config.ConfigSchema

        async def setup(self, config: GuardConfig, hass: HassPort, notices: NoticeClient) -> None:
            self._tick = await hass.run_every(self._on_tick, config.interval_s)

        async def teardown(self) -> None:   # optional
            ...

Do not name attributes ``config``, ``args``, ``name`` or ``logger``: ``ADAPI``
already uses them (``self.config`` is AppDaemon's own configuration).

What the base does in ``initialize``:

1. Routes the package's module loggers into AppDaemon's log
   (:mod:`gridwatch.runtime.library_logs`).
2. Validates ``self.args`` with the schema and the suite-wide ``entities:``
   block (:func:`gridwatch.config.entities_schema.load_app_config`).
3. On :class:`~gridwatch.config.ConfigError`: logs ONE error naming every bad key,
   raises the notice "Gridwatch: <app> configuration error" through the
   notifier event AND directly as a persistent notification (the notifier
   itself may be the misconfigured app), marks what an earlier run of the
   app published ``unavailable`` with ``stale: true`` and the reason
   (:func:`mark_refused_entities`: nothing looks current while the app does
   not run), and stops there: no listeners, :meth:`setup` is not called.
4. Otherwise builds the AppDaemon adapter (wrapped so that entity writes go
   to MQTT discovery with ``entities: {backend: mqtt}``, see
   :mod:`gridwatch.runtime.entity_backend`) and a started
   :class:`~gridwatch.notices.client.NoticeClient`, clears an earlier configuration
   notice, and awaits ``setup(config, hass, notices)``.
5. With the MQTT backend: removes what an earlier run announced and this one
   no longer has (see :meth:`GridwatchApp.expected_entities`).

``terminate`` awaits :meth:`teardown`, then cancels every listener and timer
the adapter registered (and, with MQTT, marks the app's entities offline).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

from appdaemon.adapi import ADAPI
from marshmallow import Schema

from gridwatch.config.base import ConfigError
from gridwatch.config.entities_schema import load_app_config
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import HassPort
from gridwatch.hass.states import slugify
from gridwatch.notices.client import NOTICE_EVENT, Notice, NoticeClient, Severity, notice_id
from gridwatch.runtime.adapter import AppDaemonHassPort
from gridwatch.runtime.entity_backend import MqttEntitiesPort, wrap_port
from gridwatch.runtime.library_logs import route_library_logs
from gridwatch.runtime.mqtt_discovery import DiscoveryDevice

ConfigT = TypeVar("ConfigT")


class ManagedPort(HassPort, Protocol):
    """A port the app base starts and closes (the adapter; FakeHass in tests)."""

    async def start(self) -> None:
        """Register the port's own hooks (HA reconnect)."""
        ...

    async def close(self) -> None:
        """Cancel every listener and timer registered through the port."""
        ...


# Modules of the suite's apps (apps/gridwatch_*.py): an entry with one of
# these is a Gridwatch app.
GRIDWATCH_MODULE_PREFIX: Final = "gridwatch_"
# The condition name of the configuration notice: id "<app>_configuration_error".
CONFIG_CONDITION: Final = "configuration_error"


def config_error_notice(app_name: str, error: ConfigError) -> Notice:
    """The notice raised for a misconfigured app.

    Args:
        app_name: the app's name in apps.yaml.
        error: the validation error.

    Returns:
        A warning notice listing every problem, with the steps to fix it.
    """
    problems = "\n".join(
        f"- `{p.key}`: {p.why}" + (f" (e.g. `{p.example}`)" if p.example else "")
        for p in error.problems
    )
    return Notice(
        notice_id=notice_id(app_name, CONFIG_CONDITION),
        severity=Severity.WARNING,
        title=f"Gridwatch: {app_name} configuration error",
        message=f"The app `{app_name}` is not running because its apps.yaml entry is invalid:\n"
        f"{problems}",
        steps=(
            f"Open apps.yaml and find the entry `{app_name}:`.",
            "Fix each key listed above (the examples show valid values).",
            "Save the file: AppDaemon restarts the app and this notice clears.",
        ),
    )


class GridwatchApp(ADAPI, Generic[ConfigT]):
    """Base of every Gridwatch app (see the module docstring).

    Class attributes:
        schema: the app's marshmallow schema (a ``ConfigSchema`` subclass).
    """

    schema: ClassVar[type[Schema]]

    # Set by initialize(); None while the app refuses to run.
    hass_port: ManagedPort | None = None
    notices: NoticeClient | None = None
    # Tests set this (tests.support.app_harness) to run the app on FakeHass.
    port_factory: Callable[[], ManagedPort] | None = None

    async def initialize(self) -> None:
        """AppDaemon entry point; do not override (implement :meth:`setup`)."""
        self.hass_port = None
        self.notices = None
        route_library_logs()
        port: ManagedPort = (
            self.port_factory()
            if self.port_factory is not None
            else AppDaemonHassPort(self, logger=self.logger)
        )
        try:
            config: ConfigT
            config, entities = load_app_config(self.schema, self.args, app_name=self.name)
        except ConfigError as err:
            # The ONE error record: every bad key, why, and an example.
            self.logger.error("%s", err)
            await report_config_error(port, self.name, err, self.logger)
            await mark_refused_entities(port, self.name, err, self.logger)
            return
        port = wrap_port(
            port,
            self.name,
            entities,
            devices=self.entity_devices(config),
            logger=self.logger,
            configured_apps=self._configured_apps_getter(),
        )
        await port.start()
        notices = NoticeClient(port, self.name)
        await notices.start()
        self.hass_port, self.notices = port, notices
        await clear_config_error(port, notices, self.logger)
        await self.setup(config, port, notices)
        if isinstance(port, MqttEntitiesPort):
            await port.settle(self.expected_entities(config))

    def entity_devices(self, config: ConfigT) -> Mapping[str, DiscoveryDevice]:
        """Entities grouped under a device of their own (MQTT backend only).

        Override to group entities (the link monitor: one device per link);
        entities not named here belong to the app's device.

        Returns:
            entity id -> device.
        """
        return {}

    def expected_entities(self, config: ConfigT) -> Iterable[str]:
        """Entities the app writes only later (MQTT backend only).

        After :meth:`setup`, what an earlier run announced and this one has
        not written is removed from HA, except the entities named here
        (e.g. energy sensors that appear after the first good cycle).
        """
        return ()

    def _configured_apps_getter(self) -> Callable[[], set[str]] | None:
        """The slugs of the Gridwatch apps in apps.yaml (for removing the
        entities of apps deleted from it); None outside AppDaemon."""
        management = getattr(getattr(self, "AD", None), "app_management", None)
        if management is None:
            return None

        def configured() -> set[str]:
            root = getattr(management.app_config, "root", {})
            return {
                slugify(name)
                for name, cfg in root.items()
                if str(getattr(cfg, "module_name", "")).startswith(GRIDWATCH_MODULE_PREFIX)
            }

        return configured

    async def setup(self, config: ConfigT, hass: HassPort, notices: NoticeClient) -> None:
        """Start the app: register listeners and timers, publish entities.

        Args:
            config: the validated configuration (the schema's dataclass).
            hass: the Home Assistant port.
            notices: the app's notice client (already started).
        """
        raise NotImplementedError

    async def teardown(self) -> None:
        """Stop the app's own work (close links...). Listeners and timers
        registered through ``hass`` are cancelled by the base afterwards."""

    async def terminate(self) -> None:
        """AppDaemon exit point; do not override (implement :meth:`teardown`)."""
        port, notices = self.hass_port, self.notices
        self.hass_port = self.notices = None
        if port is None:
            return  # refused to run: nothing was started
        try:
            await self.teardown()
        finally:
            if notices is not None:
                await notices.stop()
            await port.close()


async def report_config_error(
    hass: HassPort, app_name: str, error: ConfigError, logger: logging.Logger | Any
) -> None:
    """Raise the configuration notice through the notifier AND directly.

    Failures are logged as warnings (HA may be down); never raised.

    Args:
        hass: the port to fire and call through.
        app_name: the misconfigured app.
        error: what is wrong.
        logger: where to log delivery failures.
    """
    notice = config_error_notice(app_name, error)
    try:
        await hass.fire_event(NOTICE_EVENT, notice.to_event_data())
    except (HassError, ValueError) as err:
        logger.warning("could not send the configuration notice event: %s", err)
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(notice.steps, 1))
    try:
        await hass.call_service(
            "persistent_notification/create",
            {
                "notification_id": notice.notice_id,
                "title": notice.title,
                "message": f"{notice.message}\n\n{steps}",
            },
        )
    except HassError as err:
        logger.warning("could not create the configuration notification: %s", err)


# How long the one ``get_states`` of a refused start may take.
_STATES_TIMEOUT_S: Final = 15.0
# An entity of the app may list further entities it publishes (the energy
# tally's meter entities are named after the meters, not the app).
PUBLISHED_ENTITIES_ATTR: Final = "published_entities"


def refused_entity_ids(states: object, app_name: str) -> list[str]:
    """The entities an earlier run of ``app_name`` published, from HA's states.

    Those named ``<domain>.<app slug>_...``, and those they list under
    :data:`PUBLISHED_ENTITIES_ATTR`.

    Args:
        states: HA's ``get_states`` answer (a list of state objects).
        app_name: the app.

    Returns:
        Entity ids, sorted, each once (already unavailable ones left out).
    """
    if not isinstance(states, list):
        return []
    prefix = f"{slugify(app_name)}_"
    known = {
        str(s.get("entity_id")): s for s in states if isinstance(s, dict) and s.get("entity_id")
    }
    own = [e for e in known if e.partition(".")[2].startswith(prefix)]
    listed: list[str] = []
    for entity_id in own:
        attrs = known[entity_id].get("attributes")
        extra = attrs.get(PUBLISHED_ENTITIES_ATTR) if isinstance(attrs, dict) else None
        if isinstance(extra, list):
            listed += [e for e in extra if isinstance(e, str) and e in known]
    return sorted(e for e in {*own, *listed} if known[e].get("state") != "unavailable")


async def mark_refused_entities(
    hass: HassPort, app_name: str, error: ConfigError, logger: logging.Logger | Any
) -> None:
    """Mark what an earlier run of a refused app published ``unavailable`` and stale.

    Same for every app: values an app no longer updates must not look
    current (a health of ``ok``, ``stale: false``). Failures are logged as
    warnings (HA may be down); never raised.

    Args:
        hass: the port.
        app_name: the refused app.
        error: why it was refused (its keys go into the reason).
        logger: where to log.
    """
    try:
        states = await hass.websocket_command({"type": "get_states"}, timeout_s=_STATES_TIMEOUT_S)
    except HassError as err:
        logger.warning("could not read HA's states to mark %s's entities: %s", app_name, err)
        return
    if not isinstance(states, list):
        return
    reason = (
        f"{app_name} is not running: configuration error in {', '.join(error.keys)} "
        "(see the notification)"
    )
    by_id = {s["entity_id"]: s for s in states if isinstance(s, dict) and "entity_id" in s}
    for entity_id in refused_entity_ids(states, app_name):
        old = by_id[entity_id].get("attributes")
        attributes = {**(old if isinstance(old, dict) else {}), "stale": True, "reason": reason}
        try:
            await hass.set_entity(entity_id, "unavailable", attributes)
        except HassError as err:
            logger.warning("could not mark %s unavailable: %s", entity_id, err)
            return


async def clear_config_error(
    hass: HassPort, notices: NoticeClient, logger: logging.Logger | Any
) -> None:
    """Clear a configuration notice left by an earlier, misconfigured start.

    Args:
        hass: the port (dismisses the direct notification).
        notices: the app's client (resolves the notice at the notifier).
        logger: where to log failures.
    """
    nid = notices.notice_id(CONFIG_CONDITION)
    try:
        await notices.resolve(CONFIG_CONDITION)
        await hass.call_service("persistent_notification/dismiss", {"notification_id": nid})
    except HassError as err:
        logger.warning("could not clear the configuration notice %s: %s", nid, err)
