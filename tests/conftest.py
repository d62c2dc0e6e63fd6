"""Shared fixtures: each support module is a pytest plugin owning its fixtures."""

import os

import pytest
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


@pytest.hookimpl(trylast=True)  # after tests/e2e/conftest.py marked its tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # ./run test's second leg (the newer HA) runs only the tests that boot HA:
    # the rest does not depend on the HA version and ran in the first leg.
    if not os.environ.get("GRIDWATCH_E2E_ONLY"):
        return

    # Long real-time scenarios about the guard's physics, not HA's version,
    # run in the first leg only: the whole run stays near 15 minutes.
    def second_leg(item: pytest.Item) -> bool:
        return bool(item.get_closest_marker("e2e")) and not item.get_closest_marker("one_leg")

    kept = [item for item in items if second_leg(item)]
    dropped = [item for item in items if not second_leg(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
