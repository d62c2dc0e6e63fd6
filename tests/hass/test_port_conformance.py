"""The adapter and the test fake implement the whole HassPort, with the
port's own parameter names: a port method added to one and forgotten in the
other fails here, not in an e2e run (mypy does not check tests/)."""

import inspect

import pytest

from gridwatch.hass.ports import HassPort
from gridwatch.runtime.adapter import AppDaemonHassPort
from tests.support.fake_hass import FakeHass


def _port_methods() -> dict[str, inspect.Signature]:
    methods = {}
    for cls in HassPort.__mro__:
        if cls is object or not getattr(cls, "_is_protocol", False):
            continue
        for name, member in vars(cls).items():
            if not name.startswith("_") and callable(member):
                methods.setdefault(name, inspect.signature(member))
    return methods


PORT_METHODS = _port_methods()


def test_the_port_has_methods_to_check():
    # Guards the collection above: an empty list would make the rest vacuous.
    assert {"get_state", "set_entity", "call_service", "now", "monotonic"} <= set(PORT_METHODS)


@pytest.mark.parametrize("impl", [AppDaemonHassPort, FakeHass])
@pytest.mark.parametrize("name", sorted(PORT_METHODS))
def test_implementation_has_the_port_method_with_its_parameters(impl, name):
    method = getattr(impl, name, None)
    assert method is not None, f"{impl.__name__} lacks {name}"
    expected = [p for p in PORT_METHODS[name].parameters if p != "self"]
    actual = [p for p in inspect.signature(method).parameters if p != "self"]
    assert actual[: len(expected)] == expected, f"{impl.__name__}.{name}{actual}"
    assert inspect.iscoroutinefunction(method) == inspect.iscoroutinefunction(
        getattr(HassPort, name)
    ), f"{impl.__name__}.{name}: async-ness differs from the port"
