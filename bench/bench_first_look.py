"""The demo's first look (issue 21): how long until the panel is full.

Starts ``python -m demo`` with a fresh state dir (as a new user's first run,
HA's venv already installed: ``./run demo`` checks it in a second), opens
the panel in headless Chromium through AppDaemon's login form as soon as the
URLs are printed, and measures from the launch:

* to the URLs (every part started, the meters' past imported);
* to a panel with every tile showing a live value (the energy tally's today
  and this month tiles included) and the export chart drawn.

Optionally keeps the demo running while its story plays and saves a
screenshot of the panel (``--screenshot docs/panel.png --story-s
420``: the README's picture).

Run::

    .venv/bin/python -m bench first_look
    .venv/bin/python -m bench.bench_first_look --ha 2026.2.3
    .venv/bin/python -m bench.bench_first_look --screenshot docs/panel.png --story-s 420
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import Row, format_table, progress, row

PANEL_TIMEOUT_S = 120.0
# The panel's size: 8 columns of tiles, the chart three rows high.
WINDOW = (1040, 1280)


@dataclass(frozen=True)
class Options:
    ha: str | None = None
    frontend: bool = True
    screenshot: Path | None = None
    story_s: float = 0.0


async def run(options: Options | None = None) -> list[Row]:
    """Start the demo, time the first full panel, stop everything."""
    from tests.demo.cdp import Browser
    from tests.demo.demo_process import DemoRun
    from tests.demo.panel import LIVE_TILES, READ_WIDGETS, login, wait_tiles

    options = options or Options()
    args = ["--duration", str(int(PANEL_TIMEOUT_S + options.story_s + 120))]
    if not options.frontend:
        args.append("--no-frontend")
    if options.ha:
        args += ["--ha", options.ha]
    with tempfile.TemporaryDirectory(prefix="gridwatch-first-look-") as tmp:
        root = Path(tmp)
        demo = DemoRun(root / "state", args)
        launched = time.monotonic()
        try:
            progress(f"starting the demo ({' '.join(args)})")
            await demo.start()
            urls_at = time.monotonic()
            progress(f"URLs after {urls_at - launched:.1f} s; opening the panel")
            (root / "chromium").mkdir()
            async with Browser(root / "chromium", *WINDOW) as browser:
                panel = demo.urls["Gridwatch panel"]
                await login(browser, panel, demo.ad_password)
                widgets, full_at = await wait_tiles(browser, LIVE_TILES, PANEL_TIMEOUT_S)
                while not (widgets.get("export-chart", {}).get("img") or {}).get("width"):
                    await asyncio.sleep(0.25)
                    widgets = await browser.evaluate(READ_WIDGETS)
                chart_at = time.monotonic()
                if options.screenshot is not None:
                    progress(f"letting the story play for {options.story_s:g} s")
                    await asyncio.sleep(options.story_s)
                    await browser.goto(panel)  # a fresh chart, as a tablet's refresh
                    await wait_tiles(browser, LIVE_TILES, 30)
                    await asyncio.sleep(5)  # the chart image and the gauge's animation
                    await browser.screenshot(options.screenshot)
                    progress(f"saved {options.screenshot}")
        finally:
            await demo.stop()
    past = next((line for line in demo.lines if "days of past" in line), "")
    return [
        row("launch -> URLs printed (fresh state dir)", urls_at - launched, "s"),
        row("launch -> every tile live (tally included)", full_at - launched, "s", "< 60"),
        row("launch -> export chart drawn", chart_at - launched, "s"),
        row("URLs -> every tile live", full_at - urls_at, "s", "< 60"),
        row("tiles checked", len(LIVE_TILES), "", note="tests/demo/panel.py LIVE_TILES"),
        row("history import", past.split("imported")[-1].strip() or "not seen"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_first_look")
    parser.add_argument("--ha", default=None, help="HA version (default: the demo's)")
    parser.add_argument("--no-frontend", action="store_true", help="skip HA's web UI")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the panel here")
    parser.add_argument(
        "--story-s", type=float, default=420.0, help="story time before the screenshot"
    )
    args = parser.parse_args(argv)
    rows = asyncio.run(
        run(
            Options(
                ha=args.ha,
                frontend=not args.no_frontend,
                screenshot=args.screenshot.resolve() if args.screenshot else None,
                story_s=args.story_s if args.screenshot else 0.0,
            )
        )
    )
    print(format_table("first_look", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
