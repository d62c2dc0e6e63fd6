"""The notifier's pure logic: the registry of active notices and its store.

``apps/notifier.py`` wires these to Home Assistant; nothing here imports
AppDaemon or performs I/O other than :mod:`lib.notifications.store`'s file.
"""
