import asyncio

import pytest

from gridwatch.guard.actuators import (
    ActuatorSet,
    GuardActuators,
    SwitchActuator,
    ValueActuator,
    read_past_cache,
)
from gridwatch.guard.decisions import Action, ActionKind, Outcome
from gridwatch.guard.publisher import GuardPublisher
from gridwatch.guard.runner import ActionRunner
from gridwatch.hass.errors import HassError
from gridwatch.hass.ports import EntityState
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient
from gridwatch.safety.breaker import CircuitBreaker
from gridwatch.safety.verified_call import VerifyPolicy
from tests.guard.guard_helpers import CLOSED, ev, idle
from tests.support.fake_hass import Fail, FakeHass, Succeed

ENABLE = SwitchActuator("switch.discharge", "switch/turn_on", "switch/turn_off")
POWER = ValueActuator("number.power", "number/set_value", tolerance=10)
CUTOFF = ValueActuator("number.cutoff", "number/set_value")
MINUTES = ValueActuator("number.minutes", "number/set_value")
QUICK = VerifyPolicy(verify_within_s=0, attempts=1)


@pytest.fixture
def hass():
    world = FakeHass()
    for entity, state in (
        (ENABLE.entity, "off"),
        (POWER.entity, "0"),
        (CUTOFF.entity, "0"),
        (MINUTES.entity, "0"),
    ):
        world.seed(entity, state)
    world.script_service("switch/turn_on", Succeed(set_state=(ENABLE.entity, "on")))
    return world


def actuators(hass, **kw):
    return GuardActuators(hass, ActuatorSet(ENABLE, POWER, **kw), QUICK)


async def test_start_sets_power_cutoff_and_duration_before_enabling(hass):
    act = actuators(hass, cutoff_soc=CUTOFF, duration=MINUTES)
    start = Action(ActionKind.START, 1, power_w=2000, cutoff_soc_pct=15, duration_min=29.2)
    result = (await act.perform(start)).result
    assert result.ok
    assert [(c.service, dict(c.data)) for c in hass.calls] == [
        ("number/set_value", {"entity_id": POWER.entity, "value": 2000}),
        ("number/set_value", {"entity_id": CUTOFF.entity, "value": 15}),
        ("number/set_value", {"entity_id": MINUTES.entity, "value": 30}),
        ("switch/turn_on", {"entity_id": ENABLE.entity}),
    ]


async def test_first_failing_step_ends_the_start(hass):
    hass.script_service("number/set_value", Succeed())  # answers, value never changes
    result = (await actuators(hass).perform(Action(ActionKind.START, 1, power_w=2000))).result
    assert not result.ok
    assert "number.power=2000: read back '0'" in result.reason
    assert not hass.calls_to("switch/turn_on")


async def test_value_within_tolerance_counts_as_set_and_the_read_back_is_recorded(hass):
    # A quantised inverter rounds 2000 W to its 5 W steps and shows 1995.
    hass.script_service("number/set_value", Succeed(set_state=(POWER.entity, "1995")))
    done = await actuators(hass).perform(Action(ActionKind.SET_POWER, 1, power_w=2000))
    assert done.result.ok
    assert done.power_w == 1995.0


async def test_read_back_asks_ha_itself_when_appdaemons_cache_lost_the_entity(hass):
    # AppDaemon 4.5.13 ignores an entity removed and re-added by a reload.
    hass.seed(ENABLE.entity, "on")
    hass.cache_lost.add(ENABLE.entity)
    done = await actuators(hass).perform(Action(ActionKind.STOP, 1))
    assert done.result.ok
    assert ENABLE.entity in hass.rest_reads


async def test_renew_sets_only_the_duration(hass):
    done = await actuators(hass, duration=MINUTES).perform(
        Action(ActionKind.RENEW, 1, power_w=2000, duration_min=7.2)
    )
    assert done.result.ok
    assert [(c.service, dict(c.data)) for c in hass.calls] == [
        ("number/set_value", {"entity_id": MINUTES.entity, "value": 8}),
    ]


async def test_stop_only_switches_off(hass):
    hass.seed(ENABLE.entity, "on")
    assert (await actuators(hass).perform(Action(ActionKind.STOP, 1))).result.ok
    assert [c.service for c in hass.calls] == ["switch/turn_off"]
    assert hass.state_of(ENABLE.entity).raw == "off"


async def test_runner_counts_failures_in_the_breaker_and_forces_stops(hass):
    breaker = CircuitBreaker(threshold=1, clock=hass.clock)
    runner = ActionRunner(breaker, actuators(hass), dry_run=False)
    hass.script_service("number/set_value", Fail("device offline"))
    outcome, reason, _ = await runner.run(Action(ActionKind.SET_POWER, 1, power_w=100))
    assert outcome is Outcome.FAILED
    assert "device offline" in reason
    assert (await runner.run(Action(ActionKind.SET_POWER, 2, power_w=100)))[0] is Outcome.REFUSED
    hass.seed(ENABLE.entity, "on")
    assert (await runner.run(Action(ActionKind.STOP, 3)))[0] is Outcome.OK


async def test_runner_turns_an_unexpected_error_into_a_failure(hass):
    class Broken(GuardActuators):
        async def perform(self, action):
            raise KeyError("bug")

    runner = ActionRunner(
        CircuitBreaker(clock=hass.clock), Broken(hass, ActuatorSet(ENABLE, POWER)), dry_run=False
    )
    assert await runner.run(Action(ActionKind.STOP, 1)) == (
        Outcome.FAILED,
        "KeyError: 'bug'",
        None,
    )


async def test_dry_run_touches_nothing(hass):
    runner = ActionRunner(CircuitBreaker(clock=hass.clock), actuators(hass), dry_run=True)
    assert await runner.run(Action(ActionKind.START, 1, power_w=100)) == (Outcome.OK, None, None)
    assert hass.calls == []


async def test_publisher_writes_only_the_latest_snapshot_and_only_changes(hass):
    notices = NoticeClient(hass, "guard")
    publisher = GuardPublisher(hass, notices, "guard", {}, dry_run=False)
    publisher.submit(idle(), ev(grid=100.0), CLOSED, 1000.0, hass.now())
    publisher.submit(idle(), ev(grid=200.0), CLOSED, 1000.0, hass.now())
    await publisher.wait_idle()
    headroom = [w for w in hass.entity_writes if w[0] == "sensor.guard_export_headroom_power"]
    # Both were submitted before the writer ran: only the latest is written.
    assert [w[1] for w in headroom] == ["2700"]
    writes = len(hass.entity_writes)
    publisher.submit(idle(), ev(grid=200.0), CLOSED, 1000.0, hass.now())
    await publisher.wait_idle()
    assert len(hass.entity_writes) == writes  # nothing changed, nothing written
    assert [d["action"] for d in hass.events_of(NOTICE_EVENT)] == ["resolve"] * 5
    await publisher.close()


async def test_publisher_close_cancels_a_write_in_progress(hass):
    started = asyncio.Event()

    class SlowHass(FakeHass):
        async def set_entity(self, entity_id, state, attributes):
            started.set()
            await asyncio.Event().wait()

    slow = SlowHass()
    publisher = GuardPublisher(slow, NoticeClient(slow, "guard"), "guard", {}, dry_run=False)
    publisher.submit(idle(), ev(), CLOSED, 1000.0, slow.now())
    await started.wait()
    await publisher.close()
    await publisher.wait_idle()


class BrokenReader:
    """HA's REST API refusing (HassError) or never answering (``hang``)."""

    def __init__(self, *, hang: bool) -> None:
        self.hang = hang

    async def read_state(self, entity_id: str) -> EntityState | None:
        if self.hang:
            await asyncio.Event().wait()
        raise HassError(f"GET /api/states/{entity_id}: 502")


@pytest.mark.parametrize("hang", [False, True], ids=["refused", "no answer"])
async def test_a_failed_read_past_the_cache_is_no_answer_not_an_error(hang):
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await read_past_cache(BrokenReader(hang=hang), ENABLE.entity, 0.05) is None
    assert loop.time() - began < 5  # bounded by its timeout, not hanging


async def test_an_unreadable_enable_fails_the_stop_read_back(hass):
    # The cache lost the entity and HA does not answer: the stop is not
    # taken as verified on no evidence.
    hass.seed(ENABLE.entity, "on")
    hass.cache_lost.add(ENABLE.entity)

    async def refuse(entity_id: str) -> EntityState | None:
        raise HassError(f"GET /api/states/{entity_id}: 502")

    hass.read_state = refuse  # type: ignore[method-assign]
    done = await actuators(hass).perform(Action(ActionKind.STOP, 1))
    assert not done.result.ok
