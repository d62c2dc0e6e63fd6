from datetime import UTC, datetime, timedelta

import pytest

from demo.entities import CUTOFF_SOC, DISCHARGE_DURATION, DISCHARGE_ENABLE, DISCHARGE_POWER
from demo.inverter import SAFE_CUTOFF_SOC, Controls, InverterState, decide

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def states(enable="on", power="2000", cutoff="20", duration="0"):
    return {
        DISCHARGE_ENABLE: enable,
        DISCHARGE_POWER: power,
        CUTOFF_SOC: cutoff,
        DISCHARGE_DURATION: duration,
    }


def test_controls_parse_numbers():
    c = Controls.from_states(states(power="2500.0", cutoff="15", duration="30"))
    assert c == Controls(enabled=True, power_w=2500.0, cutoff_soc_pct=15.0, duration_min=30.0)


@pytest.mark.parametrize("bad", [None, "unknown", "unavailable", "", "nan", "inf", "abc"])
def test_unreadable_controls_fall_back_to_the_safe_side(bad):
    c = Controls.from_states(states(enable=bad, power=bad, cutoff=bad, duration=bad))
    assert c == Controls(enabled=False, power_w=0.0, cutoff_soc_pct=SAFE_CUTOFF_SOC)


def test_negative_power_is_no_power():
    assert Controls.from_states(states(power="-100")).power_w == 0.0


def test_enabled_discharges_at_the_set_power_and_remembers_the_start():
    state, sp = decide(InverterState(), Controls.from_states(states()), 60.0, T0)
    assert (sp.discharge_w, sp.mode, sp.timer_expired) == (2000.0, "discharging", False)
    assert state.started_at == T0
    state, _ = decide(state, Controls.from_states(states()), 60.0, T0 + timedelta(minutes=5))
    assert state.started_at == T0


def test_disabled_is_idle_and_forgets_the_start():
    state, sp = decide(InverterState(T0), Controls.from_states(states(enable="off")), 60.0, T0)
    assert (sp.discharge_w, sp.mode) == (0.0, "idle")
    assert state.started_at is None


@pytest.mark.parametrize(
    ("soc", "mode"), [(20.0, "cutoff"), (19.0, "cutoff"), (20.5, "discharging")]
)
def test_cutoff_soc(soc, mode):
    _, sp = decide(InverterState(), Controls.from_states(states(cutoff="20")), soc, T0)
    assert sp.mode == mode
    assert (sp.discharge_w > 0) == (mode == "discharging")


def test_timed_discharge_ends_and_asks_for_the_switch_off():
    controls = Controls.from_states(states(duration="10"))
    state, sp = decide(InverterState(), controls, 60.0, T0)
    state, sp = decide(state, controls, 60.0, T0 + timedelta(minutes=9, seconds=59))
    assert sp.discharge_w == 2000.0
    state, sp = decide(state, controls, 60.0, T0 + timedelta(minutes=10))
    assert (sp.discharge_w, sp.timer_expired) == (0.0, True)
    assert state.started_at is None


def test_zero_power_while_enabled_is_idle():
    _, sp = decide(InverterState(), Controls.from_states(states(power="0")), 60.0, T0)
    assert (sp.discharge_w, sp.mode) == (0.0, "idle")
