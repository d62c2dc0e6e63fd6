"""Fixtures the demo's unit tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from demo.ha_rest import HaRest
from tests.demo.fake_ha_rest import TOKEN, FakeHaRest


@pytest.fixture
async def rest(ha: FakeHaRest) -> AsyncIterator[HaRest]:
    """The demo's REST client on the module's stand-in HA (its ``ha`` fixture)."""
    client = HaRest(ha.url, TOKEN)
    try:
        yield client
    finally:
        await client.close()
