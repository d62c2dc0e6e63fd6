"""Headless Chromium driven over the DevTools protocol, for the panel test.

``--dump-dom`` and ``--screenshot`` fire right after the load event, before
HADashboard's websocket has delivered any state; driving the page over the
DevTools protocol lets the test wait for live values and then take the
screenshot. Only aiohttp is needed (no browser driver package).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import aiohttp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium writes its DevTools port here once it listens (a cold start on
# the CI box takes 1-3 s).
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 15.0


class Browser:
    """One headless Chromium with one page.

    Args:
        profile: an empty directory for the browser profile.
        width: window width in pixels.
        height: window height in pixels.
    """

    def __init__(self, profile: Path, width: int = 1024, height: int = 900) -> None:
        self.profile = profile
        self.size = (width, height)
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _start(self) -> None:
        self._log = (self.profile.parent / "chromium.log").open("wb")
        self._proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._log,
        )
        port_file = self.profile / "DevToolsActivePort"
        async with asyncio.timeout(START_TIMEOUT_S):
            while not port_file.exists() or not port_file.read_text().strip():
                if self._proc.returncode is not None:
                    raise RuntimeError(f"chromium exited with {self._proc.returncode}")
                await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(
            page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024
        )

    async def close(self) -> None:
        """Close the connection and stop the browser (killed if it lingers)."""
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 10)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result."""
        assert self._ws is not None
        seq = next(self._ids)
        await self._ws.send_json({"id": seq, "method": method, "params": params})
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            while True:
                msg = await self._ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"DevTools connection closed: {msg.type}")
                data = json.loads(msg.data)
                if data.get("id") == seq:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    result: dict[str, Any] = data.get("result", {})
                    return result

    async def goto(self, url: str) -> None:
        await self.command("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; returns its JSON-able value."""
        result = await self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page."""
        data = await self.command("Page.captureScreenshot", format="png")
        png = base64.b64decode(data["data"])

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)

        await asyncio.to_thread(write)
        return path
