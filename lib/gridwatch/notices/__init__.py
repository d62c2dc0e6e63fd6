"""Notices: the client every app uses to raise and resolve them
(:mod:`gridwatch.notices.client`), and the notifier's pure logic (registry,
rendering, the store of active notices).

``apps/gridwatch_notifier.py`` wires these to Home Assistant.
"""
