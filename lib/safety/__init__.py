"""Fail-safe building blocks: circuit breaker, staleness, range validation,
verified actuator calls, and the export guard's pure decision logic.

Nothing here imports AppDaemon; time and I/O arrive as arguments.
"""
