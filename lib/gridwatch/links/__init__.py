"""Device links -> Home Assistant entities: values, availability, alerts.

Pure pieces (no I/O, no clock reads): :mod:`~gridwatch.links.values` (extraction
and validation), :mod:`~gridwatch.links.availability` (grace, staleness, outage
notices), :mod:`~gridwatch.links.entities` (entity ids and attributes),
:mod:`~gridwatch.links.outage` (notice text) and :mod:`~gridwatch.links.monitor` (one
link's state threaded through them). :mod:`~gridwatch.links.publisher` performs
their decisions through the HA port; :mod:`~gridwatch.runtime.link_factory` builds a
transport link from config, importing the transport lazily.
"""
