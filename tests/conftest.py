"""Shared fixtures: each support module is a pytest plugin owning its fixtures."""

pytest_plugins = [
    "tests.support.mosquitto",
    "tests.support.fault_proxy",
    "tests.support.device_server",
    "tests.support.fake_bleak",
]
