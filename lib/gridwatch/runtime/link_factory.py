"""Build a transport link from a link's config.

The config already holds the transport's own settings (see
:mod:`gridwatch.config.link_monitor_schema`): nothing is copied field by
field here, so a new transport option needs no edit in this module. The
transport module is imported only when a link of that transport is
configured, so a user without BLE never imports bleak (nor aiohttp without a
WebSocket/HTTP link).
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from gridwatch.config.link_monitor_schema import LinkConfig, LinkMonitorConfig
from gridwatch.links.monitor import LinkPlan
from gridwatch.links.runner import LinkSetup
from gridwatch.transport.ble_settings import BleRadioSettings, BleSettings
from gridwatch.transport.http_settings import HttpPollSettings, WebSocketSettings
from gridwatch.transport.link import Link
from gridwatch.transport.mqtt_settings import MqttSettings

LinkBuilder = Callable[[LinkConfig], Link]


def build_link(
    config: LinkConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    logger: logging.Logger | None = None,
    **link_options: Any,
) -> Link:
    """Create (not start) the link ``config`` describes.

    Args:
        config: the link's validated config.
        clock: monotonic clock the link stamps messages and health with; the
            monitor must use the same one.
        logger: the link's logger (default: the transport module's).
        **link_options: extra :class:`~gridwatch.transport.link.Link` options
            (backoff, sleep ...), mostly for tests.

    Returns:
        An :class:`~gridwatch.transport.mqtt_link.MqttLink`,
        :class:`~gridwatch.transport.websocket_link.WebSocketLink`,
        :class:`~gridwatch.transport.http_link.HttpPollLink` or
        :class:`~gridwatch.transport.ble_link.BleLink`.

    Raises:
        ValueError: settings the transport refuses (config validation should
            have caught them first).
    """
    options: dict[str, Any] = {
        "health": config.health,
        "clock": clock,
        **link_options,
    }
    if logger is not None:
        options["logger"] = logger
    settings = config.settings
    if isinstance(settings, MqttSettings):
        return _mqtt(config.name, settings, options)
    if isinstance(settings, WebSocketSettings):
        return _websocket(config.name, settings, options)
    if isinstance(settings, HttpPollSettings):
        return _http(config.name, settings, options)
    return _ble(config.name, settings, options, config.radio)


def plan_for(config: LinkConfig) -> LinkPlan:
    """The monitor's view of a configured link (no credentials in it)."""
    return LinkPlan(
        name=config.name,
        transport=config.transport,
        target=config.settings.target(),
        values=config.values,
        policy=config.policy,
    )


def subscribe_options(config: LinkConfig) -> Mapping[str, Any]:
    """Options to pass to ``link.subscribe`` for each of the link's keys."""
    if isinstance(config.settings, MqttSettings):
        return {"qos": config.settings.default_qos}
    return {}


def link_setups(
    config: LinkMonitorConfig,
    build: LinkBuilder | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    logger: logging.Logger | None = None,
) -> list[LinkSetup]:
    """Every configured link, ready for the link monitor's runner.

    Args:
        config: the app's config.
        build: makes a link from its config (default: :func:`build_link`
            with ``clock`` and ``logger``); tests pass their own.
        clock: monotonic clock for the links' health.
        logger: the app's logger, for the links' own lines.
    """
    make = build or functools.partial(build_link, clock=clock, logger=logger)
    return [
        LinkSetup(plan_for(cfg), functools.partial(make, cfg), subscribe_options(cfg))
        for cfg in config.links
    ]


# Each builder imports its transport inside the function (see module docstring).


def _mqtt(name: str, settings: MqttSettings, options: dict[str, Any]) -> Link:
    from gridwatch.transport.mqtt_link import MqttLink

    return MqttLink(name, settings, **options)


def _websocket(name: str, settings: WebSocketSettings, options: dict[str, Any]) -> Link:
    from gridwatch.transport.websocket_link import WebSocketLink

    return WebSocketLink(name, settings, **options)


def _http(name: str, settings: HttpPollSettings, options: dict[str, Any]) -> Link:
    from gridwatch.transport.http_link import HttpPollLink

    return HttpPollLink(name, settings, **options)


def _ble(
    name: str, settings: BleSettings, options: dict[str, Any], radio: BleRadioSettings
) -> Link:
    if settings.backend is not None and "backend" not in options:
        options["backend"] = _backend_class(settings.backend)
    from gridwatch.runtime.ble_profiles import custom_link, device_link

    if settings.device is not None:
        return device_link(name, settings, options, radio)
    return custom_link(name, settings, options, radio)


def _backend_class(spec: str) -> Any:
    from bleak.backends.client import BaseBleakClient

    backend = _import_attribute(spec)
    if not (isinstance(backend, type) and issubclass(backend, BaseBleakClient)):
        # A config problem like the others the factory reports (ValueError).
        raise ValueError(f"BLE backend {spec!r} is not a bleak client backend class")  # noqa: TRY004
    return backend


def _import_attribute(spec: str) -> Any:
    """Resolve ``"package.module:attribute"``.

    Raises:
        ValueError: the module or the attribute does not exist.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        with warnings.catch_warnings():
            # A third-party import hook may warn on a failed import: the
            # module is still missing, and that is what the user must read.
            warnings.simplefilter("ignore", ImportWarning)
            return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load BLE backend {spec!r}: {err}") from err
