"""The demo bench's pure helpers: /proc parsing, process roles, traffic summary."""

import pytest

from bench.bench_demo import (
    APPDAEMON,
    HA,
    MOSQUITTO,
    ORCHESTRATOR,
    cpu_percent,
    parse_memory,
    parse_stat_cpu_ticks,
    role_of,
    summarize_changes,
)

# A real /proc/<pid>/stat line, with a command name holding a space and a
# parenthesis: utime 1500 and stime 250 are fields 14 and 15.
STAT = (
    "4181 (python -m (x)) S 4061 4181 4181 0 -1 4194560 52413 0 12 0 1500 250 0 0 20 0 "
    "14 0 51234 123456789 23000 18446744073709551615 1 1 0 0 0 0 0 16781312 17990 0 0 0 "
    "17 1 0 0 0 0 0"
)

STATUS = """Name:\tpython
State:\tS (sleeping)
VmPeak:\t  400000 kB
VmHWM:\t   95000 kB
VmRSS:\t   93184 kB
Threads:\t14
"""

ROLLUP = """556b0e67d000-7ffc63be8000 ---p 00000000 00:00 0                          [rollup]
Rss:               93184 kB
Pss:               77000 kB
Shared_Clean:      20000 kB
Shared_Dirty:          0 kB
Private_Clean:      3000 kB
Private_Dirty:     70000 kB
"""


def test_cpu_ticks_are_utime_plus_stime_after_the_command_name():
    assert parse_stat_cpu_ticks(STAT) == 1750


def test_memory_from_status_and_smaps_rollup():
    mem = parse_memory(STATUS, ROLLUP)
    assert (mem.rss_kb, mem.hwm_kb, mem.pss_kb, mem.uss_kb) == (93184, 95000, 77000, 73000)


def test_memory_without_smaps_rollup():
    mem = parse_memory(STATUS, None)
    assert (mem.rss_kb, mem.pss_kb, mem.uss_kb) == (93184, None, None)


def test_cpu_percent_of_one_core():
    assert cpu_percent(150, 10.0, clk_tck=100) == pytest.approx(15.0)
    assert cpu_percent(150, 0.0, clk_tck=100) == 0.0


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/v/bin/python", "-m", "appdaemon", "-c", "/t/demo/appdaemon"], APPDAEMON),
        (["/v/bin/python", "-m", "demo", "--state-dir", "/t/demo"], ORCHESTRATOR),
        (["/ha/bin/python3", "/ha/bin/hass", "--config", "/t/demo/homeassistant"], HA),
        (["/usr/sbin/mosquitto", "-c", "/t/demo/mosquitto/mosquitto.conf"], MOSQUITTO),
        # Paths under the state dir name the parts too: they do not count.
        (["/usr/bin/tail", "-f", "/t/demo/homeassistant/hass-console.log"], None),
        (["/v/bin/python", "-m", "pytest", "/t/demo/appdaemon"], None),
        ([], None),
    ],
)
def test_role_of(argv, role):
    assert role_of(argv) == role


def test_summarize_changes():
    rate, note = summarize_changes({"sensor.a": 30, "sensor.b": 10, "sensor.c": 20}, 45, 10.0, 2)
    assert rate == pytest.approx(6.0)
    assert note == "3 entities; 75 % change the state value; sensor.a 3.0/s, sensor.c 2.0/s"


def test_summarize_no_changes():
    assert summarize_changes({}, 0, 10.0) == (0.0, "0 entities")
