"""MqttLink regressions from the independent fault run (issue 12), against a
real mosquitto: subscriptions made while connect() runs, overlapping
connect() calls, persistent sessions and their backlog, the data watchdog."""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.health import HealthPolicy, LinkState
from gridwatch.transport.link import Subscription
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from gridwatch.transport.watchdog import DataWatchdog
from tests.support.fault_proxy import FaultProxyFactory
from tests.support.mosquitto import Mosquitto
from tests.transport.mqtt_helpers import FAST_BACKOFF, Inbox, unique, wait_until

pytestmark = pytest.mark.mqtt

LinkFactory = Callable[..., MqttLink]
# Queued messages a persistent session holds while the link is away: enough
# that the SUBACK of the resubscribe sits behind a long backlog.
BACKLOG = 20_000


@pytest.fixture(scope="module")
def deep_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker that queues without limit and sends the whole queue at once
    (no in-flight window), as a broker with a deep persistent session does."""
    with Mosquitto(
        tmp_path_factory.mktemp("mosquitto-deep"),
        extra_config=["max_queued_messages 0", "max_inflight_messages 0"],
    ) as broker:
        yield broker


@pytest.fixture
async def make_link() -> AsyncIterator[LinkFactory]:
    links: list[MqttLink] = []

    def make(
        host: str,
        port: int,
        *,
        health: HealthPolicy | None = None,
        link_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> MqttLink:
        options: dict[str, Any] = {"backoff": FAST_BACKOFF, **(link_options or {})}
        if health is not None:
            options["health"] = health
        link = MqttLink("t", MqttSettings(host=host, port=port, **settings), **options)
        links.append(link)
        return link

    yield make
    for link in links:
        await link.disconnect()


def publish_blocking(broker: Mosquitto, topic: str, payloads: list[bytes], qos: int = 1) -> None:
    """Publish with plain paho from a worker thread (another client)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=qos) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


async def publish(broker: Mosquitto, topic: str, payloads: list[bytes], qos: int = 1) -> None:
    await asyncio.wait_for(
        asyncio.to_thread(publish_blocking, broker, topic, payloads, qos), timeout=60
    )


# ---------------------------------------------------------------------------
# subscriptions made while connect() runs


async def test_subscribe_made_while_the_replay_runs_delivers(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    base = unique("during")
    first, late = Inbox(), Inbox()
    await link.subscribe(f"{base}/first", first, qos=1)
    original = link._replay_subscriptions

    async def replay_then_subscribe(subs: list[Subscription]) -> None:
        await original(subs)
        if not any(s.key == f"{base}/late" for s in subs):
            # The app subscribes while the attempt is still under way.
            await link.subscribe(f"{base}/late", late, qos=1)

    link._replay_subscriptions = replay_then_subscribe  # type: ignore[method-assign]
    await link.connect(timeout=5)
    await link.publish(f"{base}/late", b"x", qos=1)
    await late.wait_for(lambda i: i.payloads == [b"x"])


async def test_subscribes_at_random_moments_of_connect_all_deliver(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    rng = random.Random(12)
    link = make_link(mosquitto.host, mosquitto.port)
    base = unique("random")
    inbox = Inbox()
    topics = []
    for round_ in range(20):
        topic = f"{base}/{round_}"
        topics.append(topic)
        connecting = asyncio.create_task(link.connect(timeout=5))
        await asyncio.sleep(rng.uniform(0, 0.01))
        await link.subscribe(topic, inbox, qos=1)
        await connecting
        assert link.connected
        await link.publish(topic, topic.encode(), qos=1)
        await inbox.wait_for(lambda i, t=topic: i.on(t) == [t.encode()])
        await link.disconnect()


# ---------------------------------------------------------------------------
# overlapping connect() calls


async def test_overlapping_connects_make_one_healthy_connection(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    base = unique("overlap")
    inbox = Inbox()
    await link.subscribe(f"{base}/t", inbox, qos=1)
    for _ in range(12):
        await asyncio.wait_for(asyncio.gather(link.connect(), link.connect()), 10)
        assert link.connected
        assert link.health.state is LinkState.CONNECTED
        await link.publish(f"{base}/t", b"1", qos=1)
        await inbox.wait_for(lambda i: len(i.messages) >= 1)
        inbox.messages.clear()
        await link.disconnect()
    assert link.health.attempts == 12


# ---------------------------------------------------------------------------
# persistent session


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_persistent_session_delivers_what_was_queued_while_away(
    mosquitto: Mosquitto, make_link: LinkFactory, protocol: str
) -> None:
    base = unique("persist")
    link = make_link(
        mosquitto.host,
        mosquitto.port,
        protocol=protocol,
        clean_session=False,
        client_id=f"gw-persist-{uuid.uuid4().hex[:8]}",
        session_expiry_s=60,
    )
    inbox = Inbox()
    await link.subscribe(f"{base}/q", inbox, qos=1)
    await link.connect(timeout=5)
    await link.disconnect()
    await publish(mosquitto, f"{base}/q", [str(i).encode() for i in range(50)])
    await link.connect(timeout=5)
    await inbox.wait_for(lambda i: len(i.messages) == 50)
    assert sorted(int(p) for p in inbox.payloads) == list(range(50))


async def test_clean_session_forgets_what_was_queued(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    base = unique("clean")
    link = make_link(mosquitto.host, mosquitto.port, client_id=f"gw-clean-{uuid.uuid4().hex[:8]}")
    inbox = Inbox()
    await link.subscribe(f"{base}/q", inbox, qos=1)
    await link.connect(timeout=5)
    await link.disconnect()
    await publish(mosquitto, f"{base}/q", [b"lost"])
    await link.connect(timeout=5)
    await link.publish(f"{base}/q", b"marker", qos=1)
    await inbox.wait_for(lambda i: b"marker" in i.payloads)
    assert inbox.payloads == [b"marker"]


async def test_a_backlog_ahead_of_the_suback_is_no_failed_attempt(
    deep_broker: Mosquitto, make_link: LinkFactory
) -> None:
    base = unique("backlog")
    link = make_link(
        deep_broker.host,
        deep_broker.port,
        clean_session=False,
        client_id=f"gw-backlog-{uuid.uuid4().hex[:8]}",
        # Shorter than the backlog takes to drain on any machine.
        request_timeout_s=0.2,
    )
    inbox = Inbox()
    await link.subscribe(f"{base}/q", inbox, qos=1)
    await link.connect(timeout=5)
    await link.disconnect()
    await publish(deep_broker, f"{base}/q", [b"%d" % i for i in range(BACKLOG)])
    await link.connect(timeout=5)
    await inbox.wait_for(lambda i: len(i.messages) >= BACKLOG, timeout=60)
    health = link.health
    assert (health.attempts, health.successes, health.consecutive_failures) == (2, 2, 0)
    assert link.connected
    assert len(set(inbox.payloads)) == BACKLOG


async def test_resets_while_a_backlog_drains_keep_the_backoff_low(
    deep_broker: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    proxy = await fault_proxy(deep_broker.host, deep_broker.port)
    base = unique("rst")
    delays: list[float] = []

    async def recording_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(delay)

    # A schedule that would reach seconds within a few failed attempts.
    backoff = BackoffPolicy(initial_s=0.05, factor=4.0, cap_s=5.0, jitter=0.0)
    link = make_link(
        proxy.host,
        proxy.port,
        clean_session=False,
        client_id=f"gw-rst-{uuid.uuid4().hex[:8]}",
        request_timeout_s=0.2,
        link_options={"backoff": backoff, "sleep": recording_sleep},
    )
    inbox = Inbox()
    await link.subscribe(f"{base}/q", inbox, qos=1)
    await link.connect(timeout=5)
    await link.disconnect()
    await publish(deep_broker, f"{base}/q", [b"%d" % i for i in range(BACKLOG)])
    link.start()
    # Reset the path each time another slice of the backlog has arrived, so
    # no connection drains it all (QoS 1: what was not acknowledged comes
    # again on the next connection).
    slice_ = BACKLOG // 10
    delivered = 0
    while delivered < BACKLOG:
        target = min(BACKLOG, delivered + slice_)
        await inbox.wait_for(lambda i, t=target: len(set(i.payloads)) >= t, timeout=30)
        delivered = len(set(inbox.payloads))
        if delivered < BACKLOG:
            proxy.cut()
    assert link.health.reconnects >= 2  # it took several connections
    # A connection that carried data is no failure: the schedule starts over
    # after it (a reset that lands during a connect may still climb once).
    assert statistics.median(delays) == backoff.initial_s, delays


# ---------------------------------------------------------------------------
# data watchdog


async def test_watchdog_reconnects_a_connected_but_silent_link(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    watchdog = DataWatchdog(degraded_after_s=0.3, reconnect_after_s=0.8)
    link = make_link(mosquitto.host, mosquitto.port, health=HealthPolicy(watchdog=watchdog))
    base = unique("silent")
    inbox = Inbox()
    await link.subscribe(f"{base}/t", inbox, qos=1)
    link.start()
    await link.wait_connected(5)
    await wait_until(lambda: link.health.state is LinkState.DEGRADED, timeout=5)
    await wait_until(lambda: link.health.reconnects >= 1, timeout=5)
    assert "no data" in (link.health.last_error or "") or link.connected
    # Data keeps it healthy.
    await link.wait_connected(5)
    await link.publish(f"{base}/t", b"1", qos=1)
    await inbox.wait_for(lambda i: len(i.messages) == 1)
    assert link.health.state is LinkState.CONNECTED
