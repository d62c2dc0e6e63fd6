"""Demo stack figures (issue 7): AppDaemon's memory with the four apps vs no
apps, and the CPU share of each process under demo traffic.

Runs ``python -m demo`` (default options: real time, HA's web UI loaded) as a
child with a fresh state dir, and beside it, against the same Home Assistant,
a second AppDaemon with the same version and config (app dir with apps/ and
lib/, dashboards, secrets.yaml, PYTHONPATH) but an empty apps.yaml. AppDaemon
imports only the modules its configured apps need, so that one holds none of
Gridwatch's code.

Phases:

1. Start the demo, then the no-apps AppDaemon.
2. Warm-up (``--warmup-s``, default 60 s after both are up), then the memory
   of both (VmRSS from ``/proc/<pid>/status``; PSS and USS = private clean +
   dirty from ``/proc/<pid>/smaps_rollup``).
3. ``--baseline-cpu-s`` (default 60 s): CPU of both AppDaemons over the same
   interval and traffic, i.e. what AppDaemon itself costs for the state
   changes it receives vs what the apps add. Then the no-apps one stops.
4. The window (``--window-s``, default 600 s, as issue 7 asks): CPU of
   AppDaemon, Home Assistant, the demo orchestrator (its simulator, device
   server and BLE stub run in that process) and mosquitto, from utime+stime
   deltas in ``/proc/<pid>/stat``, as % of one core; HA's state_changed
   events over the window, counted on a WebSocket subscription, say how much
   traffic that was. AppDaemon's memory is read again at the end.

Everything started here is stopped in ``finally`` (Ctrl-C and SIGTERM
included): the demo by SIGINT (it stops its own parts), the no-apps AppDaemon
directly, and any process still running from the bench's temp dir by SIGKILL.

Run::

    .venv/bin/python -m bench demo                      # the full 600 s window
    .venv/bin/python -m bench.bench_demo --window-s 60  # a quick check
    BENCH_DEMO_WINDOW_S=60 .venv/bin/python -m bench demo
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import Row, format_table, progress, row

DEFAULT_WINDOW_S = 600.0
DEFAULT_WARMUP_S = 60.0
DEFAULT_BASELINE_CPU_S = 60.0
MEMORY_GOAL_MB = 40.0
WINDOW_ENV = "BENCH_DEMO_WINDOW_S"
# Display names of the measured processes, in table order.
APPDAEMON = "AppDaemon (4 apps)"
HA = "Home Assistant"
ORCHESTRATOR = "demo orchestrator + simulator"
MOSQUITTO = "mosquitto"
ROLES = (APPDAEMON, HA, ORCHESTRATOR, MOSQUITTO)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------
# /proc readers (pure parsers + thin file readers)


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks, all threads) from a ``/proc/<pid>/stat`` line.

    The command name (field 2) may hold spaces and parentheses, so fields are
    counted after its closing parenthesis: state is field 3, utime 14, stime 15.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def parse_kb_fields(text: str) -> dict[str, int]:
    """``Name: 123 kB`` lines (status, smaps_rollup) -> {name: kB}."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[name.strip()] = int(parts[0])
    return values


@dataclass(frozen=True)
class Memory:
    """One process's memory, kB."""

    rss_kb: int
    hwm_kb: int
    pss_kb: int | None
    uss_kb: int | None


def parse_memory(status: str, smaps_rollup: str | None) -> Memory:
    """Memory from ``/proc/<pid>/status`` and (if readable) ``smaps_rollup``."""
    st = parse_kb_fields(status)
    rollup = parse_kb_fields(smaps_rollup) if smaps_rollup else {}
    pss = rollup.get("Pss")
    uss = None
    if "Private_Clean" in rollup and "Private_Dirty" in rollup:
        uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return Memory(st["VmRSS"], st.get("VmHWM", st["VmRSS"]), pss, uss)


def read_memory(pid: int) -> Memory:
    proc = Path(f"/proc/{pid}")
    rollup = None
    with contextlib.suppress(OSError):
        rollup = (proc / "smaps_rollup").read_text()
    return parse_memory((proc / "status").read_text(), rollup)


def read_cpu_ticks(pid: int) -> int:
    return parse_stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())


def read_machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest/guest_nice (9, 10) are already counted in user/nice.
    total = sum(fields[:8])
    return total - idle, total


def cpu_percent(ticks: int, seconds: float, clk_tck: int = CLK_TCK) -> float:
    """CPU ticks over a wall-clock interval as % of one core."""
    return 100.0 * ticks / clk_tck / seconds if seconds > 0 else 0.0


def role_of(argv: Sequence[str]) -> str | None:
    """Which measured part a command line is (None: not one of them).

    The state dir has homeassistant/, appdaemon/ and mosquitto/ folders, so
    paths in the arguments are not looked at: only the program and ``-m``.
    """
    if not argv:
        return None
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        if module == "appdaemon":
            return APPDAEMON
        if module == "demo":
            return ORCHESTRATOR
    programs = [os.path.basename(a) for a in argv[:2]]
    if os.path.basename(argv[0]) == "mosquitto":
        return MOSQUITTO
    if "hass" in programs:
        return HA
    return None


def read_argv(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def find_roles(pids: Iterable[int], skip: Iterable[int] = ()) -> dict[str, int]:
    """Map each measured role to its pid (first found), ``skip`` left out."""
    skipped = set(skip)
    found: dict[str, int] = {}
    for pid in sorted(pids):
        if pid in skipped:
            continue
        with contextlib.suppress(OSError):
            role = role_of(read_argv(pid))
            if role is not None and role not in found:
                found[role] = pid
    return found


def summarize_changes(
    counts: Mapping[str, int], value_changes: int, seconds: float, top: int = 4
) -> tuple[float, str]:
    """(events per second, note naming the busiest entities)."""
    total = sum(counts.values())
    rate = total / seconds if seconds > 0 else 0.0
    busiest = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    share = f"{100 * value_changes / total:.0f} % change the state value" if total else ""
    names = ", ".join(f"{e} {n / seconds:.1f}/s" for e, n in busiest) if seconds > 0 else ""
    return rate, "; ".join(p for p in (f"{len(counts)} entities", share, names) if p)


# ----------------------------------------------------------------------
# The measured stack


@dataclass
class CpuSample:
    wall: float
    ticks: dict[str, int]
    machine: tuple[int, int]


def sample_cpu(pids: Mapping[str, int]) -> CpuSample:
    return CpuSample(
        time.monotonic(),
        {name: read_cpu_ticks(pid) for name, pid in pids.items()},
        read_machine_ticks(),
    )


def cpu_between(a: CpuSample, b: CpuSample) -> tuple[float, dict[str, float], float]:
    """(seconds, % of one core per name, machine busy % of all cores)."""
    seconds = b.wall - a.wall
    shares = {name: cpu_percent(b.ticks[name] - a.ticks[name], seconds) for name in a.ticks}
    busy = b.machine[0] - a.machine[0]
    total = b.machine[1] - a.machine[1]
    return seconds, shares, 100.0 * busy / total if total else 0.0


def mb(kb: int | None) -> float | str:
    return round(kb / 1024, 1) if kb is not None else "n/a"


class StateChangeCounter:
    """Counts HA's state_changed events on a WebSocket subscription."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.ws_url = ws_url
        self.token = token
        self.counts: collections.Counter[str] = collections.Counter()
        self.value_changes = 0
        self.counting = False
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-state-changes")
        waiter = asyncio.create_task(self._subscribed.wait())
        done, _ = await asyncio.wait({self._task, waiter}, timeout=20)
        waiter.cancel()
        if self._task in done:
            self._task.result()  # raises what went wrong
        if not self._subscribed.is_set():
            raise TimeoutError("no state_changed subscription on HA's WebSocket")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(self.ws_url) as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise RuntimeError("HA refused the bench's token")
            await ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "result" and data.get("id") == 1:
                    self._subscribed.set()
                elif data.get("type") == "event" and self.counting:
                    self._count(data["event"]["data"])

    def _count(self, data: Mapping[str, Any]) -> None:
        self.counts[data.get("entity_id", "?")] += 1
        old, new = data.get("old_state") or {}, data.get("new_state") or {}
        if old.get("state") != new.get("state"):
            self.value_changes += 1


@dataclass(frozen=True)
class Options:
    window_s: float = DEFAULT_WINDOW_S
    warmup_s: float = DEFAULT_WARMUP_S
    baseline_cpu_s: float = DEFAULT_BASELINE_CPU_S


async def run(options: Options | None = None) -> list[Row]:
    if options is None:
        window = os.environ.get(WINDOW_ENV)
        options = Options(window_s=float(window)) if window else Options()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated: list[bool] = []

    def on_sigterm() -> None:
        # Cancel like Ctrl-C does, so the finally blocks stop everything.
        terminated.append(True)
        if task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="gridwatch-bench-demo-") as tmp:
            return await _measure(options, Path(tmp))
    except asyncio.CancelledError:
        if terminated:
            progress("SIGTERM: everything the bench started was stopped")
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _measure(options: Options, root: Path) -> list[Row]:
    import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

    from demo import config_files
    from demo.stack import DemoAppDaemon
    from tests.demo.demo_process import DemoRun, processes_under
    from tests.e2e.appdaemon_proc import AppDaemonConfig

    class NoAppsAppDaemon(DemoAppDaemon):
        """The demo's AppDaemon config with an empty apps.yaml."""

        def write(self) -> None:
            super().write()
            apps_yaml = self.app_dir / "apps.yaml"
            apps_yaml.unlink()
            apps_yaml.write_text("{}\n")

    state_dir = root / "demo"
    demo = DemoRun(state_dir, [])
    baseline: NoAppsAppDaemon | None = None
    counter: StateChangeCounter | None = None
    drain: asyncio.Task[None] | None = None
    try:
        progress(f"starting the demo (state dir {state_dir})")
        began = time.monotonic()
        await demo.start()
        progress(f"demo up in {time.monotonic() - began:.0f} s")
        assert demo.proc is not None
        drain = asyncio.create_task(_drain(demo), name="bench-demo-stdout")
        pids = find_roles([demo.proc.pid, *processes_under(state_dir)])
        missing = set(ROLES) - set(pids)
        if missing:
            raise RuntimeError(f"processes not found: {sorted(missing)}")
        progress("pids: " + ", ".join(f"{k} {v}" for k, v in pids.items()))

        secret_values = yaml.safe_load((state_dir / "appdaemon" / "secrets.yaml").read_text())
        ha_url = demo.urls["Home Assistant"].rstrip("/")
        baseline = NoAppsAppDaemon(
            root / "appdaemon-no-apps",
            AppDaemonConfig(
                ha_url=ha_url, token=demo.token, dashboard_dir=config_files.DASHBOARD_DIR
            ),
            secret_values,
        )
        progress("starting AppDaemon with no apps against the same HA")
        await asyncio.to_thread(baseline.start)
        base_pid = baseline.process.pid
        assert base_pid is not None

        progress(f"warm-up {options.warmup_s:g} s")
        await asyncio.sleep(options.warmup_s)
        _check_alive({**pids, "AppDaemon (no apps)": base_pid})
        mem_apps = read_memory(pids[APPDAEMON])
        mem_none = read_memory(base_pid)

        progress(f"both AppDaemons over {options.baseline_cpu_s:g} s of the same traffic")
        both = {APPDAEMON: pids[APPDAEMON], "no apps": base_pid}
        a = sample_cpu(both)
        await asyncio.sleep(options.baseline_cpu_s)
        _check_alive(both)
        side_s, side, _ = cpu_between(a, sample_cpu(both))
        await asyncio.to_thread(baseline.stop)

        counter = StateChangeCounter(f"{ha_url}/api/websocket", demo.token)
        await counter.start()
        progress(f"window {options.window_s:g} s of demo traffic")
        counter.counting = True
        a = sample_cpu(pids)
        await asyncio.sleep(options.window_s)
        b = sample_cpu(pids)
        counter.counting = False
        _check_alive(pids)
        window_s, shares, machine = cpu_between(a, b)
        mem_end = read_memory(pids[APPDAEMON])
        rate, traffic = summarize_changes(counter.counts, counter.value_changes, window_s)
    finally:
        if counter is not None:
            await counter.stop()
        if baseline is not None:
            await asyncio.to_thread(baseline.stop)
        if drain is not None:
            # demo.stop() reads the rest of stdout itself.
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        progress("stopping the demo")
        await demo.stop()
        for pid in processes_under(root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    extra = mem_apps.rss_kb - mem_none.rss_kb
    rows = [
        row("AppDaemon RSS, 4 apps (after warm-up)", mb(mem_apps.rss_kb), "MB"),
        row("AppDaemon RSS, no apps (same HA)", mb(mem_none.rss_kb), "MB"),
        row("RSS the apps add", mb(extra), "MB", goal=f"< {MEMORY_GOAL_MB:g}"),
        row(
            "PSS the apps add",
            _diff_mb(mem_apps.pss_kb, mem_none.pss_kb),
            "MB",
            note=f"4 apps {mb(mem_apps.pss_kb)}, none {mb(mem_none.pss_kb)}",
        ),
        row(
            "USS the apps add",
            _diff_mb(mem_apps.uss_kb, mem_none.uss_kb),
            "MB",
            note=f"4 apps {mb(mem_apps.uss_kb)}, none {mb(mem_none.uss_kb)}",
        ),
        row(
            "AppDaemon RSS, 4 apps, after the window",
            mb(mem_end.rss_kb),
            "MB",
            note=f"peak (VmHWM) {mb(mem_end.hwm_kb)}",
        ),
        row(
            f"AppDaemon CPU, 4 apps, side by side ({side_s:.0f} s)",
            side[APPDAEMON],
            "% core",
        ),
        row(f"AppDaemon CPU, no apps, same {side_s:.0f} s", side["no apps"], "% core"),
    ]
    for name in ROLES:
        rows.append(row(f"CPU {name} ({window_s:.0f} s window)", shares[name], "% core"))
    rows += [
        row("CPU all four", sum(shares.values()), "% core"),
        row("machine busy (all cores)", machine, "%", note=f"{os.cpu_count()} cores"),
        row("HA state_changed events", rate, "/s", note=traffic),
    ]
    return rows


def _diff_mb(a: int | None, b: int | None) -> float | str:
    return mb(a - b) if a is not None and b is not None else "n/a"


def _check_alive(pids: Mapping[str, int]) -> None:
    for name, pid in pids.items():
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            raise RuntimeError(f"{name} (pid {pid}) exited during the measurement") from None
        if state[state.rindex(")") + 2] == "Z":
            raise RuntimeError(f"{name} (pid {pid}) exited during the measurement")


async def _drain(demo: Any) -> None:
    """Keep reading the demo's stdout so its pipe never fills."""
    while await demo.readline() is not None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_demo", description=__doc__)
    parser.add_argument("--window-s", type=float, default=DEFAULT_WINDOW_S)
    parser.add_argument("--warmup-s", type=float, default=DEFAULT_WARMUP_S)
    parser.add_argument("--baseline-cpu-s", type=float, default=DEFAULT_BASELINE_CPU_S)
    args = parser.parse_args(argv)
    options = Options(args.window_s, args.warmup_s, args.baseline_cpu_s)
    started = time.monotonic()
    try:
        rows = asyncio.run(run(options))
    except KeyboardInterrupt:
        print("interrupted; everything the bench started was stopped", file=sys.stderr)
        return 130
    rows.append(row("bench wall time", time.monotonic() - started, "s"))
    print(format_table("demo", rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
