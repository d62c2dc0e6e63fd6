"""The Gridwatch panel as a person sees it: login, tiles, chart (headless Chromium).

Shared by the panel test (tests/demo/test_dashboard.py) and the first-look
bench (bench/bench_first_look.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Final

from tests.demo.cdp import Browser

# The energy tally's tiles: per meter and per site, today and this month.
TALLY_TILES: Final = tuple(
    f"{prefix}-{period}"
    for prefix in (
        "grid-import",
        "grid-export",
        "pv",
        "battery",
        "site-import",
        "site-export",
        "site-pv",
    )
    for period in ("today", "month")
)
# Widgets whose entities the simulator and the links keep live from the first
# seconds on: their kind of value.
LIVE_TILES: Final = {
    "guard-health": "healthy",
    "headroom-power": "number",
    "grid-power": "number",
    "pv-power": "number",
    "battery-power": "number",
    "gateway-grid-power": "number",
    "controller-soc": "number",
    "export-today": "number",
    "headroom-energy": "number",
    "gateway-status": "connected",
    "controller-status": "connected",
    "controller-api-status": "connected",
    "bms-status": "connected",
    "bms-cell-voltage": "number",
    "notices": "number",
    "tally-health": "text",
    **dict.fromkeys(TALLY_TILES, "number"),
}
# What each widget shows: the value text of display widgets; a gauge draws
# its value into an SVG text node; the chart is an <img>.
READ_WIDGETS: Final = """
(() => {
  const out = {};
  for (const w of document.querySelectorAll('.widget')) {
    const value = w.querySelector('.value');
    const texts = [...w.querySelectorAll('svg text')].map(t => t.textContent.trim());
    const img = w.querySelector('img.img-frame');
    out[w.id.replace(/^default-/, '')] = {
      value: value ? value.textContent.trim() : null,
      gauge: texts,
      classes: w.className,
      img: img ? {src: img.getAttribute('src'), width: img.naturalWidth} : null,
    };
  }
  return out;
})()
"""


def fetch_chart(minutes: int) -> str:
    """JavaScript that fetches the chart as the logged-in page does (its cookies)."""
    return f"""
fetch('/app/export_guard_chart?minutes={minutes}', {{credentials: 'same-origin'}})
  .then(async r => ({{status: r.status, type: r.headers.get('content-type'),
                      text: await r.text()}}))
"""


GAUGE_VALUE: Final = re.compile(r"\d+(\.\d+)?\s*%")
# pygal draws each series in a <g class="series serie-N ..."> with one path.
_SERIES: Final = re.compile(r'<g class="series serie-(\d+)[^"]*">\s*<path d="([^"]*)"')


def is_live(kind: str, text: str | None) -> bool:
    """True when a tile shows the kind of value it should (not '', unknown ...)."""
    if not text:
        return False
    if kind == "number":
        try:
            float(text.replace(",", ""))
        except ValueError:
            return False
        return True
    if kind == "text":
        return text.lower() not in ("unknown", "unavailable")
    return text == kind


def dead_tiles(widgets: dict[str, Any], spec: dict[str, str]) -> dict[str, str | None]:
    """The tiles of ``spec`` that do not show a live value yet."""
    return {
        name: widgets.get(name, {}).get("value")
        for name, kind in spec.items()
        if not is_live(kind, widgets.get(name, {}).get("value"))
    }


def series_points(svg: str) -> list[int]:
    """How many points each pygal series' line has, in series order."""
    out = []
    for _index, path in _SERIES.findall(svg):
        out.append(len(re.findall(r"-?\d+(?:\.\d+)?\s+-?\d+(?:\.\d+)?", path)))
    return out


async def until(browser: Browser, expression: str, timeout: float, what: str) -> Any:
    """Evaluate ``expression`` in the page until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await browser.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.2)


async def login(browser: Browser, panel_url: str, password: str) -> None:
    """Open the panel through AppDaemon's login form, as a person does."""
    await browser.goto(panel_url)
    await until(browser, "!!document.forms.login", 30, "AppDaemon's login form")
    await browser.evaluate(
        "document.querySelector('input[type=password]').value = "
        f"{json.dumps(password)}; document.forms.login.submit(); true"
    )
    await until(browser, "document.cookie.includes('adcreds')", 30, "AppDaemon's login cookie")
    await browser.goto(panel_url)


async def wait_tiles(
    browser: Browser, spec: dict[str, str], timeout: float
) -> tuple[dict[str, Any], float]:
    """Read the widgets until every tile of ``spec`` is live.

    Returns:
        The widgets and the monotonic time they were all live.

    Raises:
        TimeoutError: naming the tiles still dead.
    """
    widgets: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while True:
        widgets = await browser.evaluate(READ_WIDGETS) or {}
        dead = dead_tiles(widgets, spec)
        if not dead:
            return widgets, time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"tiles without a live value after {timeout:g} s: {dead}")
        await asyncio.sleep(0.25)
