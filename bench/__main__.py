"""``python -m bench [name ...]``: run benches and print their tables.

See the package docstring for the convention a bench module follows.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
import time
import traceback

import bench
from bench import Row, format_table, row

PREFIX = "bench_"


def available() -> list[str]:
    """Names of the bench modules (``bench_mqtt.py`` -> ``mqtt``), sorted."""
    return sorted(
        info.name.removeprefix(PREFIX)
        for info in pkgutil.iter_modules(bench.__path__)
        if info.name.startswith(PREFIX)
    )


def run_one(name: str) -> list[Row]:
    module = importlib.import_module(f"bench.{PREFIX}{name}")
    started = time.monotonic()
    try:
        rows: list[Row] = asyncio.run(module.run())
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        rows = [row("bench failed", f"{type(err).__name__}: {err}")]
    rows.append(row("bench wall time", time.monotonic() - started, "s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benches to run (default: all of {names})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; available: {', '.join(names)}")
    for name in args.names or names:
        print(f"running bench {name} ...", file=sys.stderr, flush=True)
        print(format_table(name, run_one(name)), flush=True)
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
