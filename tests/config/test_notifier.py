"""The notifier's schema: good and bad entries."""

from __future__ import annotations

import pytest

from gridwatch.config import ConfigError, load_config
from gridwatch.config.notifier_schema import NotifierConfig, NotifierSchema

AD = {"name": "notifier", "module": "gridwatch_notifier", "class": "Notifier"}


def test_defaults():
    config = load_config(NotifierSchema, AD, into=NotifierConfig)
    assert config == NotifierConfig(
        min_repost_s=60.0, push_services=(), repeat_s=900.0, tick_s=10.0, state_file=""
    )


def test_full_entry():
    args = {
        **AD,
        "min_repost_s": 30,
        "push_services": ["notify.mobile_app_phone", "notify/family"],
        "repeat_minutes": 0,
        "tick_s": 5,
        "state_file": "/config/n.json",
    }
    config = load_config(NotifierSchema, args, into=NotifierConfig)
    assert config.push_services == ("notify/mobile_app_phone", "notify/family")
    assert config.repeat_s is None
    assert config.min_repost_s == 30
    assert config.state_file == "/config/n.json"


@pytest.mark.parametrize(
    ("bad", "key", "why"),
    [
        ({"min_repost_s": -1}, "min_repost_s", "greater than or equal to 0"),
        ({"push_services": ["light.kitchen"]}, "push_services", "not a notify service"),
        ({"push_services": "notify.phone"}, "push_services", "Not a valid list"),
        ({"repeat_minutes": "often"}, "repeat_minutes", "Not a valid number"),
        ({"tick_s": 0}, "tick_s", "greater than or equal to 1"),
        ({"repeat_minuts": 5}, "repeat_minuts", "did you mean 'repeat_minutes'"),
    ],
)
def test_bad_entries_name_the_key_and_why(bad, key, why):
    with pytest.raises(ConfigError) as info:
        load_config(NotifierSchema, {**AD, **bad})
    text = str(info.value)
    assert any(k.startswith(key) for k in info.value.keys), info.value.keys
    assert why in text


def test_every_field_has_an_example():
    for name, field in NotifierSchema().fields.items():
        assert "example" in field.metadata, name
        load_config(NotifierSchema, {name: field.metadata["example"]})
