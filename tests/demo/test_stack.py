"""The orchestrator's pieces that need no services: options, steps, stop requests."""

import asyncio
import io

import pytest

from demo.__main__ import parse_args
from demo.stack import (
    DEFAULT_STATE_DIR,
    HA_RESTART_EXIT_CODE,
    Stack,
    StartError,
    Stopped,
    _check_processes,
    _step,
)
from tests.e2e.ha_matrix import NEWEST_HA, OLDEST_HA


def test_defaults_run_until_ctrl_c_in_real_time():
    opts = parse_args([])
    assert (opts.duration_s, opts.speed, opts.start_hour) == (None, 1.0, 10.0)
    assert opts.state_dir == DEFAULT_STATE_DIR
    assert opts.frontend


def test_options():
    opts = parse_args(
        ["--duration", "30", "--speed", "60", "--start-hour", "18.5", "--no-frontend"]
    )
    assert (opts.duration_s, opts.speed, opts.start_hour, opts.frontend) == (30, 60, 18.5, False)


def test_the_ha_version_is_an_option_with_the_oldest_as_default(monkeypatch):
    monkeypatch.delenv("GRIDWATCH_HA_VERSION", raising=False)
    assert parse_args([]).ha_version == OLDEST_HA
    assert parse_args(["--ha", NEWEST_HA]).ha_version == NEWEST_HA
    # ./run test's second leg sets the variable for the demo's own tests.
    monkeypatch.setenv("GRIDWATCH_HA_VERSION", NEWEST_HA)
    assert parse_args([]).ha_version == NEWEST_HA


def test_an_untested_ha_version_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--ha", "2025.1.0"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--duration", "0"], ["--speed", "-1"], ["--start-hour", "24"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "must be" in capsys.readouterr().err


async def test_a_failed_step_names_itself_and_shows_the_log_tail():
    stack = Stack(parse_args([]), io.StringIO())

    def boom():
        raise TimeoutError("timed out after 120 s waiting for HA HTTP server")

    with pytest.raises(StartError, match="starting Home Assistant failed: timed out") as exc:
        await _step(stack, "starting Home Assistant", boom, lambda: "last log line")
    assert "last log line" in str(exc.value)


async def test_a_stop_requested_during_a_step_ends_the_start_after_it():
    out = io.StringIO()
    stack = Stack(parse_args([]), out)
    ran = []
    loop = asyncio.get_running_loop()

    def work():
        # A signal arrives (on the loop) while the step runs in its thread;
        # it is handled before the step's result (both are queued on the loop).
        loop.call_soon_threadsafe(stack.request_stop, "SIGINT")
        ran.append(True)

    with pytest.raises(Stopped):
        await _step(stack, "starting mosquitto", work)
    assert ran == [True]
    assert "SIGINT: stopping after the current step" in out.getvalue()
    with pytest.raises(Stopped):
        await _step(stack, "starting Home Assistant", lambda: ran.append(False))
    assert ran == [True]


def test_another_apps_yaml_and_no_check(tmp_path):
    apps = tmp_path / "apps.yaml"
    apps.write_text("{}\n")
    opts = parse_args(["--apps-yaml", str(apps), "--no-apps-check"])
    assert (opts.apps_yaml, opts.check_apps) == (apps, False)
    assert parse_args([]).check_apps


def test_a_missing_apps_yaml_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--apps-yaml", str(tmp_path / "nope.yaml")])
    assert exc.value.code == 2
    assert "no such file" in capsys.readouterr().err


class FakeProcess:
    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.running = False

    def stop(self) -> int:
        return self.exit_code

    def log_tail(self, lines: int = 80) -> str:
        return "log"


class FakeHa:
    def __init__(self, exit_code: int) -> None:
        self.process = FakeProcess(exit_code)
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process.running = True


async def test_ha_restarted_by_its_restart_service_is_started_again():
    out = io.StringIO()
    stack = Stack(parse_args([]), out)
    ha = FakeHa(HA_RESTART_EXIT_CODE)
    stack.ha = ha  # type: ignore[assignment]
    await _check_processes(stack)
    assert ha.starts == 1
    assert not stack.stop.is_set()
    assert "Home Assistant is back" in out.getvalue()


async def test_ha_that_exits_otherwise_stops_the_demo():
    out = io.StringIO()
    stack = Stack(parse_args([]), out)
    ha = FakeHa(1)
    stack.ha = ha  # type: ignore[assignment]
    await _check_processes(stack)
    assert ha.starts == 0
    assert stack.stop.is_set()
    assert "Home Assistant exited (code 1)" in out.getvalue()
