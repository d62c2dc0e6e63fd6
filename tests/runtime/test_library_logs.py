"""Module loggers of the gridwatch package reach AppDaemon's log tree."""

import logging

import pytest

from gridwatch.runtime.library_logs import PACKAGE_LOGGER, route_library_logs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def appdaemon_log():
    """A stand-in for AppDaemon's main logger at DEBUG, and a clean package logger."""
    package = logging.getLogger(PACKAGE_LOGGER)
    saved = (list(package.handlers), package.level, package.propagate)
    package.handlers.clear()
    target = logging.getLogger("test_appdaemon.gridwatch")
    target.setLevel(logging.DEBUG)
    target.propagate = False
    collect = _Collect()
    target.addHandler(collect)
    yield target, collect, None
    target.removeHandler(collect)
    package.handlers[:] = saved[0]
    package.setLevel(saved[1])
    package.propagate = saved[2]


def test_a_module_debug_line_reaches_appdaemon(appdaemon_log):
    target, collect, _ = appdaemon_log
    route_library_logs(target)
    logging.getLogger("gridwatch.safety.verified_call").debug("retry %d", 2)
    assert [r.getMessage() for r in collect.records] == ["[gridwatch.safety.verified_call] retry 2"]
    assert collect.records[0].name == target.name  # AppDaemon names the line by it


def test_lines_below_appdaemons_level_stay_out(appdaemon_log):
    target, collect, _ = appdaemon_log
    target.setLevel(logging.WARNING)
    route_library_logs(target)
    logging.getLogger("gridwatch.notices.store").info("quiet")
    logging.getLogger("gridwatch.notices.store").warning("loud")
    assert [r.getMessage() for r in collect.records] == ["[gridwatch.notices.store] loud"]


def test_routing_twice_forwards_each_line_once(appdaemon_log):
    target, collect, _ = appdaemon_log
    route_library_logs(target)
    route_library_logs(target)
    logging.getLogger("gridwatch.x").warning("once")
    assert len(collect.records) == 1


def test_no_line_falls_through_to_the_last_resort_stderr_handler(appdaemon_log, capsys):
    target, collect, _ = appdaemon_log
    route_library_logs(target)
    logging.getLogger("gridwatch.transport.link").error("lost")
    assert len(collect.records) == 1
    assert "lost" not in capsys.readouterr().err
