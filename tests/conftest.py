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


# Before pytest-xdist reads the groups; a hook of its own name beside the other.
@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def group_tests_by_module(items: list[pytest.Item]) -> None:
    # ./run test runs pytest-xdist with --dist loadgroup: a module's tests stay
    # on one worker (its module fixtures and HA scenarios stay in order there),
    # except modules whose tests are independent and long, which say
    # SPLIT_ACROSS_WORKERS = True and are dealt out test by test (the export
    # guard's e2e file alone would otherwise be the longest path of a leg).
    for item in items:
        module = getattr(item, "module", None)
        if not getattr(module, "SPLIT_ACROSS_WORKERS", False):
            item.add_marker(pytest.mark.xdist_group(item.path.name))


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
