"""The vocabulary at the bottom of the house: what every other folder speaks.

- :mod:`gridwatch.hass.ports`: ``typing.Protocol`` ports (:class:`HassPort` and its parts).
- :mod:`gridwatch.hass.states`: parsing HA state strings (missing data at the boundary).
- :mod:`gridwatch.hass.errors`: typed errors (ServiceError, ServiceTimeout ...).

Nothing here imports AppDaemon: the runtime (:mod:`gridwatch.runtime`) does.
"""
