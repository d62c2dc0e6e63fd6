"""A real mosquitto broker on a free loopback port, for MQTT tests and benches.

Fixtures (pytest plugin, registered in tests/conftest.py):

- ``mosquitto``: one anonymous broker per test session. It can be stopped,
  started and restarted on the same port; a test that stops it restarts it
  before it ends (``start()`` is idempotent, so a ``finally: start()`` is safe).
- ``mosquitto_auth``: one broker per session that requires a password
  (user :data:`AUTH_USER`, password :data:`AUTH_PASSWORD`), for the
  refused-credentials scenario.

Tests that use them are marked ``@pytest.mark.mqtt``. The broker is Debian's
``/usr/sbin/mosquitto``; its log is kept in the broker's tmp dir and quoted
when it fails to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

MOSQUITTO_BIN = os.environ.get("GRIDWATCH_MOSQUITTO", "/usr/sbin/mosquitto")
MOSQUITTO_PASSWD_BIN = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
AUTH_USER = "gridwatch"
AUTH_PASSWORD = "correct-horse"
# A loopback broker listens within tens of milliseconds; this much slack
# covers a loaded CI machine without hiding a broker that cannot start.
START_TIMEOUT_S = 10.0
# mosquitto exits on SIGTERM at once; past this it is killed.
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.01


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class BrokerError(RuntimeError):
    """The broker could not be started."""


class Mosquitto:
    """One mosquitto process with its own config in ``workdir``.

    Args:
        workdir: a directory for config, password file and log.
        users: if given, anonymous access is off and these users
            (name -> password) may connect.
        extra_config: more mosquitto.conf lines (e.g. queue limits for a bench).
        port: the port to listen on (default: a free one, kept across restarts).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        extra_config: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.users = dict(users or {})
        self.extra_config = list(extra_config)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    def __enter__(self) -> Mosquitto:
        """Start the broker; leaving the block always stops it."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._alive()

    def _alive(self) -> bool:
        # A method, not only the property: mypy would narrow a property read
        # twice across _spawn() as if it could not change.
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            # Tests must start from a clean broker: no retained messages or
            # sessions carried over from an earlier run.
            "persistence false",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to user "mosquitto", which
            # cannot read a password file in a private tmp dir (CI runs as root).
            lines.append("user root")
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                subprocess.run(
                    [MOSQUITTO_PASSWD_BIN, *create, "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        lines += self.extra_config
        self.config_path.write_text("\n".join(lines) + "\n")

    def _spawn(self) -> None:
        if not os.path.exists(MOSQUITTO_BIN):
            raise BrokerError(
                f"{MOSQUITTO_BIN} not found: install Debian's mosquitto (apt-get install mosquitto)"
            )
        # Append: a restart keeps the earlier log, which helps when a test fails.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [MOSQUITTO_BIN, "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _start_failed(self, why: str) -> BrokerError:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        return BrokerError(f"mosquitto on {self.host}:{self.port} {why}; log:\n{tail}")

    def start(self) -> None:
        """Start the broker (no-op if running) and wait until it accepts.

        Raises:
            BrokerError: it exited or did not accept within START_TIMEOUT_S.
        """
        if self.running:
            return
        self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepting():
            if not self._alive():
                raise self._start_failed("exited at start")
            if time.monotonic() > deadline:
                raise self._start_failed(f"not accepting after {START_TIMEOUT_S} s")
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    # Async variants: poll without blocking the event loop, so links under
    # test keep running (and noticing the outage) while the broker bounces.

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop."""
        if self.running:
            return
        self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                async with asyncio.timeout(0.5):
                    _, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError):
                if not self._alive():
                    raise self._start_failed("exited at start") from None
                if time.monotonic() > deadline:
                    raise self._start_failed(f"not accepting after {START_TIMEOUT_S} s") from None
                await asyncio.sleep(POLL_INTERVAL_S)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
                return
            await asyncio.sleep(POLL_INTERVAL_S)

    async def arestart(self) -> None:
        """:meth:`restart` without blocking the event loop."""
        await self.astop()
        await self.astart()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """An anonymous mosquitto broker on a free loopback port, for the session."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker that only accepts AUTH_USER / AUTH_PASSWORD, for the session."""
    with Mosquitto(
        tmp_path_factory.mktemp("mosquitto-auth"), users={AUTH_USER: AUTH_PASSWORD}
    ) as broker:
        yield broker
