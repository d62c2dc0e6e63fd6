"""``python -m demo``: run the Gridwatch demo stack until Ctrl-C (or --duration)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from demo.config_files import DEMO_APPS_YAML
from demo.stack import DEFAULT_STATE_DIR, DemoOptions, run_demo
from tests.e2e.ha_matrix import NEWEST_HA, OLDEST_HA, TESTED_HA


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> DemoOptions:
    """Parse the command line into :class:`DemoOptions`."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "Run Home Assistant, mosquitto, a simulated home energy site and AppDaemon "
            "with the Gridwatch apps, and print the URLs to look at."
        ),
    )
    parser.add_argument(
        "--duration",
        type=_positive,
        default=None,
        metavar="N",
        help="stop cleanly after N seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default 1; 60 plays an hour a minute)",
    )
    parser.add_argument(
        "--start-hour",
        type=float,
        default=10.0,
        metavar="H",
        help="simulated time of day to start at, 0-24 (default 10: the sun is up)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"HA's and AppDaemon's config, database and logs (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--no-frontend",
        action="store_true",
        help="do not load HA's web UI (faster boot; the Gridwatch panel still works)",
    )
    parser.add_argument(
        "--apps-yaml",
        type=Path,
        default=DEMO_APPS_YAML,
        metavar="PATH",
        help=(
            "the apps.yaml AppDaemon runs (default: the repository's apps.yaml); "
            "AppDaemon reloads an app when its entry in the file is edited (AppDaemon "
            "4.5.13 misses a deleted key: restart the demo after deleting one)"
        ),
    )
    parser.add_argument(
        "--no-apps-check",
        action="store_true",
        help=(
            "start even if apps.yaml is invalid (its problems are printed as a warning): "
            "each bad app then refuses to run, with one error in AppDaemon's log and a "
            "notification in Home Assistant, and the other apps run"
        ),
    )
    parser.add_argument(
        "--entities",
        choices=("rest", "mqtt"),
        default="rest",
        help=(
            "how the apps write their entities: rest (HA's REST API, the default) or mqtt "
            "(MQTT discovery through the demo's broker, with HA's MQTT integration set up: "
            "entities with a unique id and a device each app)"
        ),
    )
    parser.add_argument(
        "--ha",
        default=os.environ.get("GRIDWATCH_HA_VERSION") or OLDEST_HA,
        choices=TESTED_HA,
        metavar="VERSION",
        help=(
            f"the Home Assistant version to run: {' or '.join(TESTED_HA)} (default "
            f"{OLDEST_HA}; {NEWEST_HA} runs in a Debian 13 root where the host's Python "
            "is older than 3.13.2)"
        ),
    )
    parser.add_argument(
        "--no-story",
        action="store_true",
        help=(
            "do not play the scripted story (a discharge request, a cloud, a load spike, "
            "a grid meter fault and its recovery, announced here); the panel's tiles work "
            "either way"
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug lines")
    args = parser.parse_args(argv)
    if not 0 <= args.start_hour < 24:
        parser.error("--start-hour must be in [0, 24)")
    if not args.apps_yaml.is_file():
        parser.error(f"--apps-yaml: no such file: {args.apps_yaml}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return DemoOptions(
        duration_s=args.duration,
        speed=args.speed,
        start_hour=args.start_hour,
        state_dir=args.state_dir,
        frontend=not args.no_frontend,
        apps_yaml=args.apps_yaml,
        check_apps=not args.no_apps_check,
        entities=args.entities,
        ha_version=args.ha,
        story=not args.no_story,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    options = parse_args(argv)
    return asyncio.run(run_demo(options, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
