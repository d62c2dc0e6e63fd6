"""Which Home Assistant versions the suite is tested against, and on which Python.

Pure data and one pure choice, so the choice is unit-tested without a
machine of each kind (tests/e2e/test_ha_matrix.py).

Each HA release needs a Python of its own range (checked from the wheels'
``Requires-Python`` and pins):

- 2024.1.x: >= 3.11, and in effect < 3.13 (its pin
  home-assistant-bluetooth==1.12.0 requires < 3.13);
- 2026.2.x: >= 3.13.2 (2026.3 needs >= 3.14.2, which AppDaemon 4.5.13
  refuses: 2026.2.x is the newest HA this suite can be tested beside).

HA runs in a venv of the host's ``python3`` when that Python fits; otherwise
in a Debian root (debootstrap) whose own ``python3`` fits: bookworm's 3.11
for 2024.1, trixie's 3.13 for 2026.2. So a Debian 12 host (3.11) runs
2024.1.6 directly and 2026.2.3 in a trixie root; a Debian 13 host (3.13.5)
the other way round. AppDaemon and the tests always run on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, ...]

# The oldest supported and the newest AppDaemon 4.5.13 can sit beside.
OLDEST_HA = "2024.1.6"
NEWEST_HA = "2026.2.3"
TESTED_HA = (OLDEST_HA, NEWEST_HA)


@dataclass(frozen=True)
class PythonRange:
    """A half-open range of Python versions: ``low <= v < high``."""

    low: Version
    high: Version

    def __contains__(self, version: object) -> bool:
        return isinstance(version, tuple) and self.low <= version < self.high

    def __str__(self) -> str:
        return f">= {_dotted(self.low)}, < {_dotted(self.high)}"


# HA release (year, month) from which on a range holds, newest first.
_HA_PYTHON: tuple[tuple[Version, PythonRange], ...] = (
    ((2026, 3), PythonRange((3, 14, 2), (3, 15))),
    ((2025, 5), PythonRange((3, 13, 2), (3, 14))),
    ((2025, 2), PythonRange((3, 13, 0), (3, 14))),
    ((2024, 4), PythonRange((3, 12), (3, 14))),
    ((2024, 1), PythonRange((3, 11), (3, 13))),
)

# Debian releases whose python3 can host an HA venv, with that python3.
DEBIAN_PYTHON: dict[str, Version] = {
    "bookworm": (3, 11, 2),  # Debian 12
    "trixie": (3, 13, 5),  # Debian 13
}


@dataclass(frozen=True)
class Runtime:
    """Where one HA version runs.

    Attributes:
        ha_version: e.g. ``2026.2.3``.
        suite: ``None`` to use the host's python3, else the Debian suite of
            the root that holds HA's venv (``trixie``, ``bookworm``).
    """

    ha_version: str
    suite: str | None

    @property
    def in_root(self) -> bool:
        """True when HA runs chrooted into a Debian root."""
        return self.suite is not None


class NoPythonForHa(RuntimeError):
    """Neither the host's python3 nor any known Debian root fits this HA."""


def parse_version(text: str) -> Version:
    """``"3.13.5"`` -> ``(3, 13, 5)``; ``"2026.2.3"`` -> ``(2026, 2, 3)``.

    Raises:
        ValueError: not dotted integers.
    """
    return tuple(int(part) for part in text.strip().split("."))


def python_range(ha_version: str) -> PythonRange:
    """The Pythons an HA release installs and runs on.

    Raises:
        ValueError: an HA version older than the oldest supported.
    """
    year_month = parse_version(ha_version)[:2]
    for since, supported in _HA_PYTHON:
        if year_month >= since:
            return supported
    raise ValueError(f"Home Assistant {ha_version} is older than the oldest supported {OLDEST_HA}")


def choose_runtime(ha_version: str, host_python: Version) -> Runtime:
    """Pick the host's python3 if it fits this HA, else a Debian root that does.

    Args:
        ha_version: the HA release.
        host_python: the host python3's version.

    Returns:
        Where HA runs.

    Raises:
        NoPythonForHa: no candidate fits.
    """
    wanted = python_range(ha_version)
    if host_python in wanted:
        return Runtime(ha_version, None)
    for suite, python in DEBIAN_PYTHON.items():
        if python in wanted:
            return Runtime(ha_version, suite)
    raise NoPythonForHa(
        f"Home Assistant {ha_version} needs Python {wanted}; the host has "
        f"{_dotted(host_python)} and no known Debian root fits"
    )


def _dotted(version: Version) -> str:
    return ".".join(str(part) for part in version)


def host_packages(runtime: Runtime) -> tuple[str, ...]:
    """Debian packages the host needs for one HA leg.

    A root needs debootstrap (its own packages come with it, see
    ``debian_root.INCLUDE``). HA 2025+ run on the host itself needs what the
    root would have brought: C++ and Python headers for the sdists without
    a wheel (pymicro-vad, pyspeex-noise), and libturbojpeg.
    """
    if runtime.in_root:
        return ("debootstrap",)
    if parse_version(runtime.ha_version)[:2] >= (2025, 1):
        return ("g++", "python3-dev", "libturbojpeg0")
    return ()
