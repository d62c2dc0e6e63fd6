"""The ``entities:`` block: good blocks load, anything else is one ConfigError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.config.base import ConfigError
from gridwatch.config.entities_schema import (
    EntitiesConfig,
    MqttEntitiesConfig,
    load_app_config,
)
from gridwatch.config.notifier_schema import NotifierSchema


def load(block: Any) -> EntitiesConfig:
    _, entities = load_app_config(NotifierSchema, {"entities": block}, app_name="notifier")
    return entities


def test_a_full_block_loads_with_defaults_filled_in():
    entities = load({"backend": "mqtt", "mqtt": {"host": "core-mosquitto"}})
    assert entities == EntitiesConfig(
        backend="mqtt",
        mqtt=MqttEntitiesConfig(
            host="core-mosquitto",
            port=1883,
            keepalive_s=30,
            discovery_prefix="homeassistant",
            base_topic="gridwatch",
            birth_topic="homeassistant/status",
        ),
    )


def test_rest_may_carry_the_broker_block_unused():
    # apps.yaml keeps the broker block while backend says rest: one word switches.
    assert load({"backend": "rest", "mqtt": {"host": "b"}}).backend == "rest"


def test_the_password_is_not_in_the_repr():
    entities = load({"backend": "mqtt", "mqtt": {"host": "b", "username": "u", "password": "pw"}})
    assert "pw" not in repr(entities)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(["backend", "mqtt", "host", "port", "username", "password", "tls", "x"])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        _json,
        st.dictionaries(_keys, _json, max_size=4),
        st.fixed_dictionaries(
            {"backend": st.sampled_from(["mqtt", "rest"])},
            optional={"mqtt": st.dictionaries(_keys, _json, max_size=5)},
        ),
    )
)
def test_any_block_loads_or_is_a_config_error(block):
    problems: tuple[Any, ...] = ()
    try:
        entities = load(block)
    except ConfigError as err:
        problems = err.problems
    if problems:
        assert all(p.key.startswith("entities") for p in problems)
        return
    assert entities.backend in ("rest", "mqtt")
    if entities.backend == "mqtt":
        assert entities.mqtt is not None
