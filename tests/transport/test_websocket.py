"""WebSocketLink against the real aiohttp device server on loopback."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    RequestError,
    RequestTimeout,
)
from gridwatch.transport.health import LinkState
from gridwatch.transport.http_link import LoginSettings
from gridwatch.transport.link import Subscription
from gridwatch.transport.websocket_link import RpcError, WebSocketLink, WebSocketSettings
from tests.support.clock import FakeClock
from tests.support.device_server import (
    METHOD_NOT_FOUND,
    DeviceServer,
    Inbox,
    RpcFailure,
    eventually,
)

# Reconnects in milliseconds so real-server scenarios stay fast.
FAST_BACKOFF = BackoffPolicy(initial_s=0.02, factor=2.0, cap_s=0.1)
# Generous bound on "it happens": a hang guard, not a timing goal.
HANG_GUARD_S = 5.0


def make_link(
    server: DeviceServer,
    *,
    url: str | None = None,
    password: str | None = None,
    heartbeat_s: float = 5.0,
    max_payload_bytes: int = 256 * 1024,
    session: aiohttp.ClientSession | None = None,
    **link_options: Any,
) -> WebSocketLink:
    settings = WebSocketSettings(
        base_url=url or server.url,
        login=LoginSettings(server.username, password or server.password),
        heartbeat_s=heartbeat_s,
        request_timeout_s=2.0,
        http_timeout_s=2.0,
        max_payload_bytes=max_payload_bytes,
    )
    link_options.setdefault("backoff", FAST_BACKOFF)
    return WebSocketLink("ws-test", settings, session=session, **link_options)


@pytest.fixture
async def link(device_server: DeviceServer) -> AsyncIterator[WebSocketLink]:
    link = make_link(device_server)
    try:
        yield link
    finally:
        await link.disconnect()


async def reconnected(server: DeviceServer, link: WebSocketLink, connections: int) -> None:
    """Wait until the server saw ``connections`` sockets and the link is up again."""
    await eventually(lambda: server.connections >= connections and link.connected)


# ----------------------------------------------------------------------
# Requests


async def test_requests_get_their_own_answers_with_ids_from_1(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)

    answers = await asyncio.gather(*(link.request("echo", {"n": n}) for n in range(5)))

    assert answers == [{"n": n} for n in range(5)]
    assert device_server.received_ids == [[1, 2, 3, 4, 5]]


async def test_error_reply_raises_rpc_error_with_code(link):
    await link.connect(timeout=HANG_GUARD_S)

    with pytest.raises(RpcError) as caught:
        await link.request("no_such_method")

    assert isinstance(caught.value, RequestError)
    assert caught.value.code == METHOD_NOT_FOUND
    assert link.connected


async def test_unanswered_request_times_out_and_link_stays_up(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)
    device_server.answering = False

    with pytest.raises(RequestTimeout):
        await link.request("echo", timeout=0.05)

    device_server.answering = True
    assert await link.request("echo", {"again": True}) == {"again": True}
    assert link.connected


async def test_request_before_connect_raises_not_connected(link):
    with pytest.raises(NotConnectedError):
        await link.request("echo")


async def test_sequence_ids_restart_at_1_after_reconnect(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)
    await link.request("echo")
    await link.request("echo")

    await device_server.drop()
    await reconnected(device_server, link, 2)
    await link.request("echo")

    assert device_server.received_ids == [[1, 2], [1]]


async def test_pending_request_fails_with_connection_lost_on_drop(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)
    device_server.answering = False
    pending = asyncio.create_task(link.request("echo", timeout=60))
    await device_server.wait_for(lambda: device_server.received_ids[0] == [1])

    await device_server.drop()

    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, HANG_GUARD_S)


async def test_pending_request_fails_with_link_closed_on_disconnect(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)
    device_server.answering = False
    pending = asyncio.create_task(link.request("echo", timeout=60))
    await device_server.wait_for(lambda: device_server.received_ids[0] == [1])

    await link.disconnect()

    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(pending, HANG_GUARD_S)


# ----------------------------------------------------------------------
# Subscriptions


async def test_pushed_events_reach_subscriber_on_the_loop_thread(device_server, link):
    inbox = Inbox()
    await link.connect(timeout=HANG_GUARD_S)
    await link.subscribe("power", inbox)

    assert await device_server.push("power", {"w": 1200}) == 1
    assert await device_server.push("other", {"w": 1}) == 0
    await inbox.wait_count(1)

    assert [(m.key, m.payload) for m in inbox.messages] == [("power", {"w": 1200})]
    assert inbox.threads == {threading.get_ident()}
    assert link.health.last_message_at is not None


async def test_subscriptions_survive_disconnect_and_connect(device_server, link):
    inbox = Inbox()
    await link.subscribe("power", inbox)  # registered while disconnected
    await link.connect(timeout=HANG_GUARD_S)
    await link.disconnect()

    assert "power" in link.subscriptions
    await link.connect(timeout=HANG_GUARD_S)

    assert device_server.peers[-1].events == {"power"}
    assert await device_server.push("power", 7) == 1
    await inbox.wait_count(1)
    assert inbox.payloads == [7]


async def test_unsubscribe_removes_for_now_and_after_reconnect(device_server, link):
    inbox = Inbox()
    await link.connect(timeout=HANG_GUARD_S)
    await link.subscribe("power", inbox)
    await link.subscribe("soc", inbox)

    await link.unsubscribe("power")

    assert device_server.peers[0].events == {"soc"}
    await device_server.drop()
    await reconnected(device_server, link, 2)
    assert set(link.subscriptions) == {"soc"}
    assert device_server.peers[-1].events == {"soc"}
    assert [m for m, _ in device_server.peers[-1].requests] == ["subscribe"]


async def test_refused_subscription_does_not_block_the_others(device_server, link):
    def refuse_power(params: dict[str, Any]) -> Any:
        if params["event"] == "power":
            raise RpcFailure(403, "not for you")
        device_server.peers[-1].events.add(params["event"])
        return {}

    device_server.methods["subscribe"] = refuse_power
    inbox = Inbox()
    await link.subscribe("power", inbox)
    await link.subscribe("soc", inbox)

    await link.connect(timeout=HANG_GUARD_S)

    assert device_server.peers[-1].events == {"soc"}
    assert await device_server.push("soc", 55) == 1
    await inbox.wait_count(1)
    assert inbox.payloads == [55]


async def test_raising_subscriber_does_not_stop_the_link(device_server, link):
    inbox = Inbox()

    def broken(_message: object) -> None:
        raise ValueError("subscriber bug")

    await link.connect(timeout=HANG_GUARD_S)
    await link.subscribe("bad", broken)
    await link.subscribe("good", inbox)

    await device_server.push("bad", 1)
    await device_server.push("good", 2)
    await inbox.wait_count(1)

    assert link.connected
    assert device_server.connections == 1


# ----------------------------------------------------------------------
# Losses and reconnects


async def test_server_restart_reconnects_relogs_in_and_resubscribes(device_server, link):
    inbox = Inbox()
    await link.connect(timeout=HANG_GUARD_S)
    await link.subscribe("power", inbox)

    await device_server.stop()
    await eventually(lambda: not link.connected)
    await device_server.start()
    await reconnected(device_server, link, 2)

    assert device_server.logins == 2  # the restart forgot the old token
    assert device_server.peers[-1].events == {"power"}
    assert await device_server.push("power", {"w": 5}) == 1
    await inbox.wait_count(1)
    assert inbox.payloads == [{"w": 5}]
    assert link.health.reconnects == 1


async def test_rst_cut_reconnects_and_events_flow_again(device_server, fault_proxy):
    proxy = await fault_proxy(device_server.host, device_server.port)
    link = make_link(device_server, url=f"http://{proxy.host}:{proxy.port}")
    inbox = Inbox()
    try:
        await link.subscribe("power", inbox)
        await link.connect(timeout=HANG_GUARD_S)

        assert proxy.cut() >= 1
        await reconnected(device_server, link, 2)

        assert await device_server.push("power", 1) == 1
        await inbox.wait_count(1)
        assert link.health.reconnects == 1
        assert proxy.accepted == 2
    finally:
        await link.disconnect()


async def test_frozen_server_is_detected_by_heartbeat(device_server):
    heartbeat_s = 0.2
    link = make_link(device_server, heartbeat_s=heartbeat_s)
    try:
        await link.connect(timeout=HANG_GUARD_S)

        device_server.freeze()
        await eventually(lambda: not link.connected, timeout=HANG_GUARD_S)

        # Caught by the heartbeat (ping after one period, pong due within half
        # of it: 1.5 periods), not by the 3-period receive timeout behind it.
        assert "PONG" in (link.health.last_error or "")
        device_server.freeze(False)
        await reconnected(device_server, link, 2)
    finally:
        await link.disconnect()


async def test_blackholed_path_is_detected_by_heartbeat(device_server, fault_proxy):
    heartbeat_s = 0.2
    proxy = await fault_proxy(device_server.host, device_server.port)
    link = make_link(
        device_server, url=f"http://{proxy.host}:{proxy.port}", heartbeat_s=heartbeat_s
    )
    try:
        await link.connect(timeout=HANG_GUARD_S)

        proxy.blackhole()
        await eventually(lambda: not link.connected, timeout=HANG_GUARD_S)

        assert "PONG" in (link.health.last_error or "")
        proxy.heal()
        await reconnected(device_server, link, 2)
    finally:
        await link.disconnect()


async def test_refused_connections_follow_the_backoff_schedule(device_server):
    clock = FakeClock()
    link = make_link(
        device_server,
        backoff=BackoffPolicy(),
        clock=clock.monotonic,
        sleep=clock.sleep,
        rand=lambda: 0.5,  # no jitter: the exact schedule
    )
    await device_server.stop()
    try:
        link.start()
        await eventually(lambda: len(clock.sleeps) >= 8)
        assert clock.sleeps[:8] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]

        await device_server.start()
        await link.wait_connected(HANG_GUARD_S)
        # A connection that stayed up past stable_after_s starts over at 1 s.
        clock.advance(BackoffPolicy().stable_after_s)
        retries = len(clock.sleeps)
        await device_server.drop()
        await reconnected(device_server, link, 2)
        assert clock.sleeps[retries] == 1.0
    finally:
        await link.disconnect()


async def test_refusing_path_backs_off_then_recovers_when_healed(device_server, fault_proxy):
    proxy = await fault_proxy(device_server.host, device_server.port)
    clock = FakeClock()
    link = make_link(
        device_server,
        url=f"http://{proxy.host}:{proxy.port}",
        backoff=BackoffPolicy(),
        clock=clock.monotonic,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )
    try:
        await link.connect(timeout=HANG_GUARD_S)

        proxy.refuse()
        proxy.cut()
        await eventually(lambda: len(clock.sleeps) >= 4)
        assert clock.sleeps[:4] == [1.0, 2.0, 4.0, 8.0]
        assert proxy.refused >= 3

        proxy.heal()
        await reconnected(device_server, link, 2)
        assert link.health.consecutive_failures == 0
    finally:
        await link.disconnect()


async def test_bad_credentials_raise_auth_error_and_stop_the_loop(device_server):
    link = make_link(device_server, password="wrong")
    try:
        with pytest.raises(AuthError):
            await link.connect(timeout=HANG_GUARD_S)

        link.start()
        await eventually(lambda: link.fatal_error is not None)

        assert isinstance(link.fatal_error, AuthError)
        assert link.health.state is LinkState.DISCONNECTED
        assert device_server.login_attempts == 2  # one each, no hammering
    finally:
        await link.disconnect()


async def test_login_refused_on_reconnect_stops_the_loop(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)
    device_server.fail_logins()

    await device_server.drop()
    await eventually(lambda: link.fatal_error is not None)

    assert isinstance(link.fatal_error, AuthError)
    assert not link.connected
    assert device_server.login_attempts == 2


# ----------------------------------------------------------------------
# Payloads


async def test_malformed_frames_are_counted_and_the_link_keeps_running(device_server):
    link = make_link(device_server, max_payload_bytes=1024)
    inbox = Inbox()
    try:
        await link.subscribe("power", inbox)
        await link.connect(timeout=HANG_GUARD_S)

        await device_server.send_raw("not json")
        await device_server.send_raw("[1, 2]")
        await device_server.send_raw('{"hello": 1}')
        await device_server.send_raw('{"id": "x", "result": 1}')
        await device_server.send_raw(b"\xff\xfe")
        await device_server.send_raw('{"event": "power", "data": "' + "x" * 2048 + '"}')
        await device_server.push("power", {"w": 1})
        await inbox.wait_count(1)

        assert dict(link.payload_errors.counts) == {
            "not_json": 1,
            "wrong_type": 1,
            "wrong_shape": 2,
            "encoding": 1,
            "oversized": 1,
        }
        assert inbox.payloads == [{"w": 1}]
        assert link.connected
        assert device_server.connections == 1
    finally:
        await link.disconnect()


# ----------------------------------------------------------------------
# Resources


async def test_injected_session_is_left_open(device_server):
    async with aiohttp.ClientSession() as session:
        link = make_link(device_server, session=session)
        await link.connect(timeout=HANG_GUARD_S)
        await link.disconnect()

        assert not session.closed
        await link.connect(timeout=HANG_GUARD_S)
        assert await link.request("echo", {"x": 1}) == {"x": 1}
        await link.disconnect()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_50_connect_disconnect_cycles_leak_nothing(device_server):
    link = make_link(device_server)
    await link.subscribe("power", Inbox())
    # Warm-up: lazily created loop resources are not leaks.
    await link.connect(timeout=HANG_GUARD_S)
    await link.disconnect()
    await eventually(lambda: not device_server.peers)
    threads, fds, tasks = threading.active_count(), _open_fds(), len(asyncio.all_tasks())

    for n in range(50):
        await link.connect(timeout=HANG_GUARD_S)
        assert await link.request("echo", {"n": n}) == {"n": n}
        await link.disconnect()

    # Sockets are released a loop iteration after close; give them a moment.
    await eventually(lambda: not device_server.peers and _open_fds() <= fds)
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks)
    assert threading.active_count() == threads
    assert _open_fds() == fds
    assert len(asyncio.all_tasks()) == tasks
    assert device_server.connections == 51


async def test_close_right_after_the_subscribe_replay_still_reconnects(device_server, link):
    # The socket closes just as connect() finishes: the loss must not vanish
    # in the gap before the base counts the link as connected. The close frame
    # (1000) is written straight behind the reply so both arrive in one read.
    close_frame = b"\x88\x02\x03\xe8"

    def subscribe_then_close(params: dict[str, Any]) -> Any:
        peer = device_server.peers[-1]
        peer.events.add(params["event"])
        if peer.index == 1:
            asyncio.get_running_loop().call_soon(peer.transport.write, close_frame)
        return {}

    device_server.methods["subscribe"] = subscribe_then_close
    inbox = Inbox()
    await link.subscribe("power", inbox)

    await link.connect(timeout=HANG_GUARD_S)
    await reconnected(device_server, link, 2)

    assert await device_server.push("power", 3) == 1
    await inbox.wait_count(1)


# ----------------------------------------------------------------------
# Settings and connect errors


def test_receive_timeout_defaults_to_three_heartbeats():
    settings = WebSocketSettings("http://device", heartbeat_s=2.0)

    assert settings.effective_receive_timeout_s == 6.0
    explicit = WebSocketSettings("http://device", heartbeat_s=2.0, receive_timeout_s=9.0)
    assert explicit.effective_receive_timeout_s == 9.0
    assert settings.verify_ssl is True


@pytest.mark.parametrize(
    "options",
    [{"heartbeat_s": 0}, {"request_timeout_s": 0}, {"heartbeat_s": 5, "receive_timeout_s": 5}],
)
def test_settings_reject_nonsense(options):
    with pytest.raises(ValueError):
        WebSocketSettings("http://device", **options)


async def test_connect_to_nothing_raises_connect_error(device_server):
    link = make_link(device_server)
    await device_server.stop()
    try:
        with pytest.raises(ConnectError):
            await link.connect(timeout=HANG_GUARD_S)
        assert not link.connected
    finally:
        await link.disconnect()


async def test_handshake_refused_without_token_is_an_auth_error(device_server):
    settings = WebSocketSettings(device_server.url, login=None)
    link = WebSocketLink("ws-no-login", settings, backoff=FAST_BACKOFF)
    try:
        with pytest.raises(AuthError):
            await link.connect(timeout=HANG_GUARD_S)

        device_server.require_auth = False  # a device without a login
        await link.connect(timeout=HANG_GUARD_S)
        assert await link.request("echo", {"open": True}) == {"open": True}
        assert device_server.login_attempts == 0
    finally:
        await link.disconnect()


# ---------------------------------------------------------------------------
# issue 12: a subscription made while connect() runs, overlapping connects


async def test_subscribe_made_during_the_replay_is_sent_before_connected(device_server, link):
    first, late = Inbox(), Inbox()
    await link.subscribe("first", first)
    original = link._replay_subscriptions

    async def replay_then_subscribe(subs: list[Subscription]) -> None:
        await original(subs)
        if not any(s.key == "late" for s in subs):
            await link.subscribe("late", late)

    link._replay_subscriptions = replay_then_subscribe  # type: ignore[method-assign]
    await link.connect(timeout=5)
    assert await device_server.push("late", {"n": 1}) == 1
    await late.wait_count(1)
    assert late.payloads == [{"n": 1}]


async def test_overlapping_connects_share_one_connection(device_server, link):
    await link.subscribe("status", Inbox())
    for _ in range(12):
        await asyncio.wait_for(asyncio.gather(link.connect(), link.connect()), 10)
        assert link.connected
        assert link.health.state is LinkState.CONNECTED
        await link.disconnect()
    assert device_server.connections == 12
