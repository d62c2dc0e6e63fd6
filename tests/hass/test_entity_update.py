"""The one entity-update type and the changed-only writer (gridwatch.hass.entity_update)."""

import asyncio
import logging

from gridwatch.hass.entity_update import ChangedOnlyWriter, EntityUpdate
from gridwatch.hass.errors import HassError
from tests.support.fake_hass import FakeHass

HEARTBEAT = frozenset({"last_good"})


class _FailingWriter:
    def __init__(self) -> None:
        self.calls = 0

    async def set_entity(self, entity_id, state, attributes):
        self.calls += 1
        raise HassError("HA answered 400")


class _StuckWriter:
    async def set_entity(self, entity_id, state, attributes):
        await asyncio.Event().wait()


async def test_writer_skips_unchanged_and_retries_failures(caplog):
    hass = FakeHass()
    pub = ChangedOnlyWriter(hass, logging.getLogger("t"))
    update = EntityUpdate("sensor.x", "1", {"a": 1})
    assert await pub.write(update)
    assert not await pub.write(EntityUpdate("sensor.x", "1", {"a": 1}))
    assert await pub.write(EntityUpdate("sensor.x", "1", {"a": 2}))
    assert len(hass.entity_writes) == 2

    failing = _FailingWriter()
    pub = ChangedOnlyWriter(failing, logging.getLogger("t"))
    assert not await pub.write(update)
    assert not await pub.write(update)
    assert failing.calls == 2  # not remembered as written: tried again
    assert "could not write sensor.x" in caplog.text


async def test_writer_writes_a_heartbeat_only_change_at_most_once_a_minute():
    hass = FakeHass()
    clock = hass.clock
    pub = ChangedOnlyWriter(
        hass, logging.getLogger("t"), clock=clock.monotonic, heartbeat_attributes=HEARTBEAT
    )

    def beat(value, at):
        return EntityUpdate("sensor.p", value, {"stale": False, "last_good": at})

    assert await pub.write(beat("5", None))
    assert await pub.write(beat("5", "12:00:01"))  # first heartbeat: news
    clock.advance(30)
    assert not await pub.write(beat("5", "12:00:31"))  # only ticking: held back
    assert await pub.write(beat("6", "12:00:32"))  # a new value always goes out
    clock.advance(59)
    assert not await pub.write(beat("6", "12:01:31"))
    clock.advance(1)
    assert await pub.write(beat("6", "12:01:32"))  # a minute on: refreshed
    assert [w[1] for w in hass.entity_writes] == ["5", "5", "6", "6"]


async def test_writer_bounds_a_stuck_write():
    pub = ChangedOnlyWriter(_StuckWriter(), logging.getLogger("t"), timeout_s=0.05)
    assert not await pub.write(EntityUpdate("sensor.x", "1", {}))
