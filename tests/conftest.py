"""Shared fixtures: each support module is a pytest plugin owning its fixtures."""

import os

from hypothesis import settings

pytest_plugins = [
    "tests.support.mosquitto",
    "tests.support.fault_proxy",
    "tests.support.device_server",
    "tests.support.fake_bleak",
]

# No per-example deadline: a loaded 2-core CI box would turn timing noise into
# failures. In CI the examples are derandomized, so a run is reproducible and
# a red build is never a lucky draw; locally hypothesis keeps exploring.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
