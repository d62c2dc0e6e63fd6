"""Gridwatch's shared library: everything the apps use, none of it AppDaemon-bound.

Only :mod:`lib.hass` knows AppDaemon and Home Assistant APIs.
"""
