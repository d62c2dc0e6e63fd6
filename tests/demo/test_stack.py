"""The orchestrator's pieces that need no services: options, steps, stop requests."""

import asyncio
import io

import pytest

from demo.__main__ import parse_args
from demo.stack import DEFAULT_STATE_DIR, Stack, StartError, Stopped, _step


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
