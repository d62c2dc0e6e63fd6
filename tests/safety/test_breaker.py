import asyncio

import pytest

from gridwatch.safety.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from tests.support.clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(threshold=5, reset_after_s=60.0, clock=clock)


def fail(breaker, reason="boom", *, force=False):
    ticket = breaker.acquire(force=force)
    assert ticket is not None
    breaker.failed(ticket, reason)


def trip(breaker):
    for i in range(5):
        fail(breaker, f"failure {i}")


def test_opens_after_five_consecutive_failures(breaker, clock):
    for _ in range(4):
        fail(breaker)
        assert breaker.state is BreakerState.CLOSED
    clock.advance(1.0)
    fail(breaker, "read back 'on'")
    snap = breaker.snapshot()
    assert snap.state is BreakerState.OPEN
    assert snap.failure_count == 5
    assert snap.last_failure_at == clock.monotonic()
    assert snap.last_failure_reason == "read back 'on'"
    assert snap.can_attempt is False
    assert breaker.acquire() is None


def test_success_resets_the_consecutive_count(breaker):
    for _ in range(4):
        fail(breaker)
    ticket = breaker.acquire()
    breaker.succeeded(ticket)
    assert breaker.snapshot().failure_count == 0
    for _ in range(4):
        fail(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_after_reset_period_on_the_monotonic_clock(breaker, clock):
    trip(breaker)
    clock.advance(59.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.can_attempt()


def test_half_open_admits_exactly_one_probe(breaker, clock):
    trip(breaker)
    clock.advance(60)
    probe = breaker.acquire()
    assert probe is not None
    assert probe.probe
    assert breaker.acquire() is None
    assert breaker.acquire() is None
    assert not breaker.can_attempt()


def test_probe_success_closes(breaker, clock):
    trip(breaker)
    clock.advance(60)
    breaker.succeeded(breaker.acquire())
    snap = breaker.snapshot()
    assert snap.state is BreakerState.CLOSED
    assert snap.failure_count == 0
    assert snap.can_attempt


def test_probe_failure_reopens_for_another_full_period(breaker, clock):
    trip(breaker)
    clock.advance(60)
    breaker.failed(breaker.acquire(), "still broken")
    assert breaker.state is BreakerState.OPEN
    clock.advance(59)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_cancelled_probe_is_not_a_failure_and_frees_the_slot(breaker, clock):
    trip(breaker)
    clock.advance(60)
    probe = breaker.acquire()
    breaker.cancelled(probe)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.snapshot().failure_count == 5
    assert breaker.acquire() is not None


def test_forced_call_runs_while_open_and_its_failure_counts(breaker, clock):
    trip(breaker)
    clock.advance(30)
    ticket = breaker.acquire(force=True)
    assert ticket is not None
    breaker.failed(ticket, "stop failed")
    assert breaker.snapshot().failure_count == 6
    # The reset period restarts from the latest failure.
    clock.advance(59)
    assert breaker.state is BreakerState.OPEN


def test_forced_success_does_not_close_or_reset(breaker, clock):
    for _ in range(4):
        fail(breaker)
    breaker.succeeded(breaker.acquire(force=True))
    assert breaker.snapshot().failure_count == 4
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    breaker.succeeded(breaker.acquire(force=True))
    assert breaker.state is BreakerState.OPEN


def test_success_of_a_call_admitted_before_it_opened_does_not_close(breaker):
    early = breaker.acquire()
    trip(breaker)
    breaker.succeeded(early)
    assert breaker.state is BreakerState.OPEN


def test_rejects_bad_policy():
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)


async def test_call_counts_exceptions_and_failure_results(breaker):
    async def boom():
        raise RuntimeError("no answer")

    with pytest.raises(RuntimeError):
        await breaker.call(boom)
    assert breaker.snapshot().last_failure_reason == "RuntimeError: no answer"

    async def bad_result():
        return "nope"

    assert await breaker.call(bad_result, failure_of=lambda r: f"got {r}") == "nope"
    snap = breaker.snapshot()
    assert snap.failure_count == 2
    assert snap.last_failure_reason == "got nope"


async def test_call_refused_while_open_but_forced_call_runs(breaker):
    trip(breaker)
    ran = []

    async def act():
        ran.append(True)
        return "ok"

    with pytest.raises(BreakerOpenError):
        await breaker.call(act)
    assert ran == []
    assert await breaker.call(act, force=True) == "ok"
    assert ran == [True]


async def test_cancelled_call_is_not_a_failure(breaker):
    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.snapshot().failure_count == 0


async def test_concurrent_calls_in_half_open_let_one_probe_through(breaker, clock):
    trip(breaker)
    clock.advance(60)
    release = asyncio.Event()
    running = 0
    peak = 0

    async def probe():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert peak == 1
    assert sum(r == "ok" for r in results) == 1
    assert sum(isinstance(r, BreakerOpenError) for r in results) == 4
    assert breaker.state is BreakerState.CLOSED
