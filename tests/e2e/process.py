"""Child processes for the end-to-end harness: start, log to a file, stop for sure.

Home Assistant and AppDaemon run as real processes. Each one writes stdout and
stderr to a log file (never a pipe: a full pipe buffer would stall the child),
lives in its own process group so a stop reaches any grandchild too, and is
stopped with SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

# How much of a log to show when a test fails: enough for a traceback and the
# lines leading to it, short enough to read in a CI log.
LOG_TAIL_LINES = 80


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The port is released before returning, so another process could take it
    in between; on a loopback-only test host that race is rare and the child's
    start-up error names the port if it happens.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a text file ('' if it does not exist).

    Args:
        path: The file to read.
        lines: How many lines to keep from the end.

    Returns:
        The tail, lines joined with newlines.
    """
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.1,
    what: str = "condition",
    alive: Callable[[], None] | None = None,
) -> None:
    """Poll a synchronous predicate until it is true or the deadline passes.

    Args:
        predicate: Called repeatedly; truthy ends the wait.
        timeout: Seconds before giving up.
        interval: Seconds between polls.
        what: Named in the timeout message.
        alive: Called before each poll; raises when the awaited process died,
            so a crash fails at once instead of after the whole timeout.

    Raises:
        TimeoutError: The predicate stayed false until the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class ProcessDied(RuntimeError):
    """The child exited while the harness was waiting for it."""


class ManagedProcess:
    """One child process with its output in a log file.

    Args:
        name: Short name used in messages (``hass``, ``appdaemon``).
        argv: The command line.
        log_path: File that receives stdout and stderr (appended to, so a
            restarted process keeps one continuous log).
        env: Extra environment variables for the child.
        cwd: Working directory of the child.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs, else None."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child (a no-op if it already runs)."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env,
            cwd=self._cwd,
            # Own process group: the stop signal reaches helpers it spawned.
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        """True while the child has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        """Raise if the child was started and has exited since.

        Raises:
            ProcessDied: With the exit code and the log tail.
        """
        if self._proc is not None and self._proc.poll() is not None:
            raise ProcessDied(
                f"{self.name} exited with code {self._proc.returncode}; log tail:\n"
                f"{tail(self.log_path)}"
            )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the child: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Safe to call twice or on a process that never started.

        Args:
            timeout: Seconds to wait for a graceful exit.

        Returns:
            The exit code, or None if no process was started.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal(proc, signal.SIGKILL)
                    proc.wait(timeout=10)
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The group may be gone already (the child exited between poll and
        # kill); that is the outcome we wanted, not an error.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def log_text(self) -> str:
        """Return the whole log written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines of the log."""
        return tail(self.log_path, lines)
