"""The top of the house, just under ``apps/``: the only code that knows AppDaemon.

- :mod:`gridwatch.runtime.adapter`: the AppDaemon 4.5.13 adapter behind the ports.
- :mod:`gridwatch.runtime.app_base`: :class:`GridwatchApp`, the base of every app.
- :mod:`gridwatch.runtime.link_factory`: builds transport links from the link monitor's config.
- :mod:`gridwatch.runtime.entity_backend`: the ``entities:`` choice (rest / mqtt) applied
  to an app's port.
- :mod:`gridwatch.runtime.mqtt_entities`: the MQTT-discovery entity backend (I/O).
- :mod:`gridwatch.runtime.mqtt_discovery`: its discovery payloads and topics (pure).
"""
