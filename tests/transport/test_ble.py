"""BLE link over the scripted fake bleak backend (no radio in CI), plus a
conformance check of the fake against the installed bleak."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import os
import threading
import warnings
from typing import Any

import bleak_retry_connector
import pytest
from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from gridwatch.transport.ble_link import BleLink, BleSettings
from gridwatch.transport.errors import (
    ConnectError,
    ConnectionLost,
    LinkClosedError,
    NotConnectedError,
    RequestError,
    RequestTimeout,
    UnsupportedHostError,
)
from gridwatch.transport.health import LinkState
from gridwatch.transport.link import Message
from tests.support import waiting
from tests.support.clock import FakeClock
from tests.support.fake_bleak import (
    COMMAND_UUID,
    STATUS_UUID,
    TELEMETRY_UUID,
    FakeBleakBackend,
    FakePeripheral,
    Outcome,
)

# Waits here default to 2.0 s.
until = functools.partial(waiting.until, timeout=2.0)


@pytest.fixture(autouse=True)
def no_connector_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    # bleak-retry-connector pauses 0.1 s (real time) after each failed attempt
    # to let BlueZ settle; the fake has nothing to settle.
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_BACKOFF_TIME", 0.0)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_TRANSIENT_BACKOFF_TIME", 0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_link(fake_ble: FakePeripheral, clock: FakeClock):
    links: list[BleLink] = []

    def make(attempts: int = 1, **options: Any) -> BleLink:
        settings = BleSettings(fake_ble.address, connect_attempts=attempts, request_timeout_s=1.0)
        link = BleLink(
            "battery",
            settings,
            backend=fake_ble.backend,
            clock=clock,
            sleep=clock.sleep,
            rand=lambda: 0.5,
            **options,
        )
        links.append(link)
        return link

    yield make
    for link in links:
        await link.disconnect()


# ---------------------------------------------------------------------------
# connect, notify, replay


async def test_connect_enables_notifications_and_delivers_bytes(make_link, fake_ble) -> None:
    link = make_link()
    seen: list[Message] = []
    await link.subscribe(TELEMETRY_UUID, seen.append)
    await link.connect(timeout=2)
    assert fake_ble.subscribed() == {TELEMETRY_UUID}
    assert fake_ble.notify(TELEMETRY_UUID, b"\x01\x02")
    assert [(m.key, m.payload) for m in seen] == [(TELEMETRY_UUID, b"\x01\x02")]
    assert isinstance(seen[0].payload, bytes)
    assert link.health.state is LinkState.CONNECTED


async def test_replay_after_a_scripted_drop(make_link, fake_ble, clock) -> None:
    fake_ble.script(Outcome.ok_then_drop(after_notifications=2), Outcome.ok())
    link = make_link()
    seen: list[bytes] = []
    await link.subscribe(TELEMETRY_UUID, lambda m: seen.append(m.payload))
    await link.connect(timeout=2)
    fake_ble.notify(TELEMETRY_UUID, b"a")
    fake_ble.notify(TELEMETRY_UUID, b"b")  # the device drops after this one
    await until(lambda: fake_ble.connect_calls == 2 and link.connected)
    assert fake_ble.subscribed() == {TELEMETRY_UUID}  # replayed on the new connection
    fake_ble.notify(TELEMETRY_UUID, b"c")
    assert seen == [b"a", b"b", b"c"]
    assert clock.sleeps == [1.0]
    assert link.health.reconnects == 1


async def test_unexpected_disconnect_fails_pending_read(make_link, fake_ble) -> None:
    fake_ble.script(Outcome.ok(), Outcome.hang())
    link = make_link()
    await link.connect(timeout=2)
    fake_ble.stall(STATUS_UUID)
    pending = asyncio.create_task(link.read(STATUS_UUID, timeout=30))
    await asyncio.sleep(0)
    assert fake_ble.drop()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 1)
    assert not link.connected


async def test_notification_from_a_foreign_thread_arrives_on_the_loop(make_link, fake_ble):
    link = make_link()
    threads: list[int] = []
    got = asyncio.Event()

    def on_message(message: Message) -> None:
        threads.append(threading.get_ident())
        got.set()

    await link.subscribe(TELEMETRY_UUID, on_message)
    await link.connect(timeout=2)
    sender = threading.Thread(target=fake_ble.notify, args=(TELEMETRY_UUID, b"x"))
    sender.start()
    sender.join(1)
    await asyncio.wait_for(got.wait(), 1)
    assert threads == [threading.get_ident()]


async def test_disconnect_from_a_foreign_thread_is_handled_on_the_loop(make_link, fake_ble):
    fake_ble.script(Outcome.ok(), Outcome.hang())
    link = make_link()
    await link.connect(timeout=2)
    dropper = threading.Thread(target=fake_ble.drop)
    dropper.start()
    dropper.join(1)
    await until(lambda: not link.connected)
    await until(lambda: fake_ble.hanging)  # the reconnect has started


async def test_unsubscribe_stops_notifications(make_link, fake_ble) -> None:
    link = make_link()
    seen: list[bytes] = []
    await link.subscribe(TELEMETRY_UUID, lambda m: seen.append(m.payload))
    await link.connect(timeout=2)
    await link.unsubscribe(TELEMETRY_UUID)
    assert fake_ble.subscribed() == set()
    assert not fake_ble.notify(TELEMETRY_UUID, b"late")
    assert seen == []


async def test_missing_characteristic_does_not_block_the_others(make_link, fake_ble, caplog):
    link = make_link()
    seen: list[bytes] = []
    await link.subscribe("0000beef-0000-1000-8000-00805f9b34fb", lambda m: None)
    await link.subscribe(TELEMETRY_UUID, lambda m: seen.append(m.payload))
    with caplog.at_level(logging.ERROR):
        await link.connect(timeout=2)
    assert fake_ble.subscribed() == {TELEMETRY_UUID}
    fake_ble.notify(TELEMETRY_UUID, b"ok")
    assert seen == [b"ok"]
    assert any("no such characteristic" in r.getMessage() for r in caplog.records)


async def test_stale_client_callbacks_are_ignored(make_link, fake_ble) -> None:
    link = make_link()
    await link.connect(timeout=2)
    old = fake_ble.active
    await link.disconnect()
    await link.connect(timeout=2)
    assert old is not None
    old.lose_connection()  # a late callback from the closed connection
    await asyncio.sleep(0.01)
    assert link.connected
    assert fake_ble.connect_calls == 2


# ---------------------------------------------------------------------------
# failures, backoff, disconnect


async def test_failed_connects_follow_backoff(make_link, fake_ble, clock) -> None:
    fake_ble.script(*[Outcome.fail()] * 4, Outcome.ok())
    link = make_link(attempts=1)
    link.start()
    await link.wait_connected(2)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert link.health.attempts == 5
    assert link.health.last_error is None


async def test_connector_retries_transient_errors_within_one_connect(make_link, fake_ble):
    fake_ble.script(Outcome.fail(BleakError("le-connection-abort-by-local")), Outcome.ok())
    link = make_link(attempts=3)
    await link.connect(timeout=2)
    assert fake_ble.connect_calls == 2
    assert link.health.attempts == 1  # one link attempt; the retry was the connector's


async def test_typed_error_after_the_last_attempt(make_link, fake_ble) -> None:
    fake_ble.script(*[Outcome.fail()] * 3)
    link = make_link(attempts=3)
    with pytest.raises(ConnectError, match="Failed to connect after 3 attempt") as info:
        await link.connect(timeout=2)
    assert isinstance(info.value.__cause__, BleakError)
    assert fake_ble.connect_calls == 3


async def test_disconnect_during_hanging_connect(make_link, fake_ble) -> None:
    fake_ble.script(Outcome.hang(), Outcome.ok())
    link = make_link()
    pending = asyncio.create_task(link.connect(timeout=30))
    await until(lambda: fake_ble.hanging)
    await link.disconnect()
    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(pending, 1)
    assert not fake_ble.hanging
    await link.connect(timeout=2)
    assert link.connected


async def test_disconnect_after_failed_connect_leaves_no_unawaited_coroutine(
    make_link, fake_ble
) -> None:
    fake_ble.script(Outcome.fail(), Outcome.ok())
    link = make_link()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConnectError):
            await link.connect(timeout=2)
        await link.disconnect()
        await link.disconnect()  # idempotent
        await link.connect(timeout=2)
        await link.disconnect()
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    # The one connected client was disconnected by an awaited call.
    assert fake_ble.disconnect_calls == 1
    assert fake_ble.active is None


async def test_failed_notify_setup_fails_the_connect_and_closes_the_client(
    make_link, fake_ble
) -> None:
    fake_ble.refuse_notify(TELEMETRY_UUID)
    link = make_link()
    await link.subscribe(TELEMETRY_UUID, lambda m: None)
    with pytest.raises(ConnectError, match="notify on"):
        await link.connect(timeout=2)
    # The client that did connect was disconnected, by an awaited call.
    assert fake_ble.connect_calls == 1
    assert fake_ble.disconnect_calls == 1
    assert fake_ble.active is None
    assert link.subscriptions.keys() == {TELEMETRY_UUID}  # kept for the next try


async def test_disconnect_is_bounded_when_the_device_hangs(make_link, fake_ble, monkeypatch):
    link = make_link()
    await link.connect(timeout=2)
    client = fake_ble.active
    assert client is not None

    async def stuck() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(client, "disconnect", stuck)
    monkeypatch.setattr("gridwatch.transport.ble_link.DISCONNECT_TIMEOUT_S", 0.02)
    await asyncio.wait_for(link.disconnect(), 1)
    assert not link.connected


# ---------------------------------------------------------------------------
# requests


async def test_read_and_write(make_link, fake_ble) -> None:
    link = make_link()
    fake_ble.set_value(STATUS_UUID, b"\x2a")
    await link.connect(timeout=2)
    assert await link.read(STATUS_UUID) == b"\x2a"
    await link.write(COMMAND_UUID, b"\x01", response=True)
    await link.write(COMMAND_UUID, b"\x02", response=False)
    assert fake_ble.writes == [(COMMAND_UUID, b"\x01", True), (COMMAND_UUID, b"\x02", False)]


async def test_read_times_out(make_link, fake_ble) -> None:
    link = make_link()
    await link.connect(timeout=2)
    fake_ble.stall(STATUS_UUID)
    with pytest.raises(RequestTimeout):
        await link.read(STATUS_UUID, timeout=0.02)
    assert link.connected  # a slow answer is not a lost link


async def test_write_times_out(make_link, fake_ble) -> None:
    link = make_link()
    await link.connect(timeout=2)
    fake_ble.stall(COMMAND_UUID)
    with pytest.raises(RequestTimeout):
        await link.write(COMMAND_UUID, b"\x01", timeout=0.02)
    assert fake_ble.writes == []


async def test_requests_when_down_raise_not_connected(make_link, fake_ble) -> None:
    link = make_link()
    with pytest.raises(NotConnectedError):
        await link.read(STATUS_UUID)
    with pytest.raises(NotConnectedError):
        await link.write(COMMAND_UUID, b"\x00")


async def test_unknown_characteristic_is_a_request_error(make_link, fake_ble) -> None:
    link = make_link()
    await link.connect(timeout=2)
    with pytest.raises(RequestError, match="no such characteristic"):
        await link.read("0000beef-0000-1000-8000-00805f9b34fb")


async def test_pending_read_fails_on_disconnect(make_link, fake_ble) -> None:
    link = make_link()
    await link.connect(timeout=2)
    fake_ble.stall(STATUS_UUID)
    pending = asyncio.create_task(link.read(STATUS_UUID, timeout=30))
    await asyncio.sleep(0)
    await link.disconnect()
    with pytest.raises(LinkClosedError):
        await asyncio.wait_for(pending, 1)


# ---------------------------------------------------------------------------
# host without BlueZ


async def test_unsupported_host_is_one_clear_error(clock, caplog) -> None:
    async def no_dbus(address: str, timeout: float):
        # What bleak raises on a host without a D-Bus system bus.
        raise FileNotFoundError(2, "No such file or directory")

    link = BleLink(
        "battery",
        BleSettings("AA:BB:CC:DD:EE:01"),
        find_device=no_dbus,
        clock=clock,
        sleep=clock.sleep,
    )
    with caplog.at_level(logging.DEBUG, logger="gridwatch.transport"):
        link.start()
        await until(lambda: link.fatal_error is not None)
    await asyncio.sleep(0.01)
    assert isinstance(link.fatal_error, UnsupportedHostError)
    assert "BlueZ" in str(link.fatal_error)
    assert clock.sleeps == []  # no retries
    assert link.health.state is LinkState.DISCONNECTED
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    await link.disconnect()


@pytest.mark.skipif(
    os.path.exists("/run/dbus/system_bus_socket")
    or os.path.exists("/var/run/dbus/system_bus_socket")
    or bool(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")),
    reason="this host has a D-Bus system bus; the check is for hosts without one",
)
async def test_real_bleak_on_a_host_without_bluez_raises_unsupported() -> None:
    link = BleLink("battery", BleSettings("AA:BB:CC:DD:EE:01", scan_timeout_s=1.0))
    with pytest.raises(UnsupportedHostError):
        await link.connect(timeout=5)
    await link.disconnect()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        BleSettings("")
    with pytest.raises(ValueError):
        BleSettings("AA:BB", connect_attempts=0)
    with pytest.raises(ValueError):
        BleSettings("AA:BB", request_timeout_s=0)


# ---------------------------------------------------------------------------
# conformance: the fake cannot drift from the installed bleak


def test_fake_implements_every_abstract_method_with_compatible_signatures() -> None:
    abstract = BaseBleakClient.__abstractmethods__
    assert abstract  # bleak still declares its backend interface
    assert not getattr(FakeBleakBackend, "__abstractmethods__", frozenset())
    for name in sorted(abstract | {"__init__", "name"}):
        ours = inspect.getattr_static(FakeBleakBackend, name)
        theirs = inspect.getattr_static(BaseBleakClient, name)
        assert ours is not theirs, f"{name} not implemented by the fake"
        if isinstance(theirs, property):
            assert isinstance(ours, property), name
            continue
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name
        ours_params = inspect.signature(ours).parameters
        theirs_params = inspect.signature(theirs).parameters
        assert list(ours_params) == list(theirs_params), name
        for param_name, param in theirs_params.items():
            assert ours_params[param_name].kind == param.kind, f"{name}({param_name})"


async def test_fake_works_through_the_real_bleak_client(fake_ble) -> None:
    disconnected: list[BleakClient] = []
    client = BleakClient(fake_ble.device(), disconnected.append, backend=fake_ble.backend)
    assert client.backend_id == fake_ble.backend.__name__
    await client.connect()
    connected = [client.is_connected]
    received: list[bytes] = []
    await client.start_notify(TELEMETRY_UUID, lambda _char, data: received.append(bytes(data)))
    fake_ble.notify(TELEMETRY_UUID, b"\x05")
    assert received == [b"\x05"]
    fake_ble.set_value(STATUS_UUID, b"hi")
    assert await client.read_gatt_char(STATUS_UUID) == bytearray(b"hi")
    await client.write_gatt_char(COMMAND_UUID, b"go", response=True)
    await client.stop_notify(TELEMETRY_UUID)
    assert client.mtu_size == 23
    fake_ble.drop()
    assert disconnected == [client]
    connected.append(client.is_connected)
    assert connected == [True, False]
    with pytest.raises(BleakError):
        await client.start_notify(TELEMETRY_UUID, lambda _c, _d: None)
    await client.disconnect()


async def test_fake_works_through_the_real_connector(fake_ble) -> None:
    fake_ble.script(Outcome.fail(), Outcome.ok())
    client = await bleak_retry_connector.establish_connection(
        bleak_retry_connector.BleakClientWithServiceCache,
        fake_ble.device(),
        "fake",
        max_attempts=2,
        backend=fake_ble.backend,
    )
    assert client.is_connected
    assert fake_ble.connect_calls == 2
    await client.disconnect()


async def test_subscribe_made_while_connect_runs_is_turned_on(make_link, fake_ble) -> None:
    # Issue 12: a subscription registered after the replay list was taken was
    # never sent, though the link reported connected.
    link = make_link()
    seen: list[Message] = []
    await link.subscribe(TELEMETRY_UUID, seen.append)
    original = link._replay_subscriptions

    async def replay_then_subscribe(subs: list[Any]) -> None:
        await original(subs)
        if not any(s.key == STATUS_UUID for s in subs):
            await link.subscribe(STATUS_UUID, seen.append)

    link._replay_subscriptions = replay_then_subscribe  # type: ignore[method-assign]
    await link.connect(timeout=2)
    assert fake_ble.subscribed() == {TELEMETRY_UUID, STATUS_UUID}
    assert fake_ble.notify(STATUS_UUID, b"\x07")
    assert [(m.key, m.payload) for m in seen] == [(STATUS_UUID, b"\x07")]
