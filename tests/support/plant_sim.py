"""The plant (:mod:`tests.support.plant`) wired to :class:`FakeHass`: the
real export guard app reads the meter the plant writes and drives the
inverter controls the plant obeys. Faults: a late-landing turn_on, an
inverter that refuses changes and whose entities flip back, a stuck
inverter, another actor writing the controls, AppDaemon's cache losing the
actuator entities.

A :class:`Record` of every step gives the physics the tests judge: export
over the limit, battery power while the guard believes it is off,
actuator writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridwatch.hass.states import parse_bool, parse_float
from tests.support.fake_hass import FakeHass, Succeed
from tests.support.plant import Controls, LaggedSensor, Site

GRID, SOC, EXPORTED = "sensor.grid_power", "sensor.battery_soc", "sensor.grid_export_today"
BATTERY = "sensor.battery_power"
ENABLE, POWER = "input_boolean.battery_discharge", "input_number.battery_discharge_power"
DURATION = "input_number.battery_discharge_minutes"
REQUEST = "input_boolean.battery_discharge_request"
EVENT = "gridwatch_export_guard"
ACTUATOR_SERVICES = ("input_boolean/turn_on", "input_boolean/turn_off", "input_number/set_value")
# The energy counter updates every five minutes, like many integrations.
COUNTER_PERIOD_S = 300.0


def guard_args(**overrides: Any) -> dict[str, Any]:
    """apps.yaml options for the guard on this plant (limit 3000 W)."""
    args: dict[str, Any] = {
        "export_limit_w": 3000,
        "deadband_w": 100,
        "daily_export_cap_kwh": 200,
        "cap_margin_kwh": 0.5,
        "min_soc_pct": 20,
        "max_discharge_w": 5000,
        "meter_period_s": 1,
        "readings": {
            "grid_power": {"entity": GRID},
            "soc": {"entity": SOC, "max_age_s": 3600},
            "export_today": {"entity": EXPORTED, "max_age_s": 3600},
        },
        "actuators": {
            "enable": {"entity": ENABLE},
            "power": {"entity": POWER},
            "duration": {"entity": DURATION},
        },
        # One read-back, one attempt: the fake answers at once.
        "verify_within_s": 0,
        "attempts": 1,
        "retry_after_s": 2,
        "tick_s": 1,
    }
    args.update(overrides)
    return args


@dataclass
class Record:
    """What happened, one row per step."""

    limit_w: float
    dt: float
    # Over the limit by less than this is the meter's noise, not export.
    noise_w: float = 0.5
    t: list[float] = field(default_factory=list)
    export: list[float] = field(default_factory=list)
    battery: list[float] = field(default_factory=list)
    believed_off: list[bool] = field(default_factory=list)
    requested: list[bool] = field(default_factory=list)
    # The plant was faulty (it ignored a stop, or was stuck): what it did
    # then is not the guard's; what the guard said about it still is.
    excused: list[bool] = field(default_factory=list)

    def add(
        self,
        t: float,
        export: float,
        battery: float,
        believed_off: bool,
        requested: bool,
        excused: bool = False,
    ) -> None:
        self.t.append(t)
        self.export.append(export)
        self.battery.append(battery)
        self.believed_off.append(believed_off)
        self.requested.append(requested)
        self.excused.append(excused)

    def over_stretches(self, *, caused_only: bool = True) -> list[tuple[float, float, float]]:
        """(start, end, peak overshoot W) of each stretch over the limit
        (with the battery contributing, when ``caused_only``)."""
        out: list[tuple[float, float, float]] = []
        start = None
        peak = 0.0
        rows = zip(self.t, self.export, self.battery, self.excused, strict=True)
        for t, e, b, excused in rows:
            over = e - self.limit_w
            hit = (
                over > self.noise_w
                and (b > 0.5 or not caused_only)
                and not (caused_only and excused)
            )
            if hit:
                if start is None:
                    start, peak = t, 0.0
                peak = max(peak, over)
            elif start is not None:
                out.append((start, t, peak))
                start = None
        if start is not None:
            out.append((start, self.t[-1] + self.dt, peak))
        return out

    def over_wh(self, *, excused_too: bool = True) -> float:
        """Energy over the limit that the battery caused (Wh); without the
        rows where the plant was faulty unless ``excused_too``."""
        total = 0.0
        for e, b, excused in zip(self.export, self.battery, self.excused, strict=True):
            if excused and not excused_too:
                continue
            total += min(max(e - self.limit_w, 0.0), max(b, 0.0)) * self.dt
        return total / 3600.0

    def until(self, end: float) -> Record:
        """The rows before ``end``."""
        n = sum(1 for t in self.t if t < end)
        cut = Record(self.limit_w, self.dt, self.noise_w)
        cut.t, cut.export, cut.battery = self.t[:n], self.export[:n], self.battery[:n]
        cut.believed_off, cut.requested = self.believed_off[:n], self.requested[:n]
        cut.excused = self.excused[:n]
        return cut

    def since(self, start: float) -> Record:
        """The rows at or after ``start``."""
        n = sum(1 for t in self.t if t < start)
        cut = Record(self.limit_w, self.dt, self.noise_w)
        cut.t, cut.export, cut.battery = self.t[n:], self.export[n:], self.battery[n:]
        cut.believed_off, cut.requested = self.believed_off[n:], self.requested[n:]
        cut.excused = self.excused[n:]
        return cut

    def hours(self) -> float:
        return len(self.t) * self.dt / 3600.0


class GuardSim:
    """Steps the plant, the meters and the fake HA together.

    Args:
        hass: the fake HA (its clock is the simulation's).
        site: PV, load and inverter.
        meter: the grid meter.
        battery_sensor: the battery-power sensor, if the site has one.
        meter_sign: +1 writes export positive, -1 import positive (HA's).
        dt: the physics step (s).
        limit_w: the export limit the record judges.
    """

    def __init__(
        self,
        hass: FakeHass,
        site: Site,
        meter: LaggedSensor,
        *,
        battery_sensor: LaggedSensor | None = None,
        meter_sign: float = -1.0,
        dt: float = 0.1,
        limit_w: float = 3000.0,
    ) -> None:
        self.hass, self.site, self.meter = hass, site, meter
        self.battery_sensor = battery_sensor
        self.sign = meter_sign
        self.dt = dt
        self.t0 = hass.clock.monotonic()
        self.record = Record(limit_w, dt)
        self.real = Controls()
        self.refuse = False  # the inverter ignores changes; its entities flip back
        self.flip_back_s = 1.0
        self._revert_at: float | None = None
        self._late: list[tuple[float, str, str]] = []  # (due, entity, state)
        self._jitter = 1
        self._exported_kwh = 1.0
        self._counter_at = 0.0
        # The counter may publish late: each update shows the total as it
        # was this long before (many integrations do).
        self.counter_lag_s = 0.0
        self._duration_writes = 0  # writes seen (a timer may restart at each)
        self._counter_history: list[tuple[float, float]] = [(0.0, 1.0)]
        self.guard: Any = None  # the app, for the believed state
        self.args: dict[str, Any] = {}  # its options (a restart uses them again)
        self.exported_kwh = 0.0  # what really went to the grid since the start
        # The meter shows the site as it is when the guard starts.
        first = round(meter_sign * site.uncontrolled_w(0.0))
        hass.seed(GRID, f"{first:d}", {"unit_of_measurement": "W"})
        hass.seed(SOC, "80")
        hass.seed(EXPORTED, "1.0")
        hass.seed(ENABLE, "off")
        hass.seed(POWER, "0")
        hass.seed(DURATION, "0")
        hass.seed(REQUEST, "off")
        if battery_sensor is not None:
            hass.seed(BATTERY, "0")

    @property
    def now(self) -> float:
        """Simulated seconds since the start."""
        return self.hass.clock.monotonic() - self.t0

    # --- faults ---------------------------------------------------------------

    def late_turn_on(self, after_s: float) -> None:
        """The next turn_on answers but lands only ``after_s`` later."""
        self.hass.script_service("input_boolean/turn_on", Succeed())
        self._late.append((self.now + after_s, ENABLE, "on"))

    async def other_actor(self, enable: bool, power_w: float | None = None) -> None:
        """Another automation writes the controls."""
        if power_w is not None:
            await self.hass.set_device_state(POWER, f"{power_w:g}")
        await self.hass.set_device_state(ENABLE, "on" if enable else "off")

    # --- stepping -------------------------------------------------------------

    async def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            await self.step()

    async def step(self) -> None:
        t, dt = self.now, self.dt
        await self._apply_faults(t)
        self.real = self._controls(t)
        export, battery = self.site.step(t, dt, self.real)
        if self.site.inverter.timer_expired:
            # The inverter ends a timed discharge by switching its enable off.
            self.site.inverter.timer_expired = False
            self.real = Controls(False, self.real.power_w, self.real.duration_min)
            await self.hass.set_device_state(ENABLE, "off")
        self.meter.record(t, dt, export)
        if self.battery_sensor is not None:
            self.battery_sensor.record(t, dt, battery)
        self._exported_kwh += max(export, 0.0) * dt / 3.6e6
        self.exported_kwh += max(export, 0.0) * dt / 3.6e6
        await self.hass.advance(dt)
        await self._report(t + dt)
        if self.guard is not None and self.guard.controller is not None:
            await self.guard.controller.wait_idle()
        state = (
            None
            if self.guard is None or self.guard.controller is None
            else self.guard.controller.state
        )
        # "Off" as the guard publishes it: no critical failed stop standing.
        believed_off = (
            state is not None
            and state.actuator.value == "off"
            and state.pending is None
            and state.stop_failed is None
            and state.supervision.alarm is None
        )
        requested = state is not None and state.request is not None
        inverter = self.site.inverter
        excused = inverter.ignores_stop or inverter.stuck_w is not None or self.refuse
        self.record.add(t, export, battery, believed_off, requested, excused)

    async def _report(self, t: float) -> None:
        reading = self.meter.due(t)
        if reading is not None:
            # Real meters never repeat a value exactly for long; HA drops a
            # repeated state, so a perfectly steady sim would read as stale.
            self._jitter = -self._jitter
            value = round(self.sign * reading) + self._jitter
            await self.hass.set_device_state(GRID, f"{value:d}")
        if self.battery_sensor is not None:
            value = self.battery_sensor.due(t)
            if value is not None:
                # A discharging battery's reading wanders by a watt or two
                # (HA drops a repeated state); at rest it reads 0.
                wander = self._jitter if abs(value) > 50.0 else 0
                await self.hass.set_device_state(BATTERY, f"{round(value) + wander:d}")
        self._counter_history.append((t, self._exported_kwh))
        if t - self._counter_at >= COUNTER_PERIOD_S:
            self._counter_at = t
            shown = [kwh for at, kwh in self._counter_history if at <= t - self.counter_lag_s]
            self._counter_history = self._counter_history[max(len(shown) - 1, 0) :]
            value = shown[-1] if shown else self._counter_history[0][1]
            await self.hass.set_device_state(EXPORTED, f"{value:.3f}")

    def _controls(self, t: float) -> Controls:
        writes = [
            c
            for c in self.hass.calls_to("input_number/set_value")
            if c.data.get("entity_id") == DURATION
        ]
        if len(writes) > self._duration_writes:
            self._duration_writes = len(writes)
            self.site.inverter.timer_written_at = t
        states = {e: self.hass.state_of(e) for e in (ENABLE, POWER, DURATION)}
        raw = {e: (None if s is None else s.raw) for e, s in states.items()}
        # An entity gone from HA (a removed integration) does not stop the
        # inverter: it keeps what it was last told.
        enabled = parse_bool(raw[ENABLE])
        power = parse_float(raw[POWER]).value
        minutes = parse_float(raw[DURATION]).value
        shown = Controls(
            self.real.enabled if enabled is None and raw[ENABLE] is None else bool(enabled),
            self.real.power_w if power is None and raw[POWER] is None else power or 0.0,
            self.real.duration_min if minutes is None and raw[DURATION] is None else minutes or 0.0,
        )
        if not self.refuse:
            return shown
        if shown != self.real and self._revert_at is None:
            self._revert_at = t + self.flip_back_s
        return self.real

    async def _apply_faults(self, t: float) -> None:
        if self._revert_at is not None and t >= self._revert_at:
            self._revert_at = None
            # The entities show the inverter's real settings again.
            await self.hass.set_device_state(POWER, f"{self.real.power_w:g}")
            await self.hass.set_device_state(ENABLE, "on" if self.real.enabled else "off")
        due = [x for x in self._late if x[0] <= t]
        self._late = [x for x in self._late if x[0] > t]
        for _, entity, state in due:
            await self.hass.set_device_state(entity, state)

    def actuator_writes(self) -> int:
        return sum(len(self.hass.calls_to(s)) for s in ACTUATOR_SERVICES)
