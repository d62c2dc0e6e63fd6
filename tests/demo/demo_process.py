"""Run ``python -m demo`` as a child process, for the demo's end-to-end tests.

Reads its stdout line by line, finds the URLs it prints, and stops it for
sure: SIGINT (the demo then stops everything it started), and as a last
resort SIGKILL of anything still running from the test's state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import bcrypt

REPO = Path(__file__).resolve().parents[2]
# Fresh state dir: HA onboards once (~10 s), AppDaemon starts (~5 s); both
# on a shared 2-core box.
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
_URL = re.compile(
    r"^\s+(Home Assistant|Gridwatch panel|AppDaemon admin|AppDaemon password):\s+(\S+)"
)


def processes_under(path: Path) -> list[int]:
    """Pids of running processes whose command line mentions ``path``."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
            if needle in cmdline and "State:\tZ" not in status:
                found.append(int(entry.name))
    return found


@dataclass
class DemoRun:
    """One ``python -m demo`` child."""

    state_dir: Path
    args: list[str]
    lines: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    _stderr: IO[bytes] | None = None

    async def start(self) -> None:
        """Start it and wait until it printed its URLs."""
        self._stderr = (self.state_dir.parent / "demo-stderr.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "demo",
            "--state-dir",
            str(self.state_dir),
            *self.args,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )
        async with asyncio.timeout(START_TIMEOUT_S):
            while "AppDaemon password" not in self.urls:
                line = await self.readline()
                if line is None:
                    raise RuntimeError("the demo exited early:\n" + self.output())
                match = _URL.match(line)
                if match:
                    self.urls[match.group(1)] = match.group(2)

    async def readline(self) -> str | None:
        """The next stdout line (None at EOF)."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            return None
        line = raw.decode(errors="replace").rstrip("\n")
        self.lines.append(line)
        return line

    async def wait_line(self, text: str, timeout: float) -> str:
        """Read stdout until a line containing ``text``; return that line."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self.readline()
                if line is None:
                    raise RuntimeError(f"the demo exited before printing {text!r}")
                if text in line:
                    return line

    async def wait(self, timeout: float) -> int:
        """Read the rest of stdout and wait for the exit code."""
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            while await self.readline() is not None:
                pass
            return await self.proc.wait()

    def output(self) -> str:
        stderr = self.state_dir.parent / "demo-stderr.log"
        err = stderr.read_text(errors="replace")[-3000:] if stderr.exists() else ""
        return "\n".join(self.lines) + "\n--- stderr (tail) ---\n" + err

    @property
    def ad_password(self) -> str:
        """AppDaemon's ``http: password`` the demo printed."""
        return self.urls["AppDaemon password"]

    def ad_cookies(self) -> dict[str, str]:
        """The cookie AppDaemon sets after its login form: a bcrypt hash of the password."""
        hashed = bcrypt.hashpw(self.ad_password.encode(), bcrypt.gensalt(4))
        return {"adcreds": hashed.decode()}

    @property
    def ad_headers(self) -> dict[str, str]:
        """The header AppDaemon's API takes the password in."""
        return {"x-ad-access": self.ad_password}

    @property
    def token(self) -> str:
        return (self.state_dir / "homeassistant" / ".gridwatch-e2e-token").read_text().strip()

    async def stop(self) -> None:
        """Stop the demo if it still runs; kill whatever it left behind."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await self.wait(STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        # Only processes started for this test's own state dir.
        for pid in processes_under(self.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._stderr is not None:
            self._stderr.close()
