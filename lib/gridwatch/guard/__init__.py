"""The export guard's own logic: readings, headroom, decisions, requests,
actuators, the entities it publishes and its notices.

Pure where it can be: time, readings and config arrive as arguments and
decisions come back; ``apps/gridwatch_export_guard.py`` performs them.
"""
