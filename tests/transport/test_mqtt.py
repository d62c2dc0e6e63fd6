"""MqttLink against a real mosquitto, with the fault proxy in between where a
scenario needs a broken network."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import gridwatch.transport.mqtt_link as mqtt_module
from gridwatch.transport.backoff_policy import BackoffPolicy, backoff_delay
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    RequestTimeout,
)
from gridwatch.transport.health import LinkState
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.support.clock import FakeClock
from tests.support.fault_proxy import FaultProxyFactory
from tests.support.mosquitto import AUTH_PASSWORD, AUTH_USER, Mosquitto, free_port
from tests.transport.mqtt_helpers import (
    FAST_BACKOFF,
    Inbox,
    open_fds,
    syn_dropping_listener,
    unique,
    wait_until,
)

pytestmark = pytest.mark.mqtt

LinkFactory = Callable[..., MqttLink]


@pytest.fixture
async def make_link() -> AsyncIterator[LinkFactory]:
    """``make_link(host, port, name=..., **settings)``: links are disconnected
    at teardown. Link keyword arguments go in ``link_kwargs``."""
    links: list[MqttLink] = []

    def make(
        host: str,
        port: int,
        *,
        name: str = "t",
        link_kwargs: dict[str, Any] | None = None,
        **settings: Any,
    ) -> MqttLink:
        kwargs: dict[str, Any] = {"backoff": FAST_BACKOFF}
        kwargs.update(link_kwargs or {})
        link = MqttLink(name, MqttSettings(host=host, port=port, **settings), **kwargs)
        links.append(link)
        return link

    yield make
    for link in links:
        await link.disconnect()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_qos1_roundtrip_delivers_topic_and_bytes(
    mosquitto: Mosquitto, make_link: LinkFactory, protocol: str
) -> None:
    link = make_link(mosquitto.host, mosquitto.port, protocol=protocol)
    inbox = Inbox()
    base = unique("roundtrip")
    await link.subscribe(f"{base}/+", inbox, qos=1)
    await link.connect(timeout=5)
    await link.publish(f"{base}/a", b"\x00payload", qos=1)
    await inbox.wait_for(lambda i: len(i.messages) == 1)
    message = inbox.messages[0]
    assert (message.key, message.payload) == (f"{base}/a", b"\x00payload")
    assert link.health.state is LinkState.CONNECTED
    assert link.health.last_message_at is not None


async def test_qos2_publish_completes_and_delivers_once(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    inbox = Inbox()
    topic = unique("qos2")
    await link.connect(timeout=5)
    await link.subscribe(topic, inbox, qos=2)
    await link.publish(topic, b"exactly once", qos=2)  # returns after PUBCOMP
    await link.publish(topic, b"sentinel", qos=2)
    await inbox.wait_for(lambda i: b"sentinel" in i.payloads)
    assert inbox.payloads == [b"exactly once", b"sentinel"]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_persistent_session_receives_what_was_sent_while_offline(
    mosquitto: Mosquitto, make_link: LinkFactory, protocol: str
) -> None:
    topic = unique("session")
    subscriber = make_link(
        mosquitto.host,
        mosquitto.port,
        name="subscriber",
        client_id=f"persist-{topic.rsplit('/', 1)[-1]}-{protocol}",
        clean_session=False,
        protocol=protocol,
    )
    sender = make_link(mosquitto.host, mosquitto.port, name="sender")
    inbox = Inbox()
    await subscriber.subscribe(topic, inbox, qos=1)
    await subscriber.connect(timeout=5)
    await subscriber.disconnect()
    await sender.connect(timeout=5)
    await sender.publish(topic, b"while you were away", qos=1)
    await subscriber.connect(timeout=5)
    await inbox.wait_for(lambda i: i.payloads == [b"while you were away"])


async def test_callbacks_run_on_the_loop_thread(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    inbox = Inbox()
    topic = unique("thread")
    await link.connect(timeout=5)
    await link.subscribe(topic, inbox)
    for i in range(20):
        await link.publish(topic, str(i), qos=1)
    await inbox.wait_for(lambda i: len(i.messages) == 20)
    assert inbox.threads == {threading.get_ident()}
    assert inbox.payloads == [str(i).encode() for i in range(20)]


async def test_burst_longer_than_one_read_pass_is_fully_delivered(
    mosquitto: Mosquitto, make_link: LinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two packets per pass: a burst leaves parsed-later bytes in the buffer,
    # which only a rescheduled pass (not the selector) can pick up.
    monkeypatch.setattr(mqtt_module, "MAX_PACKETS_PER_PASS", 2)
    receiver = make_link(mosquitto.host, mosquitto.port, name="receiver")
    sender = make_link(mosquitto.host, mosquitto.port, name="sender")
    inbox = Inbox()
    topic = unique("burst")
    await receiver.subscribe(topic, inbox)
    await receiver.connect(timeout=5)
    await sender.connect(timeout=5)
    for i in range(300):
        await sender.publish(topic, str(i))  # QoS 0: queued, no round trip
    await inbox.wait_for(lambda i: len(i.messages) == 300)
    assert inbox.payloads == [str(i).encode() for i in range(300)]


async def test_publish_while_down_raises_not_connected(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    with pytest.raises(NotConnectedError):
        await link.publish("test/x", b"1")
    await link.connect(timeout=5)
    await link.disconnect()
    with pytest.raises(NotConnectedError):
        await link.publish("test/x", b"1", qos=1)


async def test_broker_restart_reconnects_resubscribes_and_flows_again(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    inbox = Inbox()
    topic = unique("restart")
    await link.subscribe(topic, inbox, qos=1)
    await link.connect(timeout=5)
    await link.publish(topic, b"before", qos=1)
    await inbox.wait_for(lambda i: i.payloads == [b"before"])
    try:
        await mosquitto.arestart()
    finally:
        mosquitto.start()
    # A restarted broker has no subscriptions: delivery proves the replay.
    await wait_until(lambda: link.connected and link.health.reconnects == 1)
    await link.publish(topic, b"after", qos=1)
    await inbox.wait_for(lambda i: i.payloads == [b"before", b"after"])


async def test_rst_cut_reconnects_and_flows_again(
    mosquitto: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    proxy = await fault_proxy(mosquitto.host, mosquitto.port)
    link = make_link(proxy.host, proxy.port)
    inbox = Inbox()
    topic = unique("cut")
    await link.subscribe(topic, inbox, qos=1)
    await link.connect(timeout=5)
    assert proxy.cut() == 1
    await wait_until(lambda: link.connected and link.health.reconnects == 1)
    await link.publish(topic, b"again", qos=1)
    await inbox.wait_for(lambda i: i.payloads == [b"again"])


async def test_blackhole_is_detected_within_three_keepalives(
    mosquitto: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    keepalive = 1
    proxy = await fault_proxy(mosquitto.host, mosquitto.port)
    link = make_link(proxy.host, proxy.port, keepalive_s=keepalive)
    await link.connect(timeout=5)
    proxy.blackhole(True)
    # Deadline, not a benchmark: "about three keepalive periods" plus the
    # misc-loop tick and scheduling slack on a loaded machine.
    await wait_until(lambda: not link.connected, timeout=3 * keepalive + 1.0)
    assert link.health.state is LinkState.OFFLINE
    assert "keepalive" in (link.health.last_error or "")
    proxy.heal()
    await wait_until(lambda: link.connected, timeout=5)


async def test_pending_publish_fails_on_loss_and_times_out_without_ack(
    mosquitto: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    proxy = await fault_proxy(mosquitto.host, mosquitto.port)
    link = make_link(proxy.host, proxy.port)
    await link.connect(timeout=5)
    proxy.blackhole(True)
    with pytest.raises(RequestTimeout):
        await link.publish("test/lost", b"1", qos=1, timeout=0.2)
    pending = asyncio.create_task(link.publish("test/lost", b"2", qos=1, timeout=10))
    await wait_until(lambda: proxy.bytes_dropped > 0)
    proxy.cut()
    with pytest.raises(ConnectionLost):
        async with asyncio.timeout(2):
            await pending


@pytest.mark.parametrize("fault", ["proxy_resets", "nothing_listens"])
async def test_refused_connections_follow_the_backoff_schedule(
    mosquitto: Mosquitto,
    make_link: LinkFactory,
    fault_proxy: FaultProxyFactory,
    fault: str,
) -> None:
    clock = FakeClock()
    if fault == "proxy_resets":
        proxy = await fault_proxy(mosquitto.host, mosquitto.port)
        proxy.refuse(True)
        host, port = proxy.host, proxy.port
    else:
        host, port = "127.0.0.1", free_port()
    policy = BackoffPolicy()
    link = make_link(
        host,
        port,
        link_kwargs={"backoff": policy, "sleep": clock.sleep, "rand": lambda: 0.5},
    )
    link.start()
    await wait_until(lambda: len(clock.sleeps) >= 7)
    await link.disconnect()
    assert clock.sleeps[:7] == [backoff_delay(i, 0.5, policy) for i in range(7)]
    assert clock.sleeps[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert link.health.consecutive_failures >= 7
    assert link.fatal_error is None


async def test_disconnect_during_connect_raises_promptly_without_leaking(
    mosquitto: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    proxy = await fault_proxy(mosquitto.host, mosquitto.port)
    link = make_link(proxy.host, proxy.port)
    # Warm up once so the executor thread exists before fds are counted.
    await link.connect(timeout=5)
    await link.disconnect()
    await wait_until(lambda: proxy.connections == 0)
    baseline = open_fds()
    proxy.blackhole(True)  # CONNECT goes nowhere, CONNACK never comes
    connecting = asyncio.create_task(link.connect(timeout=30))
    await wait_until(lambda: proxy.bytes_dropped > 0)
    await link.disconnect()
    with pytest.raises(LinkClosedError):
        async with asyncio.timeout(1.0):
            await connecting
    await wait_until(lambda: proxy.connections == 0 and open_fds() == baseline)
    proxy.heal()
    await link.connect(timeout=5)
    assert link.connected


async def test_disconnect_during_blocking_tcp_connect_leaves_no_socket(
    make_link: LinkFactory,
) -> None:
    # The link's TCP connect hangs until we make room.
    with syn_dropping_listener() as server:
        await _disconnect_during_tcp_connect(server, make_link)


async def _disconnect_during_tcp_connect(server: socket.socket, make_link: LinkFactory) -> None:
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    try:
        # Room is made after the disconnect; the kernel retries the SYN 1, 3,
        # 7 and 15 s after the first. A connect timeout past those keeps the
        # abandoned connect alive until one lands, however loaded the box.
        link = make_link("127.0.0.1", port, socket_connect_timeout_s=20.0)
        # Warm the executor so its thread's own fds are not counted.
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        baseline = open_fds()
        connecting = asyncio.create_task(link.connect(timeout=30))
        await wait_until(lambda: open_fds() > baseline)  # the thread's socket
        await link.disconnect()
        with pytest.raises(LinkClosedError):
            async with asyncio.timeout(1.0):
                await connecting
        # Make room. The abandoned connect closed its socket at once, so no
        # SYN retry can complete it; a CONNECT arriving would have to be
        # followed by EOF (a connect that finished and was then closed).
        server.setblocking(False)
        sent_connect: set[socket.socket] = set()

        def settled() -> bool:
            if _closed_after_connect(server, accepted, sent_connect):
                return True
            return not sent_connect and open_fds() == baseline + len(accepted)

        await wait_until(settled, timeout=25.0)
        assert open_fds() == baseline + len(accepted)
    finally:
        for sock in accepted:
            sock.close()


def _closed_after_connect(
    server: socket.socket, accepted: list[socket.socket], sent_connect: set[socket.socket]
) -> bool:
    """Accept what is waiting; True once a peer sent an MQTT CONNECT and closed."""
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            break
        conn.setblocking(False)
        accepted.append(conn)
    for conn in accepted:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            continue
        if data[:1] == b"\x10":  # an MQTT CONNECT: this is paho's socket
            sent_connect.add(conn)
        elif data == b"" and conn in sent_connect:
            return True
    return False


async def test_subscriptions_survive_disconnect_and_connect(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    inbox = Inbox()
    topic = unique("survive")
    await link.connect(timeout=5)
    await link.subscribe(topic, inbox, qos=1)
    await link.disconnect()
    assert topic in link.subscriptions
    await link.connect(timeout=5)
    await link.publish(topic, b"still here", qos=1)
    await inbox.wait_for(lambda i: i.payloads == [b"still here"])


async def test_unsubscribe_removes_the_subscription(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    inbox = Inbox()
    base = unique("unsub")
    await link.connect(timeout=5)
    await link.subscribe(f"{base}/gone", inbox, qos=1)
    await link.subscribe(f"{base}/sentinel", inbox, qos=1)
    await link.unsubscribe(f"{base}/gone")
    assert f"{base}/gone" not in link.subscriptions
    await link.publish(f"{base}/gone", b"x", qos=1)
    await link.publish(f"{base}/sentinel", b"s", qos=1)
    # Same publisher, same subscriber: the broker keeps order, so once the
    # sentinel is here the unsubscribed message would have been too.
    await inbox.wait_for(lambda i: i.on(f"{base}/sentinel") == [b"s"])
    assert inbox.on(f"{base}/gone") == []


async def test_overlapping_filters_each_get_the_message(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    wide, narrow = Inbox(), Inbox()
    base = unique("overlap")
    await link.connect(timeout=5)
    await link.subscribe(f"{base}/#", wide, qos=1)
    await link.subscribe(f"{base}/a/+", narrow, qos=1)
    await link.publish(f"{base}/a/b", b"1", qos=1)
    await link.publish(f"{base}/c", b"2", qos=1)
    await wide.wait_for(lambda i: len(i.messages) >= 2)
    assert wide.on(f"{base}/a/b")[:1] == [b"1"]
    assert narrow.payloads[:1] == [b"1"]
    assert narrow.on(f"{base}/c") == []


async def test_last_will_and_availability_seen_by_another_client(
    mosquitto: Mosquitto, make_link: LinkFactory, fault_proxy: FaultProxyFactory
) -> None:
    proxy = await fault_proxy(mosquitto.host, mosquitto.port)
    avail = unique("avail")
    observer = make_link(mosquitto.host, mosquitto.port, name="observer")
    seen = Inbox()
    await observer.subscribe(avail, seen, qos=1)
    await observer.connect(timeout=5)
    subject = make_link(proxy.host, proxy.port, name="subject", availability_topic=avail)
    await subject.connect(timeout=5)
    await seen.wait_for(lambda i: i.payloads == [b"online"])
    proxy.cut()  # no DISCONNECT reaches the broker: it publishes the will
    await seen.wait_for(lambda i: i.payloads[:2] == [b"online", b"offline"])
    await seen.wait_for(lambda i: i.payloads[-1:] == [b"online"] and len(i.payloads) == 3)
    await subject.disconnect()  # clean: the link says "offline" itself
    await seen.wait_for(lambda i: i.payloads[-1:] == [b"offline"] and len(i.payloads) == 4)
    assert all(m.payload in (b"online", b"offline") for m in seen.messages)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize(
    ("username", "password"), [(AUTH_USER, "wrong"), (None, None)], ids=["bad-pw", "anonymous"]
)
async def test_refused_credentials_stop_the_loop_with_auth_error(
    mosquitto_auth: Mosquitto,
    make_link: LinkFactory,
    username: str | None,
    password: str | None,
    protocol: str,
) -> None:
    link = make_link(
        mosquitto_auth.host,
        mosquitto_auth.port,
        username=username,
        password=password,
        protocol=protocol,
    )
    with pytest.raises(AuthError):
        await link.connect(timeout=5)
    link.start()
    await wait_until(lambda: link.fatal_error is not None)
    assert isinstance(link.fatal_error, AuthError)
    attempts = link.health.attempts
    assert link.health.state is LinkState.DISCONNECTED
    # Stopped means stopped: no further attempts hammer the broker.
    await asyncio.sleep(0.2)
    assert link.health.attempts == attempts
    assert "wrong" not in repr(link.settings)


async def test_good_credentials_connect(mosquitto_auth: Mosquitto, make_link: LinkFactory) -> None:
    link = make_link(
        mosquitto_auth.host, mosquitto_auth.port, username=AUTH_USER, password=AUTH_PASSWORD
    )
    await link.connect(timeout=5)
    assert link.connected


async def test_connect_to_closed_port_raises_connect_error(make_link: LinkFactory) -> None:
    link = make_link("127.0.0.1", free_port())
    with pytest.raises(ConnectError):
        await link.connect(timeout=5)


async def test_thousand_subscriptions_replay_in_one_request(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    link = make_link(mosquitto.host, mosquitto.port)
    requests: list[int] = []
    original = link._send_subscribe_packet

    def counting(session: Any, subs: Any) -> int:
        requests.append(len(subs))
        return original(session, subs)

    link._send_subscribe_packet = counting  # type: ignore[method-assign]
    inbox = Inbox()
    base = unique("many")
    for i in range(1000):
        await link.subscribe(f"{base}/{i}", inbox, qos=1)
    await link.connect(timeout=5)
    assert requests == [1000]
    await link.publish(f"{base}/999", b"last", qos=1)
    await inbox.wait_for(lambda i: i.on(f"{base}/999") == [b"last"])


async def test_fifty_cycles_leave_no_threads_fds_or_tasks(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    # One executor thread: a default pool may add a worker whenever a connect
    # comes before the last worker marked itself idle, which is no leak.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    link = make_link(mosquitto.host, mosquitto.port, availability_topic=unique("cycles"))
    await link.subscribe(unique("cycles-sub"), Inbox(), qos=1)
    # One warm-up cycle: the default executor creates its thread once.
    await link.connect(timeout=5)
    await link.disconnect()
    threads, fds, tasks = threading.active_count(), open_fds(), len(asyncio.all_tasks())
    for _ in range(50):
        await link.connect(timeout=5)
        await link.disconnect()
    assert threading.active_count() == threads
    assert open_fds() == fds
    assert len(asyncio.all_tasks()) == tasks


async def test_a_burst_of_qos1_acks_leaves_in_few_sends(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    # Paho sends each PUBACK with its own send(); the link joins the PUBACKs
    # queued during one read pass (issue 12: loop lag at QoS 1).
    consumer = make_link(mosquitto.host, mosquitto.port, name="consumer")
    producer = make_link(mosquitto.host, mosquitto.port, name="producer")
    base = unique("acks")
    inbox = Inbox()
    await consumer.subscribe(f"{base}/t", inbox, qos=1)
    await consumer.connect(timeout=5)
    await producer.connect(timeout=5)
    session = consumer._session
    assert session is not None
    sends: list[int] = []
    original = session.client._sock_send

    def counting(buf: bytes) -> int:
        sends.append(len(buf))
        return original(buf)

    session.client._sock_send = counting  # type: ignore[method-assign]
    count = 500
    await asyncio.gather(*(producer.publish(f"{base}/t", b"%d" % i, qos=1) for i in range(count)))
    await inbox.wait_for(lambda i: len(i.messages) == count)
    # Every message was acknowledged (the broker would resend otherwise) ...
    # (paho hands a message over before it queues its PUBACK, so the last
    # one leaves on a later loop pass than the delivery).
    await wait_until(lambda: sum(sends) == 4 * count)  # a PUBACK is 4 bytes
    # ... in far fewer sends than one per message.
    assert len(sends) < count / 5


async def test_a_slow_subscriber_cannot_stretch_one_read_pass(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    consumer = make_link(mosquitto.host, mosquitto.port, name="consumer")
    producer = make_link(mosquitto.host, mosquitto.port, name="producer")
    base = unique("slow")
    delivered: list[int] = []

    def slow(message: Any) -> None:
        delivered.append(1)
        time.sleep(0.001)  # a subscriber doing blocking work on the loop

    await consumer.subscribe(f"{base}/t", slow, qos=1)
    await consumer.connect(timeout=5)
    await producer.connect(timeout=5)
    per_pass: list[int] = []
    original = consumer._on_readable

    def counting(session: Any) -> None:
        before = len(delivered)
        original(session)
        per_pass.append(len(delivered) - before)

    consumer._on_readable = counting  # type: ignore[method-assign]
    count = 200
    await asyncio.gather(*(producer.publish(f"{base}/t", b"x", qos=1) for _ in range(count)))
    await wait_until(lambda: len(delivered) == count)
    # READ_PASS_BUDGET_S (2 ms) of 1 ms subscribers: a few per pass, then the
    # loop gets its turn; without the budget a pass took up to 100.
    assert max(per_pass) <= 1 + mqtt_module.READ_PASS_BUDGET_S / 0.001


# ---------------------------------------------------------------------------
# Connects that hang must not hold up other links (issue 22, fault run: links
# retrying a broker that drops packets delayed a healthy link's connect by 4 s
# while paho's blocking connect ran in the shared default executor).


async def test_connects_hanging_on_a_dead_path_do_not_delay_a_healthy_link(
    mosquitto: Mosquitto, make_link: LinkFactory
) -> None:
    # A small shared pool makes the old failure certain (the default one has
    # min(32, cores + 4) threads; the fault run filled it with more links).
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
    with syn_dropping_listener() as server:
        dead_port = server.getsockname()[1]
        dead = [
            make_link("127.0.0.1", dead_port, name=f"dead{i}", socket_connect_timeout_s=3.0)
            for i in range(4)
        ]
        for link in dead:
            link.start()
        await asyncio.sleep(0.2)  # every dead link is inside its TCP connect
        healthy = make_link(mosquitto.host, mosquitto.port, name="healthy")
        await healthy.connect(timeout=10)
        # Ordering, not a stopwatch: the healthy link got through while every
        # dead link was still in its first (3 s) attempt.
        assert [link.health.attempts for link in dead] == [0, 0, 0, 0]
        assert healthy.connected
