"""Device profiles through aiobmsble against a simulated JBD BMS.

The simulator (tests/support/fake_jbd.py) answers the real protocol byte for
byte on the scripted bleak backend; the real aiobmsble sends the requests,
reassembles the notifications and checks the checksums. aiobmsble needs
Python >= 3.12: on 3.11 this module skips, and ./run test runs it on 3.13.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

pytestmark = pytest.mark.needs_py312
aiobmsble = pytest.importorskip("aiobmsble", reason="aiobmsble needs Python >= 3.12")

import bleak_retry_connector  # noqa: E402
from aiobmsble.basebms import BaseBMS  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gridwatch.runtime.ble_profiles import device_link  # noqa: E402
from gridwatch.transport.ble_device_link import BleDeviceLink  # noqa: E402
from gridwatch.transport.ble_settings import DEVICE_KEY, BleSettings  # noqa: E402
from gridwatch.transport.errors import ConnectError  # noqa: E402
from gridwatch.transport.link import Message  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402
from tests.support.fake_jbd import (  # noqa: E402
    BASIC_INFO,
    CELL_VOLTAGES,
    RECORDED_VALUES,
    JbdSimulator,
    JbdState,
)
from tests.support.waiting import until  # noqa: E402

FAST_RETRY_S = 0.05


@pytest.fixture(autouse=True)
def fast_library(monkeypatch: pytest.MonkeyPatch) -> None:
    # aiobmsble waits up to 5 s (BLEAK_TIMEOUT / 4) for a valid answer over
    # its retries; the simulator answers in one loop turn or never.
    monkeypatch.setattr(BaseBMS, "_RETRY_TIMEOUT", FAST_RETRY_S)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_BACKOFF_TIME", 0.0)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_TRANSIENT_BACKOFF_TIME", 0.0)


@pytest.fixture
async def links():
    made: list[BleDeviceLink] = []
    yield made
    for link in made:
        await link.disconnect()


def make_link(
    links: list[BleDeviceLink],
    sim: JbdSimulator,
    *,
    kind: str = "jbd",
    poll_s: float = 0.05,
    failures: int = 2,
    clock: FakeClock | None = None,
) -> tuple[BleDeviceLink, list[dict[str, Any]]]:
    peripheral = sim.peripheral()
    settings = BleSettings(
        peripheral.address,
        device=kind,
        poll_interval_s=poll_s,
        request_timeout_s=2.0,
        failures_before_offline=failures,
    )
    options: dict[str, Any] = {"backend": peripheral.backend, "rand": lambda: 0.5}
    if clock is not None:
        options.update(clock=clock, sleep=clock.sleep)
    link = device_link("house_battery", settings, options)
    assert isinstance(link, BleDeviceLink)
    links.append(link)
    samples: list[dict[str, Any]] = []
    return link, samples


async def subscribe(link: BleDeviceLink, samples: list[dict[str, Any]]) -> None:
    def on_message(message: Message) -> None:
        assert message.key == DEVICE_KEY
        samples.append(message.payload)

    await link.subscribe(DEVICE_KEY, on_message)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


# ---------------------------------------------------------------------------
# The recorded frames, through the real library


@pytest.mark.parametrize("kind", ["jbd", "auto"])
async def test_recorded_frames_decode_to_the_values_aiobmsble_recorded(links, kind) -> None:
    sim = JbdSimulator()
    link, samples = make_link(links, sim, kind=kind)
    await subscribe(link, samples)
    await link.connect(timeout=5)
    await until(lambda: samples)
    sample = samples[0]
    for key, want in RECORDED_VALUES.items():
        got = sample[key]
        if isinstance(want, list):
            assert len(got) == len(want), key
            assert all(close(g, w) for g, w in zip(got, want, strict=True)), key
        elif isinstance(want, bool):
            assert got is want, key
        else:
            assert close(got, want), (key, got, want)
    # The library sent JBD read commands for both registers, checksummed.
    assert sim.requests[:2] == [bytes.fromhex("dda50300fffd77"), bytes.fromhex("dda50400fffc77")]


@pytest.mark.parametrize("chunk", [3, 7, 20, 64])
async def test_answers_split_any_way_reassemble(links, chunk) -> None:
    sim = JbdSimulator(chunk=chunk)
    link, samples = make_link(links, sim)
    await subscribe(link, samples)
    await link.connect(timeout=5)
    await until(lambda: samples)
    assert close(samples[0]["voltage"], 15.6)
    assert [round(v, 3) for v in samples[0]["cell_voltages"]] == [3.43, 3.425, 3.432, 3.417]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cells=st.lists(st.integers(2500, 3650), min_size=1, max_size=16),
    current_ma=st.integers(-300_000, 300_000).map(lambda v: v - v % 10),
    soc=st.integers(0, 100),
    temps=st.lists(st.integers(-200, 600).map(lambda v: v / 10), min_size=0, max_size=4),
    chunk=st.sampled_from([4, 11, 20, 200]),
)
async def test_any_pack_reads_back_as_it_is(cells, current_ma, soc, temps, chunk) -> None:
    """What a pack holds (cells, current, SoC, temperatures) is what the link delivers."""
    state = JbdState(cells_mv=cells, current_ma=current_ma, soc=soc, temps_c=temps)
    made: list[BleDeviceLink] = []
    link, samples = make_link(made, JbdSimulator(state=state, chunk=chunk))
    await subscribe(link, samples)
    try:
        await link.connect(timeout=5)
        await until(lambda: samples)
    finally:
        await link.disconnect()
    sample = samples[0]
    assert [round(v * 1000) for v in sample["cell_voltages"]] == cells
    assert close(sample["voltage"], (sum(cells) // 10) / 100)
    assert close(sample["current"], current_ma / 1000)
    assert sample["battery_level"] == soc
    assert [round(t, 1) for t in sample.get("temp_values", [])] == temps


# ---------------------------------------------------------------------------
# Broken answers: the library refuses them, the link says so and recovers


@pytest.mark.parametrize("fault", ["corrupt_checksum", "short_frame", "silent", "stop_mid_frame"])
async def test_a_broken_first_answer_fails_the_connect_and_a_good_one_recovers(
    links, fault
) -> None:
    sim = JbdSimulator()
    getattr(sim, fault).add(BASIC_INFO)
    link, samples = make_link(links, sim)
    await subscribe(link, samples)
    with pytest.raises(ConnectError, match="no valid answer"):
        await link.connect(timeout=5)
    assert samples == []
    assert not link.connected
    getattr(sim, fault).clear()
    await link.connect(timeout=5)
    await until(lambda: samples)
    assert close(samples[0]["voltage"], 15.6)


async def test_polls_that_stop_answering_drop_the_connection_then_it_comes_back(links) -> None:
    sim = JbdSimulator()
    link, samples = make_link(links, sim, failures=2)
    await subscribe(link, samples)
    link.start()
    await until(lambda: link.connected and samples)
    sim.stop_mid_frame.add(CELL_VOLTAGES)  # the pack goes quiet halfway through an answer
    await until(lambda: not link.connected)
    assert link.health.last_error is not None
    assert "2 polls failed" in link.health.last_error
    sim.stop_mid_frame.clear()
    count = len(samples)
    await until(lambda: link.connected and len(samples) > count)


async def test_a_device_that_drops_mid_frame_is_reconnected(links) -> None:
    sim = JbdSimulator()
    link, samples = make_link(links, sim, failures=1, clock=FakeClock())
    await subscribe(link, samples)
    link.start()
    await until(lambda: link.connected and samples)
    peripheral_calls = len(sim.requests)
    sim.drop_mid_frame.add(BASIC_INFO)
    await until(lambda: len(sim.requests) > peripheral_calls + 1)
    sim.drop_mid_frame.clear()
    count = len(samples)
    await until(lambda: link.connected and len(samples) > count)
    assert link.health.reconnects >= 1


# ---------------------------------------------------------------------------
# Fault matrix: 20 repetitions, nothing left behind


async def one_fault_round(fault: str) -> None:
    """Connect, break the device with ``fault``, heal it, see data again, disconnect."""
    sim = JbdSimulator()
    made: list[BleDeviceLink] = []
    # A fake clock for the reconnect backoff: 20 rounds need no real waiting.
    link, samples = make_link(made, sim, failures=1, clock=FakeClock())
    await subscribe(link, samples)
    link.start()
    await until(lambda: link.connected and bool(samples))
    getattr(sim, fault).add(BASIC_INFO)
    await until(lambda: not link.connected)
    getattr(sim, fault).clear()
    count = len(samples)
    await until(lambda: link.connected and len(samples) > count)
    await link.disconnect()
    assert sim.device is not None
    assert sim.device.active is None  # no connection left open
    assert sim.device.connect_calls >= 2


@pytest.mark.parametrize("fault", ["drop_mid_frame", "silent"])
async def test_fault_matrix_leaves_no_task_or_connection(fault) -> None:
    baseline = len(asyncio.all_tasks())
    for _ in range(20):
        await one_fault_round(fault)
    await until(lambda: len(asyncio.all_tasks()) <= baseline, timeout=2)
