"""Two MQTT links with one fixed client_id, against a real mosquitto.

Issue 22 (fault run): two links (or two installs) with the same client_id
take the session from each other; each connection carried a retained
message, so each loss restarted the backoff and both reconnected about once
a second for ever. The link must notice the fight, back off, and say in
last_error that another client uses the id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import gridwatch.transport.mqtt_link as mqtt_module
from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from gridwatch.transport.mqtt_takeover import SHORT_LIVED_S, TakeoverWatch
from tests.support.mosquitto import Mosquitto
from tests.transport.mqtt_helpers import Inbox, unique, wait_until

pytestmark = pytest.mark.mqtt

# Quick first retries so a fight shows within a second; the cap is far above
# the first step, so "backs off" is visible as the delays climbing to it.
FIGHT_BACKOFF = BackoffPolicy(initial_s=0.05, factor=2.0, cap_s=0.8, jitter=0.0)
FIGHT_WAIT_S = 15.0


class RecordingSleep:
    """The reconnect sleep: real, but each delay is recorded per link."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


@pytest.fixture
async def retained_topic(mosquitto: Mosquitto) -> AsyncIterator[str]:
    """A topic holding a retained message: every connection carries data."""
    topic = unique("fight")
    publisher = MqttLink("pub", MqttSettings(host=mosquitto.host, port=mosquitto.port))
    await publisher.connect(timeout=5)
    await publisher.publish(topic, b"42", qos=1, retain=True)
    try:
        yield topic
    finally:
        await publisher.publish(topic, b"", qos=1, retain=True)
        await publisher.disconnect()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_two_links_with_one_client_id_back_off_and_say_why(
    mosquitto: Mosquitto, retained_topic: str, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection that holds this long ends the fight (150 s in service).
    monkeypatch.setattr(mqtt_module, "FIGHT_OVER_AFTER_S", 1.0)
    client_id = f"gw-shared-{uuid.uuid4().hex[:6]}"
    settings = MqttSettings(
        host=mosquitto.host, port=mosquitto.port, client_id=client_id, protocol=protocol
    )
    sleeps = [RecordingSleep(), RecordingSleep()]
    links = [
        MqttLink(f"twin{i}", settings, backoff=FIGHT_BACKOFF, sleep=sleeps[i]) for i in range(2)
    ]
    try:
        for link in links:
            await link.subscribe(retained_topic, Inbox(), qos=1)
            link.start()

        def told() -> bool:
            return any(
                client_id in (link.health.last_error or "")
                and "another client" in (link.health.last_error or "")
                for link in links
            )

        await wait_until(told, timeout=FIGHT_WAIT_S)
        # Backed off: the reconnect delays climb to the cap instead of
        # starting over after every connection that carried the retained
        # message.
        await wait_until(
            lambda: any(FIGHT_BACKOFF.cap_s in s.delays for s in sleeps), timeout=FIGHT_WAIT_S
        )

        # The other install goes away: the survivor's connection holds, and
        # the fight is over.
        survivor, other = links
        await other.disconnect()
        await wait_until(
            lambda: survivor.connected and survivor.health.last_error is None,
            timeout=FIGHT_WAIT_S,
        )
    finally:
        for link in links:
            await link.disconnect()


async def test_a_link_with_its_own_client_id_is_no_fight(
    mosquitto: Mosquitto, retained_topic: str
) -> None:
    links = [
        MqttLink(
            f"own{i}",
            MqttSettings(
                host=mosquitto.host,
                port=mosquitto.port,
                client_id=f"own-{i}-{uuid.uuid4().hex[:6]}",
            ),
            backoff=FIGHT_BACKOFF,
        )
        for i in range(2)
    ]
    try:
        for link in links:
            await link.subscribe(retained_topic, Inbox(), qos=1)
            await link.connect(timeout=5)
        await asyncio.sleep(0.5)
        assert all(link.connected and link.health.reconnects == 0 for link in links)
        assert all(link.health.last_error is None for link in links)
    finally:
        for link in links:
            await link.disconnect()


# ---------------------------------------------------------------------------
# the pattern itself (pure)


def test_three_quick_closes_by_the_broker_are_a_fight() -> None:
    watch = TakeoverWatch()
    assert not watch.closed(1.0, by_broker=True, taken_over=False)
    assert not watch.closed(2.0, by_broker=True, taken_over=False)
    assert watch.closed(1.5, by_broker=True, taken_over=False)
    # Slower now (the backoff climbs) but still pushed out: still a fight.
    assert watch.closed(60.0, by_broker=True, taken_over=False)


@pytest.mark.parametrize(
    ("up_for", "by_broker"),
    [(SHORT_LIVED_S + 1, True), (1.0, False)],
    ids=["a long connection", "a keepalive timeout"],
)
def test_a_streak_is_broken_by_a_long_connection_or_a_dead_path(
    up_for: float, by_broker: bool
) -> None:
    watch = TakeoverWatch()
    watch.closed(1.0, by_broker=True, taken_over=False)
    watch.closed(1.0, by_broker=True, taken_over=False)
    assert not watch.closed(up_for, by_broker=by_broker, taken_over=False)
    assert not watch.closed(1.0, by_broker=True, taken_over=False)


def test_session_taken_over_is_a_fight_at_once_and_a_held_connection_ends_it() -> None:
    watch = TakeoverWatch()
    assert watch.closed(100.0, by_broker=True, taken_over=True)
    watch.held()
    assert not watch.fighting
    assert not watch.closed(1.0, by_broker=True, taken_over=False)
