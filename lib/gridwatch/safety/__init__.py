"""Fail-safe building blocks: circuit breaker, staleness, range validation,
verified actuator calls. Generic: the export guard's own logic is
:mod:`gridwatch.guard`.

Nothing here imports AppDaemon; time and I/O arrive as arguments.
"""
