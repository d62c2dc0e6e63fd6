"""The Gridwatch panel rendered in headless Chromium against the running demo.

Checks that the widgets show live values from HA (not the empty fields a
widget starts with, nor HADashboard's error tiles) and saves a screenshot as
``artifacts/gridwatch-panel.png``.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from tests.demo.cdp import CHROMIUM, Browser
from tests.demo.demo_process import REPO, DemoRun

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
]

SCREENSHOT = REPO / "artifacts" / "gridwatch-panel.png"
# Widgets whose entities the simulator and the links keep live from the first
# seconds on (the energy totals need HA's 5-minute statistics first).
LIVE_WIDGETS = {
    "guard-health": "healthy",
    "headroom-power": "number",
    "grid-power": "number",
    "pv-power": "number",
    "battery-power": "number",
    "export-today": "number",
    "gateway-grid-power": "number",
    "controller-soc": "number",
    "gateway-status": "connected",
    "controller-status": "connected",
    "controller-api-status": "connected",
    "bms-status": "connected",
    "bms-cell-voltage": "number",
    "notices": "number",
    "tally-health": "text",
}
# What each widget shows: the value text of display widgets; a gauge draws
# its value into an SVG text node.
READ_WIDGETS = """
(() => {
  const out = {};
  for (const w of document.querySelectorAll('.widget')) {
    const value = w.querySelector('.value');
    const texts = [...w.querySelectorAll('svg text')].map(t => t.textContent.trim());
    out[w.id.replace(/^default-/, '')] = {
      value: value ? value.textContent.trim() : null,
      gauge: texts,
      classes: w.className,
    };
  }
  return out;
})()
"""


GAUGE_VALUE = re.compile(r"\d+(\.\d+)?\s*%")


def _live(kind: str, text: str | None) -> bool:
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


async def test_panel_shows_live_values_in_chromium(tmp_path):
    run = DemoRun(tmp_path / "state", ["--duration", "150", "--no-frontend"])
    try:
        await run.start()
        panel = run.urls["Gridwatch panel"]
        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        async with Browser(profile, width=1040, height=960) as browser:
            await browser.goto(panel)
            widgets: dict = {}

            def dead() -> dict[str, str | None]:
                return {
                    name: widgets.get(name, {}).get("value")
                    for name, kind in LIVE_WIDGETS.items()
                    if not _live(kind, widgets.get(name, {}).get("value"))
                }

            try:
                async with asyncio.timeout(60):
                    while dead():
                        await asyncio.sleep(0.25)
                        widgets = await browser.evaluate(READ_WIDGETS) or {}
            except TimeoutError:
                await browser.screenshot(SCREENSHOT)
                pytest.fail(f"widgets without a live value after 60 s: {dead()}")
            # The gauge is drawn by JustGage into SVG: value, min and max texts.
            async with asyncio.timeout(20):
                while not any(GAUGE_VALUE.fullmatch(t) for t in widgets["battery-soc"]["gauge"]):
                    await asyncio.sleep(0.25)
                    widgets = await browser.evaluate(READ_WIDGETS)
            errors = await browser.evaluate(
                "[...document.querySelectorAll('.widget-baseerror-default')].length"
            )
            await browser.screenshot(SCREENSHOT)
    finally:
        await run.stop()
    assert errors == 0
    assert SCREENSHOT.stat().st_size > 10_000
    # Every widget of the layout was created.
    assert {"guard-health", "battery-soc", "site-pv-month", "controller-api-connected"} <= set(
        widgets
    )
