"""Long setup steps say what they do and show they are alive.

A fresh machine spends minutes in pip and debootstrap; a silent terminal for
that long reads as a hang. ``run_with_progress`` prints what it starts, a
line at least every ``PROGRESS_EVERY_S`` while it runs, and how long it took.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

# At least a line this often: a CI log or a newcomer's terminal never looks
# stuck for longer.
PROGRESS_EVERY_S = 15.0


def run_with_progress(
    command: Sequence[str],
    what: str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> None:
    """Run ``command`` to completion, printing progress lines to stderr.

    Args:
        command: The argv.
        what: What it does, for the lines ("pip: installing ...").
        timeout: Kill it after this many seconds.
        env: The environment (default: inherited).
        quiet: Discard the command's own stdout (its stderr still shows).

    Raises:
        subprocess.CalledProcessError: it failed.
        subprocess.TimeoutExpired: it took longer than ``timeout``.
    """
    began = time.monotonic()
    print(f"    {what} ...", file=sys.stderr, flush=True)
    with subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
        env=dict(env) if env is not None else None,
    ) as process:
        while True:
            elapsed = time.monotonic() - began
            if elapsed > timeout:
                process.kill()
                process.wait()
                raise subprocess.TimeoutExpired(list(command), timeout)
            try:
                code = process.wait(timeout=min(PROGRESS_EVERY_S, timeout - elapsed + 0.1))
                break
            except subprocess.TimeoutExpired:
                print(
                    f"    ... still {what} ({time.monotonic() - began:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    if code != 0:
        raise subprocess.CalledProcessError(code, list(command))
    print(f"    {what}: done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
