"""The cached Debian root: a process in it sees the test's directory, and no
mount outlives it, not even when it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.debian_root import DebianRoot
from tests.e2e.ha_install import install_for
from tests.e2e.ha_matrix import TESTED_HA
from tests.e2e.process import wait_until


def _cached_root() -> DebianRoot | None:
    for version in TESTED_HA:
        root = install_for(version).root
        if root is not None:
            return root
    return None


ROOT = _cached_root()

pytestmark = [
    # Runs with the HA legs (./run test's second leg installs the root while
    # the first runs, so on a fresh machine it is there only for the second).
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mount need root"),
    pytest.mark.skipif(
        ROOT is None or not ROOT.ready,
        reason="no Debian root cached (./run installs it when an HA version needs one)",
    ),
]


def _mounts_under(path: Path, pid: int | str = "self") -> list[str]:
    mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
    return [line for line in mountinfo.splitlines() if f" {path}" in line]


def test_a_killed_process_in_the_root_leaves_no_mount_behind(tmp_path: Path) -> None:
    assert ROOT is not None
    shared = tmp_path / "shared"
    shared.mkdir()
    # Writes through the bind mount, at the same path as on the host, then waits.
    script = f"echo from-the-root > {shared}/hello; exec sleep 600"
    proc = subprocess.Popen(
        ROOT.command(["/bin/sh", "-c", script], binds=[shared]),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until((shared / "hello").is_file, 30, what="the file written inside the root")
        # The bind exists in the process's namespace (its paths read from
        # inside its root), never on the host.
        assert _mounts_under(shared, proc.pid)
        assert not _mounts_under(shared)
        assert not _mounts_under(ROOT.path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    assert (shared / "hello").read_text() == "from-the-root\n"
    assert not _mounts_under(ROOT.path)
    # Its /tmp was a tmpfs of the namespace: the mount point made for the
    # test directory is gone with it.
    assert not (ROOT.path / shared.relative_to("/")).exists()
