"""HA's time zone, read through the websocket port (lib/gridwatch/energy/ha_zone.py)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gridwatch.energy.ha_zone import ZoneMismatchError, choose_zone, read_ha_time_zone
from gridwatch.hass.errors import CommandError, CommandTimeout
from tests.support.fake_hass import FakeHass, TimeOut


async def test_reads_the_zone_from_get_config():
    hass = FakeHass()
    hass.script_websocket("get_config", {"time_zone": "Asia/Kolkata", "version": "2024.1.6"})

    assert await read_ha_time_zone(hass, 5) == "Asia/Kolkata"
    assert hass.ws_commands == [{"type": "get_config"}]


@pytest.mark.parametrize(
    "answer",
    [{"time_zone": "Mars/Olympus"}, {"version": "2024.1.6"}, {"time_zone": 5}, ["not", "a map"]],
)
async def test_an_unusable_answer_is_a_command_error(answer):
    hass = FakeHass()
    hass.script_websocket("get_config", answer)

    with pytest.raises(CommandError, match="get_config"):
        await read_ha_time_zone(hass, 5)


async def test_no_answer_is_a_timeout():
    hass = FakeHass()
    hass.script_websocket("get_config", TimeOut())

    with pytest.raises(CommandTimeout):
        await read_ha_time_zone(hass, 5)


def test_the_option_may_only_repeat_has_zone():
    assert choose_zone("Europe/Berlin", None).zone == ZoneInfo("Europe/Berlin")
    assert choose_zone("Europe/Berlin", "Europe/Berlin").zone == ZoneInfo("Europe/Berlin")
    with pytest.raises(ZoneMismatchError, match="America/New_York") as info:
        choose_zone("Europe/Berlin", "America/New_York")
    assert info.value.ha_zone == "Europe/Berlin"
