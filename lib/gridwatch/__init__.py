"""Gridwatch: the one package of the suite (``lib/`` holds it, with no
``__init__.py`` of its own, so AppDaemon puts ``lib/`` on the path and no name
collides with another app's).

Layers, bottom up: :mod:`gridwatch.hass` (the vocabulary) <- transport, safety
<- guard, energy, links, notices, config <- :mod:`gridwatch.runtime` (the only
code that imports AppDaemon) <- ``apps/``.
"""
