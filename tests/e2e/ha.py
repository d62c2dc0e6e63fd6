"""A real Home Assistant process for the end-to-end tests.

Boots ``hass -c DIR --skip-pip`` from HA's own venv on a free loopback port,
creates the owner and a long-lived access token through onboarding on the
first boot, and can restart mid-test. The token lives in HA's ``.storage``,
so it stays valid across restarts.

This side is synchronous (it runs in fixtures, outside any event loop); tests
talk to HA through the async client in ``ha_client``. ``restart_async`` runs
the blocking restart in a worker thread so a test's loop keeps turning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.ha_config import HaConfig
from tests.e2e.ha_install import HaInstall
from tests.e2e.process import ManagedProcess, ProcessDied, wait_until

OWNER_USERNAME = "gridwatch"
# A throwaway password for a throwaway instance on loopback.
OWNER_PASSWORD = "gridwatch-e2e-password"
# Cold boot on a busy 2-core CI box takes ~5 s; leave room for a slow disk.
BOOT_TIMEOUT_S = 120.0
# Graceful stop flushes the recorder; it normally takes 1-3 s.
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
# HA's http integration logs this (and carries on) when its port is taken.
HTTP_BIND_FAILED = "Failed to create HTTP server at port"
# What HA logs (and carries on) when an integration or platform of the
# config does not set up: a missing requirement, a YAML option a newer HA
# dropped. The tests depending on it would only time out, one by one.
SETUP_FAILED = re.compile(
    r"^.*(Setup failed for|Error setting up platform|Unable to prepare setup for platform"
    r"|Unable to set up dependencies of|Invalid config for|Unknown integration|Platform error:)"
    r".*$",
    re.MULTILINE,
)


def setup_failures(log: str) -> list[str]:
    """HA's log lines that say an integration or platform did not set up."""
    return [match.group(0).strip() for match in SETUP_FAILED.finditer(log)]


class HaSetupError(RuntimeError):
    """HA runs but did not set up what the tests need (or cannot list services)."""


class HaRequestError(RuntimeError):
    """Home Assistant answered an HTTP request with an error status."""

    def __init__(self, status: int, url: str, body: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status


class HomeAssistant:
    """One Home Assistant instance under test.

    Args:
        install: Where HA is installed.
        config_dir: Its config directory (written on first start).
        config: What goes into configuration.yaml.
    """

    def __init__(self, install: HaInstall, config_dir: Path, config: HaConfig) -> None:
        self.install = install
        self.config_dir = config_dir
        self.config = config
        self.url = f"http://127.0.0.1:{config.port}"
        self.ws_url = f"{self.url}/api/websocket"
        self._token_file = config_dir / ".gridwatch-e2e-token"
        self.token: str = ""
        self.boot_seconds: list[float] = []
        config_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "hass",
            install.command(
                [
                    str(install.hass),
                    "--config",
                    str(config_dir.resolve()),
                    # Requirements were installed up front (ha_install); pip
                    # checks at boot only cost time.
                    "--skip-pip",
                    "--log-no-color",
                ],
                # In a Debian root HA sees its config dir at the same path.
                binds=[config_dir],
            ),
            config_dir / "hass-console.log",
        )

    def start(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        """Start HA and wait until it reports RUNNING (onboarding it once).

        Args:
            timeout: Seconds allowed for the boot.

        Raises:
            TimeoutError: HA did not come up in time.
            ProcessDied: HA exited during the boot.
        """
        if not (self.config_dir / "configuration.yaml").is_file():
            self.config.write(self.config_dir)
        began = time.monotonic()
        log_mark = len(self.process.log_text())
        self.process.start()

        def alive() -> None:
            self.process.check_alive()
            # HA keeps running without its HTTP server when the port is
            # taken: fail now, not after the whole boot timeout.
            if HTTP_BIND_FAILED in self.process.log_text()[log_mark:]:
                raise ProcessDied(f"hass could not bind its port:\n{self.process.log_tail()}")

        wait_until(self._http_up, timeout, what="HA HTTP server", alive=alive)
        if self._token_file.is_file():
            self.token = self._token_file.read_text().strip()
        else:
            self.token = self._onboard()
            self._token_file.write_text(self.token)
        remaining = max(1.0, timeout - (time.monotonic() - began))
        wait_until(self._running, remaining, what="HA state RUNNING", alive=alive)
        self.boot_seconds.append(time.monotonic() - began)
        self.check_setup(self.process.log_text()[log_mark:])

    def check_setup(self, boot_log: str) -> None:
        """Fail at once if HA did not set up the config or cannot list services.

        Args:
            boot_log: HA's log since this start.

        Raises:
            HaSetupError: with HA's own lines, naming the version.
        """
        problems = setup_failures(boot_log)
        config = _request("GET", f"{self.url}/api/config", headers=self.headers)
        loaded = set(config.get("components", [])) if isinstance(config, dict) else set()
        wanted = set(self.config.as_dict(self.config_dir)) - {"homeassistant"}
        problems += [f"integration {d!r} is not loaded" for d in sorted(wanted - loaded)]
        try:
            # AppDaemon learns every service through this command; if it
            # fails AppDaemon knows none and each call_service is refused.
            _run_coroutine(_ws_command(self.ws_url, self.token, "get_services"))
        except Exception as err:
            problems.append(f"websocket get_services failed: {err}")
        if problems:
            raise HaSetupError(
                f"{self.install.describe()} did not set up what the tests need:\n  "
                + "\n  ".join(problems)
                + f"\nlog tail:\n{self.process.log_tail(40)}"
            )

    def stop(self) -> None:
        """Stop HA gracefully (SIGKILL after STOP_TIMEOUT_S)."""
        self.process.stop(STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop and start HA; the token and ``.storage`` survive."""
        self.stop()
        self.start()

    async def restart_async(self) -> None:
        """Restart from async test code without blocking its event loop."""
        await asyncio.to_thread(self.restart)

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for REST calls."""
        return {"Authorization": f"Bearer {self.token}"}

    def failure_logs(self) -> list[tuple[str, str]]:
        """Titled log tails to attach to a failed test's report."""
        return [("home assistant log (tail)", self.process.log_tail())]

    # -- readiness ---------------------------------------------------------

    def _http_up(self) -> bool:
        # /api/onboarding needs no auth, so it answers before any token exists;
        # once onboarding is complete HA answers it 404: any HTTP status means up.
        try:
            _request("GET", f"{self.url}/api/onboarding", timeout=2)
        except HaRequestError:
            return True
        except OSError:
            return False
        return True

    def _running(self) -> bool:
        try:
            config = _request("GET", f"{self.url}/api/config", headers=self.headers, timeout=2)
        except (OSError, HaRequestError):
            return False
        return isinstance(config, dict) and config.get("state") == "RUNNING"

    # -- onboarding --------------------------------------------------------

    def _onboard(self) -> str:
        # The frontend's first step on a fresh install: owner user -> auth
        # code -> tokens, then a long-lived token for AppDaemon. The later
        # steps are skipped on purpose: finishing core_config sets up met,
        # shopping_list, radio_browser and google_translate, which only cost
        # boot time (and want the network).
        client_id = f"{self.url}/"
        created = _request(
            "POST",
            f"{self.url}/api/onboarding/users",
            body={
                "client_id": client_id,
                "name": "Gridwatch",
                "username": OWNER_USERNAME,
                "password": OWNER_PASSWORD,
                "language": "en",
            },
        )
        tokens = _request(
            "POST",
            f"{self.url}/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": created["auth_code"],
                "client_id": client_id,
            },
        )
        token: str = _run_coroutine(_long_lived_token(self.ws_url, tokens["access_token"]))
        return token


def _request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Any:
    data: bytes | None = None
    all_headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise HaRequestError(err.code, url, err.read().decode(errors="replace")) from err
    return json.loads(raw) if raw else None


def _run_coroutine(coro: Any) -> Any:
    # A fresh loop in a worker thread: fixtures may run while pytest-asyncio
    # owns the main thread's loop, which asyncio.run must not replace.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


async def _ws_command(ws_url: str, access_token: str, kind: str) -> Any:
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_receive=20)) as ws,
    ):
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": access_token})
        auth = await ws.receive_json()
        if auth.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {auth}")
        await ws.send_json({"id": 1, "type": kind})
        answer = await ws.receive_json()
        if not answer.get("success"):
            raise RuntimeError(f"{kind} failed: {answer.get('error')}")
        return answer.get("result")


async def _long_lived_token(ws_url: str, access_token: str) -> str:
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_receive=10)) as ws,
    ):
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": access_token})
        auth = await ws.receive_json()
        if auth.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {auth}")
        await ws.send_json(
            {
                "id": 1,
                "type": "auth/long_lived_access_token",
                "client_name": "gridwatch-e2e",
                "lifespan": 3650,
            }
        )
        result = await ws.receive_json()
        if not result.get("success"):
            raise RuntimeError(f"long-lived token refused: {result}")
        token: str = result["result"]
        return token
