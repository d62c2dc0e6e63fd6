import asyncio

import pytest

from gridwatch.safety.verified_call import CallResult, VerifyPolicy, failure_reason, verified_call
from tests.support.clock import FakeClock


class Target:
    """A scripted actuator: act() sets the state after ``lag`` polls."""

    def __init__(self, clock, *, lag_s=0.0, works=True, act_error=None, hang=False):
        self.clock = clock
        self.state = "off"
        self.lag_s = lag_s
        self.works = works
        self.act_error = act_error
        self.hang = hang
        self.acts = 0
        self.reads = 0
        self._applies_at = None

    async def act(self):
        self.acts += 1
        if self.works:
            self._applies_at = self.clock.monotonic() + self.lag_s
        if self.hang:
            await asyncio.Event().wait()
        if self.act_error:
            raise self.act_error

    async def read(self):
        self.reads += 1
        if self._applies_at is not None and self.clock.monotonic() >= self._applies_at:
            self.state = "on"
        return self.state


def is_on(value):
    return value == "on"


@pytest.fixture
def clock():
    return FakeClock()


async def run(target, clock, policy=None):
    return await verified_call(
        target.act,
        target.read,
        is_on,
        what="enable discharge",
        policy=policy or VerifyPolicy(),
        clock=clock.monotonic,
        sleep=clock.sleep,
        rand=lambda: 0.5,
    )


async def test_success_on_first_read(clock):
    target = Target(clock)
    result = await run(target, clock)
    assert result == CallResult(True, 1, None, "on")
    assert (target.acts, target.reads) == (1, 1)
    assert failure_reason(result) is None


async def test_polls_every_200_ms_until_state_shows(clock):
    target = Target(clock, lag_s=1.0)
    result = await run(target, clock)
    assert result.ok
    assert result.attempts == 1
    assert clock.sleeps == [pytest.approx(0.2)] * 5


async def test_three_attempts_with_backoff_then_failure_with_reason(clock):
    target = Target(clock, works=False)
    result = await run(target, clock)
    assert not result.ok
    assert result.attempts == 3
    assert target.acts == 3
    assert result.last_read == "off"
    assert "enable discharge: read back 'off'" in result.reason
    assert "after 3 attempts" in result.reason
    assert failure_reason(result) == result.reason
    # Each round polls for 3 s (15 x 200 ms); rounds are 0.5 s then 1 s apart.
    backoffs = [s for s in clock.sleeps if s != pytest.approx(0.2)]
    assert backoffs == [pytest.approx(0.5), pytest.approx(1.0)]
    assert sum(1 for s in clock.sleeps if s == pytest.approx(0.2)) == 45


async def test_succeeds_on_a_later_attempt(clock):
    target = Target(clock, works=False)
    original = target.act

    async def act_works_second_time():
        await original()
        if target.acts == 2:
            target.works = True
            target._applies_at = clock.monotonic()

    target.act = act_works_second_time
    result = await run(target, clock)
    assert result.ok
    assert result.attempts == 2


async def test_timed_out_call_is_read_back_and_can_succeed(clock):
    # The command landed, only HA's answer was lost.
    target = Target(clock, hang=True)
    result = await run(target, clock, VerifyPolicy(call_timeout_s=0.01))
    assert result.ok
    assert target.acts == 1


async def test_timed_out_call_that_did_not_land_names_the_timeout(clock):
    target = Target(clock, hang=True, works=False)
    result = await run(target, clock, VerifyPolicy(call_timeout_s=0.01, attempts=1))
    assert not result.ok
    assert "no answer within 0.01 s" in result.reason


async def test_call_error_is_in_the_reason(clock):
    target = Target(clock, works=False, act_error=RuntimeError("service not found"))
    result = await run(target, clock, VerifyPolicy(attempts=1))
    assert "call failed: RuntimeError: service not found" in result.reason


async def test_read_errors_are_retried_until_the_deadline(clock):
    target = Target(clock)
    reads = 0

    async def flaky_read():
        nonlocal reads
        reads += 1
        if reads < 3:
            raise ConnectionError("socket closed")
        return "on"

    result = await verified_call(
        target.act, flaky_read, is_on, clock=clock.monotonic, sleep=clock.sleep
    )
    assert result.ok
    assert reads == 3


async def test_read_error_at_the_deadline_is_the_reason(clock):
    target = Target(clock)

    async def broken_read():
        raise ConnectionError("socket closed")

    result = await verified_call(
        target.act,
        broken_read,
        is_on,
        policy=VerifyPolicy(attempts=1),
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    assert not result.ok
    assert "read back failed: ConnectionError: socket closed" in result.reason


async def test_cancellation_propagates(clock):
    target = Target(clock, hang=True)
    task = asyncio.create_task(run(target, clock))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"call_timeout_s": 0}, {"verify_within_s": -1}]
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError, match=r"verified call|verify_within"):
        VerifyPolicy(**kwargs)
