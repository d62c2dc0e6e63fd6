"""The Home Assistant boundary: the only code that knows AppDaemon and HA APIs.

- :mod:`lib.hass.ports`: ``typing.Protocol`` ports (:class:`HassPort` and its parts).
- :mod:`lib.hass.states`: parsing HA state strings (missing data at the boundary).
- :mod:`lib.hass.errors`: typed errors (ServiceError, ServiceTimeout ...).
- :mod:`lib.hass.adapter`: the AppDaemon 4.5.13 adapter (imports nothing from
  AppDaemon itself; it only calls the app it is given).
- :mod:`lib.hass.app_base`: :class:`GridwatchApp`, the base of every app
  (imports appdaemon: import it only from ``apps/``).
- :mod:`lib.hass.mqtt_discovery`: optional MQTT-discovery entity backend.

This package's ``__init__`` imports nothing, so pure logic can import
``lib.hass.ports`` without pulling in AppDaemon.
"""
