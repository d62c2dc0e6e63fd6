"""Run a real Gridwatch app class on :class:`~tests.support.fake_hass.FakeHass`.

The app object is a genuine ``ADAPI`` instance (built with a stub AppDaemon
that only provides loggers), so ``self.args``, ``self.name`` and
``self.logger`` behave as in AppDaemon; every HA interaction goes to the fake::

    hass = FakeHass()
    app = make_app(Notifier, {"tick_s": 10}, hass, name="notifier")
    await app.initialize()
    ...
    await app.terminate()
"""

from __future__ import annotations

import logging
from datetime import UTC
from types import SimpleNamespace
from typing import Any, TypeVar

from appdaemon.models.config.app import AppConfig

from tests.support.fake_hass import FakeHass

AppT = TypeVar("AppT")


class _StubLogging:
    """The two calls ADAPI.__init__ makes on AppDaemon's logging subsystem."""

    def get_child(self, name: str) -> logging.Logger:
        return logging.getLogger(f"AppDaemon.{name}")

    def get_error(self) -> logging.Logger:
        return logging.getLogger("Error")


def make_app(
    app_cls: type[AppT],
    args: dict[str, Any],
    hass: FakeHass,
    *,
    name: str = "app",
    module: str | None = None,
) -> AppT:
    """Build an app as AppDaemon would, wired to ``hass``.

    Args:
        app_cls: a ``GridwatchApp`` subclass.
        args: the app's options (as in apps.yaml, without module/class).
        hass: the fake HA the app will talk to.
        name: the app's key in apps.yaml.
        module: the module name (default: the class's module).

    Returns:
        The app, not yet initialized.
    """
    ad = SimpleNamespace(http=None, logging=_StubLogging(), tz=UTC)
    config = AppConfig.model_validate(
        {
            "name": name,
            "module": module or app_cls.__module__,
            "class": app_cls.__name__,
            **args,
        }
    )
    app = app_cls(ad, config)  # type: ignore[call-arg]
    app.port_factory = lambda: hass  # type: ignore[attr-defined]
    return app
