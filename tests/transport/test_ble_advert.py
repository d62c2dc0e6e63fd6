"""Advertisement links: Victron Instant Readout through the real victron-ble,
from a simulated SmartShunt on the shared scanner (runs on Python 3.11)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.runtime.ble_profiles import device_link
from gridwatch.transport.ble_advert_link import BleAdvertLink
from gridwatch.transport.ble_drivers import MissingLibraryError, require_library
from gridwatch.transport.ble_settings import DEVICE_KEY, BleSettings
from gridwatch.transport.errors import AuthError
from gridwatch.transport.link import Message
from tests.support.fake_victron import RECORDED, Shunt, ShuntState, advertiser_for
from tests.support.waiting import until

pytest.importorskip("victron_ble")

OTHER_KEY = "0123456789abcdef0123456789abcdef"


async def no_wait(_delay: float) -> None:
    await asyncio.sleep(0)


def make(
    shunt: Shunt, advertiser: type, *, timeout_s: float = 0.5, scan_s: float = 1.0, **options: Any
):
    settings = BleSettings(
        shunt.address,
        device="victron",
        key=RECORDED["key"],  # type: ignore[arg-type]
        advertisement_timeout_s=timeout_s,
        scan_timeout_s=scan_s,
    )
    # The link resolves "module:attribute" in apps.yaml; tests hand the class over.
    link = device_link("shunt", settings, {"rand": lambda: 0.5, **options})
    assert isinstance(link, BleAdvertLink)
    link._get_hub = _hub_of(advertiser)
    readings: list[dict[str, Any]] = []

    def on_message(message: Message) -> None:
        readings.append(message.payload)

    return link, readings, on_message


async def first_reading(shunt: Shunt, advertiser: type) -> dict[str, Any]:
    """What a link to ``shunt`` delivers first (connected, then let go)."""
    link, readings, on_message = make(shunt, advertiser)
    await link.subscribe(DEVICE_KEY, on_message)
    try:
        await link.connect(timeout=5)
        await until(lambda: readings)
    finally:
        await link.disconnect()
    return readings[0]


def _hub_of(advertiser: type):
    from gridwatch.transport.ble_scanner import shared_hub

    return lambda: shared_hub(advertiser)


async def test_the_recorded_advertisement_reads_as_victron_ble_recorded_it() -> None:
    shunt = Shunt(key=RECORDED["key"])  # type: ignore[arg-type]
    shunt.next_advertisement = lambda: _recorded()  # type: ignore[method-assign]
    got = await first_reading(shunt, advertiser_for(shunt, interval_s=0.02))
    for key, want in RECORDED["values"].items():  # type: ignore[union-attr]
        assert got[key] == pytest.approx(want), key
    assert got["model"] == "SmartShunt 500A/50mV"


def _recorded():
    from tests.support.fake_victron import advertisement

    return advertisement(RECORDED["data"])  # type: ignore[arg-type]


def test_the_encoder_reproduces_the_recorded_advertisement() -> None:
    from tests.support.fake_victron import encrypt

    data = encrypt(RECORDED["plain"], RECORDED["key"], iv=0x40B0)  # type: ignore[arg-type]
    assert data[: len(RECORDED["data"])] == RECORDED["data"]  # type: ignore[arg-type]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    volts=st.integers(900, 6500).map(lambda v: v / 100),
    amps=st.integers(-500_000, 500_000).map(lambda v: v / 1000),
    soc=st.integers(0, 1000).map(lambda v: v / 10),
    consumed=st.integers(0, 20_000).map(lambda v: v / 10),
)
async def test_any_shunt_reading_arrives_as_the_shunt_measured_it(volts, amps, soc, consumed):
    state = ShuntState(voltage=volts, current=amps, soc=soc, consumed_ah=consumed)
    shunt = Shunt(state=state)
    got = await first_reading(shunt, advertiser_for(shunt, interval_s=0.01))
    assert got["voltage"] == pytest.approx(volts)
    assert got["current"] == pytest.approx(amps)
    assert got["soc"] == pytest.approx(soc)
    assert got["consumed_ah"] == pytest.approx(-consumed)


async def test_a_wrong_key_stops_the_link_with_what_to_fix_and_never_delivers() -> None:
    shunt = Shunt(key=OTHER_KEY)  # the device's key is not the configured one
    link, readings, on_message = make(shunt, advertiser_for(shunt, interval_s=0.02), scan_s=0.3)
    await link.subscribe(DEVICE_KEY, on_message)
    try:
        with pytest.raises(AuthError, match="key does not match this device"):
            await link.connect(timeout=5)
        assert link.undecodable > 0
        link.start()  # the lifecycle gives up at once: retrying cannot fix a key
        await until(lambda: link.fatal_error is not None)
        assert "VictronConnect" in str(link.fatal_error)
    finally:
        await link.disconnect()
    assert readings == []


async def test_silence_takes_the_link_down_and_the_next_advertisement_brings_it_back() -> None:
    shunt = Shunt()
    link, readings, on_message = make(shunt, advertiser_for(shunt, interval_s=0.02))
    await link.subscribe(DEVICE_KEY, on_message)
    link.start()
    try:
        await until(lambda: link.connected and readings)
        shunt.silent = True  # walked out of range
        await until(lambda: not link.connected)
        assert "no advertisement" in (link.health.last_error or "")
        shunt.silent = False
        count = len(readings)
        await until(lambda: link.connected and len(readings) > count)
    finally:
        await link.disconnect()


async def test_links_share_one_scanner_and_the_last_one_out_stops_it() -> None:
    a, b = Shunt(address="C4:4F:33:00:00:0A"), Shunt(address="C4:4F:33:00:00:0B")
    b.state = ShuntState(voltage=12.0)
    advertiser = advertiser_for(a, b, interval_s=0.02)
    link_a, got_a, cb_a = make(a, advertiser)
    link_b, got_b, cb_b = make(b, advertiser)
    await link_a.subscribe(DEVICE_KEY, cb_a)
    await link_b.subscribe(DEVICE_KEY, cb_b)
    await asyncio.gather(link_a.connect(timeout=5), link_b.connect(timeout=5))
    await until(lambda: got_a and got_b)
    assert advertiser.started == 1
    assert got_a[-1]["voltage"] == pytest.approx(51.2)
    assert got_b[-1]["voltage"] == pytest.approx(12.0)  # each link hears only its own
    hub = link_a._hub
    assert hub is link_b._hub
    await link_a.disconnect()
    assert hub is not None
    assert hub.running
    await link_b.disconnect()
    assert not hub.running


async def test_fault_matrix_silence_20_times_leaves_no_task() -> None:
    baseline = len(asyncio.all_tasks())
    for _ in range(20):
        shunt = Shunt()
        link, _readings, on_message = make(
            shunt, advertiser_for(shunt, interval_s=0.01), timeout_s=0.1, sleep=no_wait
        )
        await link.subscribe(DEVICE_KEY, on_message)
        link.start()
        await until(lambda: link.connected)  # noqa: B023 - awaited in the same pass
        shunt.silent = True
        await until(lambda: not link.connected)  # noqa: B023
        shunt.silent = False
        await until(lambda: link.connected)  # noqa: B023
        hub = link._hub
        await link.disconnect()
        assert hub is not None
        assert not hub.running
    await until(lambda: len(asyncio.all_tasks()) <= baseline, timeout=2)


def test_a_missing_library_names_it_and_the_python_it_needs() -> None:
    with pytest.raises(MissingLibraryError) as err:
        require_library("gridwatch_no_such_library", "no-such-lib", (99, 0), "jbd")
    text = str(err.value)
    assert "device: jbd" in text
    assert "no-such-lib needs Python >= 99.0" in text
    assert f"runs Python {sys.version_info.major}.{sys.version_info.minor}" in text
    with pytest.raises(MissingLibraryError, match="add no-such-lib to AppDaemon's python_packages"):
        require_library("gridwatch_no_such_library", "no-such-lib", (3, 0), "jbd")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="aiobmsble installs on 3.12+")
def test_a_bms_profile_on_python_311_is_one_clear_start_error() -> None:
    settings = BleSettings("A4:C1:37:00:00:01", device="jbd")
    with pytest.raises(MissingLibraryError, match=r"aiobmsble needs Python >= 3\.12"):
        device_link("house_battery", settings, {})


async def test_a_polled_device_is_looked_up_in_the_same_scan_the_passive_links_hear() -> None:
    from gridwatch.runtime.ble_profiles import hub_locate

    heard, looked_up = Shunt(address="C4:4F:33:00:00:0A"), Shunt(address="C4:4F:33:00:00:0B")
    advertiser = advertiser_for(heard, looked_up, interval_s=0.02)
    link, _readings, on_message = make(heard, advertiser)
    await link.subscribe(DEVICE_KEY, on_message)
    await link.connect(timeout=5)
    try:
        found = await hub_locate(advertiser)(looked_up.address, 2.0)
        assert found is not None
        assert found[0].address == looked_up.address
        assert found[1] is not None  # its advertisement, for identifying it
        assert advertiser.started == 1  # one scan served both
        assert await hub_locate(advertiser)("C4:4F:33:00:00:FF", 0.1) is None
    finally:
        await link.disconnect()
