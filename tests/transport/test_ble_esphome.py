"""ESPHome Bluetooth proxies as the radio, against simulated proxies.

Each proxy is a loopback server speaking ESPHome's native API with
aioesphomeapi's own messages (tests/support/fake_esphome.py); the real
aioesphomeapi, habluetooth and bleak-esphome run on this side. Behind the
proxies sit the same simulated devices as elsewhere: the JBD BMS (its
protocol byte for byte) and the Victron SmartShunt's advertisements.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("bleak_esphome")

from gridwatch.runtime.ble_profiles import custom_link, device_link
from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.ble_esphome import shared_radio
from gridwatch.transport.ble_link import BleLink
from gridwatch.transport.ble_settings import (
    DEVICE_KEY,
    BleRadioSettings,
    BleSettings,
    EsphomeProxy,
)
from gridwatch.transport.errors import ConnectError
from tests.support import waiting
from tests.support.fake_esphome import (
    FakeEsphomeProxy,
    GattDevice,
    Heard,
    ad_structures,
)
from tests.support.fake_jbd import (
    BASIC_INFO,
    JBD_RX,
    JBD_SERVICE,
    JBD_TX,
    RECORDED,
    JbdSimulator,
    read_command,
)
from tests.support.fake_victron import RECORDED as SHUNT
from tests.support.fake_victron import VICTRON_COMPANY_ID

# Waits here default to 10.0 s.
until = functools.partial(waiting.until, timeout=10.0)


BMS = "A4:C1:37:00:00:01"
SHUNT_ADDRESS = "C4:4F:33:00:00:02"


def bms_device(sim: JbdSimulator) -> GattDevice:
    return GattDevice(
        BMS,
        JBD_SERVICE,
        [(JBD_RX, ["notify", "read"]), (JBD_TX, ["write", "write-without-response"])],
        responder=sim.respond,
        values={JBD_RX: b"\x01\x02"},
    )


def bms_heard(rssi: int) -> Heard:
    return Heard(BMS, rssi, lambda: ad_structures(name="JBD-SP04S034", service_uuids16=[0xFF00]))


def shunt_heard(rssi: int = -70) -> Heard:
    data = SHUNT["data"]
    return Heard(
        SHUNT_ADDRESS,
        rssi,
        lambda: ad_structures(name="SmartShunt", manufacturer={VICTRON_COMPANY_ID: data}),  # type: ignore[dict-item]
    )


@pytest.fixture
async def world() -> AsyncIterator[dict[str, Any]]:
    """Proxies, radios and links made by a test; all stopped after it."""
    made: dict[str, Any] = {"proxies": [], "radios": [], "links": []}
    yield made
    for link in made["links"]:
        await link.disconnect()
    for radio in made["radios"]:
        await shared_radio(radio).stop()
    for proxy in made["proxies"]:
        await proxy.stop()


async def start_proxies(
    world: dict[str, Any],
    *proxies: FakeEsphomeProxy,
    noise_psk: str | None = None,
    connect_timeout_s: float = 5,
) -> BleRadioSettings:
    """Start the proxies; the radio that reaches them (with ``noise_psk`` as each one's key)."""
    for proxy in proxies:
        await proxy.start()
        world["proxies"].append(proxy)
    radio = BleRadioSettings(
        adapter="esphome",
        proxies=tuple(EsphomeProxy(p.host, p.port, noise_psk=noise_psk) for p in proxies),
        connect_timeout_s=connect_timeout_s,
    )
    world["radios"].append(radio)
    return radio


def bms_link(world: dict[str, Any], radio: BleRadioSettings) -> BleLink:
    settings = BleSettings(BMS, scan_timeout_s=5, request_timeout_s=5, connect_attempts=1)
    link = custom_link("bms", settings, {"rand": lambda: 0.5}, radio)
    assert isinstance(link, BleLink)
    world["links"].append(link)
    return link


async def ask_basic_info(link: BleLink, frames: list[bytes]) -> bytes:
    """Write the JBD read command; the answer's notifications, joined."""
    frames.clear()
    await link.write(JBD_TX, read_command(BASIC_INFO))
    want = RECORDED[BASIC_INFO]
    await until(lambda: b"".join(frames) == want, timeout=5)
    return b"".join(frames)


# ---------------------------------------------------------------------------


async def test_gatt_write_notify_and_read_go_through_the_proxy(world) -> None:
    sim = JbdSimulator()
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], devices=[bms_device(sim)])
    radio = await start_proxies(world, proxy)
    link = bms_link(world, radio)
    frames: list[bytes] = []
    await link.subscribe(JBD_RX, lambda m: frames.append(m.payload))
    await link.connect(timeout=20)
    assert await ask_basic_info(link, frames) == RECORDED[BASIC_INFO]
    assert sim.requests == [read_command(BASIC_INFO)]  # the command arrived byte for byte
    assert await link.read(JBD_RX) == b"\x01\x02"
    assert {"BluetoothGATTWriteRequest", "BluetoothGATTNotifyRequest"} <= set(proxy.received)


async def near_and_far(
    world: dict[str, Any], near_rssi: int, far_rssi: int
) -> tuple[FakeEsphomeProxy, FakeEsphomeProxy, BleLink]:
    """Two proxies reaching the BMS (the far one listed first), both having
    heard it, and a link to it through them."""
    sim = JbdSimulator()
    near = FakeEsphomeProxy(
        "proxy-near", "AA:BB:CC:00:00:0E", heard=[bms_heard(near_rssi)], devices=[bms_device(sim)]
    )
    far = FakeEsphomeProxy(
        "proxy-far", "AA:BB:CC:00:00:0F", heard=[bms_heard(far_rssi)], devices=[bms_device(sim)]
    )
    radio = await start_proxies(world, far, near)
    proxies = shared_radio(radio)
    await proxies.start()
    # Both proxies must have heard it before the choice means anything.
    await until(lambda: len(_sightings(proxies, BMS)) == 2)
    return near, far, bms_link(world, radio)


async def test_the_proxy_hearing_the_device_best_carries_the_connection(world) -> None:
    near, far, link = await near_and_far(world, -52, -88)
    await link.connect(timeout=20)
    assert (near.gatt_connects, far.gatt_connects) == (1, 0)


def _sightings(radio: Any, address: str) -> list[Any]:
    manager = radio._manager
    return [] if manager is None else manager.async_scanner_devices_by_address(address, True)


async def test_a_proxy_that_drops_out_is_failed_over(world) -> None:
    near, far, link = await near_and_far(world, -50, -85)
    frames: list[bytes] = []
    await link.subscribe(JBD_RX, lambda m: frames.append(m.payload))
    link.start()
    await until(lambda: link.connected)
    assert near.gatt_connects == 1
    await near.stop()  # the near proxy loses power
    await until(lambda: not link.connected)
    await until(lambda: link.connected and far.gatt_connects == 1, timeout=20)
    assert await ask_basic_info(link, frames) == RECORDED[BASIC_INFO]


async def test_a_proxy_that_restarts_is_reconnected_and_the_link_comes_back(world) -> None:
    sim = JbdSimulator()
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], devices=[bms_device(sim)])
    radio = await start_proxies(world, proxy)
    link = bms_link(world, radio)
    frames: list[bytes] = []
    await link.subscribe(JBD_RX, lambda m: frames.append(m.payload))
    link.start()
    await until(lambda: link.connected)
    await proxy.stop()
    await until(lambda: not link.connected)
    await proxy.start()  # same port: the proxy rebooted
    await until(lambda: link.connected, timeout=40)
    assert proxy.sessions >= 2
    assert await ask_basic_info(link, frames) == RECORDED[BASIC_INFO]


async def test_no_proxy_answering_is_one_clear_error(world) -> None:
    proxy = FakeEsphomeProxy()
    await proxy.start()
    port = proxy.port
    await proxy.stop()  # nobody listens there now
    radio = BleRadioSettings(
        adapter="esphome", proxies=(EsphomeProxy("127.0.0.1", port),), connect_timeout_s=1
    )
    world["radios"].append(radio)
    link = bms_link(world, radio)
    with pytest.raises(
        ConnectError, match=rf"no ESPHome Bluetooth proxy answered .*127\.0\.0\.1:{port}"
    ):
        await link.connect(timeout=10)


async def test_advertisements_through_the_proxies_feed_a_passive_link(world) -> None:
    pytest.importorskip("victron_ble")
    radio = await start_proxies(
        world,
        FakeEsphomeProxy("proxy-a", "AA:BB:CC:00:00:0A", heard=[shunt_heard(-70)]),
        FakeEsphomeProxy("proxy-b", "AA:BB:CC:00:00:0B", heard=[shunt_heard(-60)]),
    )
    settings = BleSettings(SHUNT_ADDRESS, device="victron", key=SHUNT["key"], scan_timeout_s=5)  # type: ignore[arg-type]
    link = device_link("shunt", settings, {}, radio)
    world["links"].append(link)
    readings: list[dict[str, Any]] = []
    await link.subscribe(DEVICE_KEY, lambda m: readings.append(m.payload))
    await link.connect(timeout=20)
    await until(lambda: readings)
    assert readings[0]["voltage"] == pytest.approx(12.53)
    assert readings[0]["soc"] == pytest.approx(50.0)


@pytest.mark.slow
async def test_fault_matrix_proxy_lost_20_times_leaves_no_task_or_connection(world) -> None:
    sim = JbdSimulator()
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], devices=[bms_device(sim)])
    radio = await start_proxies(world, proxy)
    link = bms_link(world, radio)
    link.backoff = BackoffPolicy(initial_s=0.05, cap_s=0.2)
    link.start()
    await until(lambda: link.connected)
    baseline = len(asyncio.all_tasks())
    for _ in range(20):
        await proxy.stop()
        await until(lambda: not link.connected)
        await proxy.start()
        await until(lambda: link.connected, timeout=40)
    await link.disconnect()
    assert proxy.gatt_connects >= 21
    await until(lambda: proxy.open_connections == 0, timeout=5)  # the link let go
    await until(lambda: len(asyncio.all_tasks()) <= baseline, timeout=5)
    assert link.health.reconnects >= 20


@pytest.mark.needs_py312
async def test_a_bms_profile_polls_through_a_proxy(world) -> None:
    pytest.importorskip("aiobmsble", reason="aiobmsble needs Python >= 3.12")
    sim = JbdSimulator()
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], devices=[bms_device(sim)])
    radio = await start_proxies(world, proxy)
    settings = BleSettings(BMS, device="jbd", scan_timeout_s=5, request_timeout_s=10)
    link = device_link("house_battery", settings, {}, radio)
    world["links"].append(link)
    samples: list[dict[str, Any]] = []
    await link.subscribe(DEVICE_KEY, lambda m: samples.append(m.payload))
    await link.connect(timeout=30)
    await until(lambda: samples)
    assert samples[0]["voltage"] == pytest.approx(15.6)
    assert [round(v, 3) for v in samples[0]["cell_voltages"]] == [3.43, 3.425, 3.432, 3.417]


async def test_a_passive_link_goes_offline_with_its_only_proxy_and_returns_with_it(world) -> None:
    pytest.importorskip("victron_ble")
    proxy = FakeEsphomeProxy(heard=[shunt_heard(-65)])
    radio = await start_proxies(world, proxy)
    settings = BleSettings(
        SHUNT_ADDRESS,
        device="victron",
        key=SHUNT["key"],  # type: ignore[arg-type]
        scan_timeout_s=5,
        advertisement_timeout_s=0.5,
    )
    link = device_link("shunt", settings, {"rand": lambda: 0.5}, radio)
    world["links"].append(link)
    readings: list[dict[str, Any]] = []
    await link.subscribe(DEVICE_KEY, lambda m: readings.append(m.payload))
    link.start()
    await until(lambda: link.connected and readings)
    await proxy.stop()  # the only radio that heard it is gone
    await until(lambda: not link.connected)
    assert "no advertisement" in (link.health.last_error or "")
    await proxy.start()
    count = len(readings)
    await until(lambda: link.connected and len(readings) > count, timeout=40)


PSK = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA="
OTHER_PSK = "QRTIErOb/fcE9Ukd/5qA3RGYMn0Y+p06U58SCtOXvPc="


async def test_an_encrypted_proxy_is_reached_with_its_key(world) -> None:
    sim = JbdSimulator()
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], devices=[bms_device(sim)], noise_psk=PSK)
    radio = await start_proxies(world, proxy, noise_psk=PSK)
    link = bms_link(world, radio)
    frames: list[bytes] = []
    await link.subscribe(JBD_RX, lambda m: frames.append(m.payload))
    await link.connect(timeout=20)
    assert await ask_basic_info(link, frames) == RECORDED[BASIC_INFO]
    assert proxy.handshake_failures == 0


async def test_a_wrong_proxy_key_is_named_in_the_error(world) -> None:
    proxy = FakeEsphomeProxy(heard=[bms_heard(-60)], noise_psk=PSK)
    radio = await start_proxies(world, proxy, noise_psk=OTHER_PSK, connect_timeout_s=2)
    link = bms_link(world, radio)
    with pytest.raises(ConnectError, match=r"(?i)encryption key") as err:
        await link.connect(timeout=10)
    assert OTHER_PSK not in str(err.value)  # the key itself is never shown
    assert proxy.handshake_failures >= 1
