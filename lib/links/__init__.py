"""Device links -> Home Assistant entities: values, availability, alerts.

Pure pieces (no I/O, no clock reads): :mod:`~lib.links.values` (extraction
and validation), :mod:`~lib.links.availability` (grace, staleness, outage
notices), :mod:`~lib.links.entities` (entity ids and attributes),
:mod:`~lib.links.outage` (notice text) and :mod:`~lib.links.monitor` (one
link's state threaded through them). :mod:`~lib.links.publisher` performs
their decisions through the HA port; :mod:`~lib.links.factory` builds a
transport link from config, importing the transport lazily.
"""
