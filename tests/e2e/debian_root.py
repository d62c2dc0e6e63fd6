"""A debootstrapped Debian root that hosts an HA venv the host's Python cannot.

HA 2026.2 needs Python >= 3.13.2, Debian 12 has 3.11; HA 2024.1 cannot
install on Debian 13's 3.13. So the HA version the host's python3 does not
fit gets a minimal Debian root of the suite whose python3 does (``ha_matrix``),
cached under ``$GRIDWATCH_CACHE/<suite>-root-<recipe>``, and runs there with
chroot. The recipe digest covers the suite, the package list and the code
that bootstraps: a changed recipe bootstraps a new root beside the old one.

Commands in the root run through ``unshare --mount``: /proc, /dev, a fresh
/tmp and the bind mounts of the test's own directories (at the same path, so
configuration.yaml's paths hold on both sides) live in a private mount
namespace of that one process tree. The kernel drops them when its last
process exits, however it exits (SIGKILL and a killed test run included),
so no mount is ever left behind in the cache. HA in the root shares the
host's network namespace: AppDaemon on the host reaches it on loopback.

Root only (chroot, mount); ``./run`` and CI run as root.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.progress import run_with_progress

# Packages beyond minbase: a venv with headers and compilers for the sdists
# without a wheel for the root's Python (HA 2026.2's pymicro-vad and
# pyspeex-noise are C++), certificates for pip, the zone database HA reads
# the site's time zone from, and libturbojpeg, which HA 2026's camera module
# loads when HA describes its services (without it: an error at every boot).
INCLUDE = (
    "python3",
    "python3-venv",
    "python3-dev",
    "gcc",
    "g++",
    "ca-certificates",
    "tzdata",
    "libturbojpeg0",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# debootstrap fetches ~100 packages: ~45-70 s measured; bounded all the same.
DEBOOTSTRAP_TIMEOUT_S = 900
# Inside the root: where the host's CA bundle (the one pip uses here) goes.
ROOT_PIP_CERT = "/etc/gridwatch/pip-ca.crt"
READY_STAMP = ".gridwatch-root-ready"

# Runs in the new mount namespace: every mount below is private to it.
# $1 = root, then directories to bind at the same path, "--", the command.
_ENTER_SH = r"""
set -eu
root=$1; shift
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
# A tmpfs on the root's /tmp: mount points made for test directories under
# /tmp vanish with the namespace too.
mount -t tmpfs tmpfs "$root/tmp"
while [ "$1" != "--" ]; do
  mkdir -p "$root$1"
  mount --bind "$1" "$root$1"
  shift
done
shift
exec chroot "$root" /usr/bin/env -i \
  PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"
"""


@dataclass(frozen=True)
class DebianRoot:
    """One cached Debian root.

    Attributes:
        path: where it lives (``$GRIDWATCH_CACHE/<suite>-root-<recipe>``).
        suite: Debian suite (``trixie``, ``bookworm``).
    """

    path: Path
    suite: str

    @property
    def ready(self) -> bool:
        """True once a complete debootstrap left its stamp."""
        return (self.path / READY_STAMP).is_file()

    def ensure(self) -> None:
        """Create the root unless a complete one is cached.

        A half-made root (an interrupted run) is in ``<path>.partial`` and is
        started over; the finished root is moved into place in one rename.

        Raises:
            RuntimeError: not root, or no debootstrap.
            subprocess.CalledProcessError: debootstrap failed.
        """
        check_private_mounts()
        if not self.ready:
            self._bootstrap()
        self._copy_host_files()

    def host_path(self, inside: Path) -> Path:
        """The host's path of a path inside the root."""
        return self.path / inside.relative_to("/")

    def command(
        self, argv: Sequence[str], binds: Iterable[Path] = (), env: Sequence[str] = ()
    ) -> list[str]:
        """The host command line that runs ``argv`` inside the root.

        Args:
            argv: the command as the root sees it (absolute program path).
            binds: host directories to make visible at the same path.
            env: ``KEY=value`` pairs for the command's (otherwise minimal) env.

        Returns:
            An argv for subprocess; the process it starts becomes ``argv``'s
            program (exec all the way), so signals reach it directly.
        """
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _ENTER_SH,
            "gridwatch-root",
            str(self.path),
            *(str(Path(b).resolve()) for b in binds),
            "--",
            *env,
            *argv,
        ]

    def _bootstrap(self) -> None:
        _require_root_and("debootstrap")
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(self.path, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        mirror = os.environ.get("GRIDWATCH_DEBIAN_MIRROR", DEFAULT_MIRROR)
        run_with_progress(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                self.suite,
                str(partial),
                mirror,
            ],
            f"debootstrap: building a Debian {self.suite} root in {self.path} "
            "(once per recipe, ~1-2 min)",
            timeout=DEBOOTSTRAP_TIMEOUT_S,
            quiet=True,
        )
        (partial / READY_STAMP).write_text(" ".join(INCLUDE) + "\n")
        partial.rename(self.path)

    def _copy_host_files(self) -> None:
        # pip in the root needs to resolve names and trust what the host's
        # pip trusts (a site CA included); both can change: copy each time.
        shutil.copyfile("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        cert = host_pip_cert()
        if cert is not None:
            target = self.host_path(Path(ROOT_PIP_CERT))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cert, target)

    def pip_env(self) -> list[str]:
        """Environment for pip inside the root (``KEY=value`` pairs)."""
        env = ["PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_DEFAULT_TIMEOUT=180"]
        if self.host_path(Path(ROOT_PIP_CERT)).is_file():
            env.append(f"PIP_CERT={ROOT_PIP_CERT}")
        return env


@functools.cache
def root_recipe_digest(suite: str) -> str:
    """The key of a cached root: suite, packages and the bootstrap code (12 hex)."""
    recipe = hashlib.sha256()
    recipe.update(f"{suite}\0{' '.join(INCLUDE)}\0".encode())
    recipe.update(inspect.getsource(DebianRoot._bootstrap).encode())
    return recipe.hexdigest()[:12]


class NoPrivateMounts(RuntimeError):
    """This host cannot give a process its own mount namespace."""


@functools.cache
def check_private_mounts() -> None:
    """Fail with one clear sentence where ``unshare --mount`` cannot work.

    Raises:
        NoPrivateMounts: in a container or chroot where "/" is not a mount
            point (or without CAP_SYS_ADMIN), a private mount namespace
            cannot be made, so the root's /proc and bind mounts cannot be.
    """
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise NoPrivateMounts(
            "This Home Assistant version runs in a Debian root, which needs a private mount "
            f"namespace, and this host cannot make one ({why}): run ./run on a machine or VM "
            "as root, or in a container started with --privileged (where '/' is a mount "
            "point), or on a Debian release whose python3 fits this HA (./run test --ha "
            "VERSION picks one version)."
        )


def host_pip_cert() -> Path | None:
    """The CA bundle the host's pip is configured with, if any.

    ``PIP_CERT`` first, then ``pip config`` (``global.cert`` / ``install.cert``).
    """
    named = os.environ.get("PIP_CERT")
    if not named:
        try:
            listing = subprocess.run(
                [sys.executable, "-m", "pip", "config", "list"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            listing = ""
        named = parse_pip_cert(listing)
    if named and Path(named).is_file():
        return Path(named)
    return None


def parse_pip_cert(listing: str) -> str | None:
    """Pick the ``cert`` setting out of ``pip config list`` output."""
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".cert") and value:
            return value.strip().strip("'\"")
    return None


def _require_root_and(program: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(
            "a Debian root for Home Assistant needs root (debootstrap, chroot, mount): "
            "run ./run as root or under sudo"
        )
    if shutil.which(program) is None:
        raise RuntimeError(f"{program} is not installed: apt-get install {program} (./run does)")
