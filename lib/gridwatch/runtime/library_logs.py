"""Send the gridwatch package's module loggers to AppDaemon's main log.

AppDaemon 4.5.13 configures only its own loggers (``AppDaemon`` and its
children). A module logger such as ``gridwatch.transport.link`` propagates to
the root logger, which nobody configured: its warnings land on bare stderr
(Python's last-resort handler) and its debug lines are lost. Apps pass their
own logger to what they build wherever they can; this router catches the
rest, so no line of the suite is lost whatever code logs it.
"""

from __future__ import annotations

import logging
from typing import Final

PACKAGE_LOGGER: Final = "gridwatch"
# A child of AppDaemon's main logger: its handlers (main log file, admin UI)
# apply, and AppDaemon's formatter names the line "gridwatch".
APPDAEMON_MAIN: Final = "AppDaemon"
APPDAEMON_CHILD: Final = f"{APPDAEMON_MAIN}.gridwatch"


class _ForwardHandler(logging.Handler):
    """Re-dispatches a record to AppDaemon's logger tree, under its name."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(record.levelno):
            return
        # The module's name stays in the text; the logger name is AppDaemon's,
        # which its formatter turns into the app-name column.
        forwarded = logging.makeLogRecord(
            {**record.__dict__, "name": self.target.name, "msg": f"[{record.name}] {record.msg}"}
        )
        self.target.handle(forwarded)


def route_library_logs(target: logging.Logger | None = None) -> logging.Handler | None:
    """Route ``gridwatch.*`` module loggers into AppDaemon's log (idempotent).

    Args:
        target: the logger to forward to (default: ``AppDaemon.gridwatch``,
            once AppDaemon has configured its main log).

    Returns:
        The handler on the package logger (the one already there, if any),
        or None when there is no AppDaemon log to route to (the apps run
        outside AppDaemon, e.g. on the test harness).
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    for handler in package.handlers:
        if isinstance(handler, _ForwardHandler):
            return handler
    if target is None:
        if not logging.getLogger(APPDAEMON_MAIN).handlers:
            return None
        target = logging.getLogger(APPDAEMON_CHILD)
    handler = _ForwardHandler(target)
    package.addHandler(handler)
    # Records must reach the handler at the level AppDaemon shows: the
    # unconfigured root's WARNING would drop debug and info at the source.
    if target.getEffectiveLevel() < package.getEffectiveLevel():
        package.setLevel(target.getEffectiveLevel())
    # Propagation stays on: with a handler found on the way, Python's
    # last-resort stderr handler no longer fires, and a root handler someone
    # did configure (pytest's caplog, a user's) still sees the line.
    return handler
