"""The energy tally app against the fake HA port.

The recorder is modelled by :class:`tests.energy.recorder_model.RecorderModel`
answering the fake's websocket commands; requests are counted there.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridwatch.config.base import load_config
from gridwatch.config.energy_tally_schema import EnergyTallyConfig, EnergyTallySchema
from gridwatch.energy.month_cache import MAX_PAGES_PER_CYCLE, SETTLE_GRACE
from gridwatch.energy.periods import tally_periods
from gridwatch.energy.recorder_statistics import (
    COMMAND_TYPE,
    month_request,
    parse_statistics,
    today_request,
)
from gridwatch.energy.runner import METADATA_COMMAND, TallyRunner
from gridwatch.energy.tally import Tally, compute_tally, live_reading
from gridwatch.notices.client import NOTICE_EVENT, NoticeClient
from gridwatch_energy_tally import EnergyTally
from tests.energy.recorder_model import RecorderModel
from tests.support.app_harness import make_app
from tests.support.clock import FakeClock
from tests.support.fake_hass import Fail, FakeHass, TimeOut

BERLIN = ZoneInfo("Europe/Berlin")
# 10:30 local on 15 June 2026; the month began at 22:00 UTC on 31 May.
NOW = datetime(2026, 6, 15, 8, 30, tzinfo=UTC)
MONTH_START = datetime(2026, 5, 31, 22, tzinfo=UTC)
LOG = logging.getLogger("tests.energy_tally")


def config(meters: list[dict], **options) -> EnergyTallyConfig:
    args = {"name": "energy_tally", "meters": meters, "time_zone": "Europe/Berlin", **options}
    return load_config(EnergyTallySchema, args, into=EnergyTallyConfig)


def meters_of(count: int) -> list[dict]:
    return [
        {"statistic_id": f"sensor.m{i}", "name": f"M{i}", "role": "import"} for i in range(count)
    ]


class World:
    """Fake HA with a recorder model answering every statistics command."""

    def __init__(self) -> None:
        self.hass = FakeHass(FakeClock(wall=NOW))
        self.model = RecorderModel(BERLIN)
        self.fail_with: list[object] = []
        # When set, the recorder compiles each hour this long after it ends.
        self.compile_delay: timedelta | None = None

    def respond(self, command):
        if self.compile_delay is not None:
            self.model.compiled_until = self.hass.now() - self.compile_delay
        return self.model.answer(command)

    def stat_commands(self) -> list[dict]:
        """The statistics commands sent (HA's get_config aside)."""
        return [c for c in self.hass.ws_commands if c["type"] == COMMAND_TYPE]

    def sent_per_cycle(self, before: int) -> int:
        return len(self.stat_commands()) - before

    def uncached(self, cfg: EnergyTallyConfig) -> Tally:
        """The tally of a cycle now that sends both requests, as before the cache."""
        periods = tally_periods(self.hass.now(), BERLIN)
        ids = [m.statistic_id for m in cfg.meters]
        units = cfg.request_units
        hourly, daily = (
            parse_statistics(self.respond(c), ids)
            for c in (
                today_request(ids, periods, request_units=units),
                month_request(ids, periods.month_start, periods, request_units=units),
            )
        )
        live = {}
        for sid in ids:
            reading = live_reading(self.hass.state_of(sid))
            if reading is not None:
                live[sid] = reading
        return compute_tally(
            cfg.meters, hourly, daily, live, periods, zone=BERLIN, units_requested=cfg.request_units
        )

    def metadata(self, command):
        """HA's recorder/get_statistics_metadata: each statistic's unit."""
        return [
            {"statistic_id": sid, "statistics_unit_of_measurement": stat.unit, "has_sum": True}
            for sid, stat in self.model.stats.items()
            if sid in command["statistic_ids"]
        ]

    def arm(self, cycles: int = 20) -> None:
        self.hass.script_websocket(COMMAND_TYPE, *([self.respond] * 15 * cycles))
        self.hass.script_websocket(METADATA_COMMAND, *([self.metadata] * cycles))
        self.hass.script_websocket("get_config", *([{"time_zone": "Europe/Berlin"}] * 5))

    async def runner(self, cfg: EnergyTallyConfig) -> TallyRunner:
        notices = NoticeClient(self.hass, "energy_tally")
        runner = TallyRunner(cfg, self.hass, notices, "energy_tally", LOG)
        await runner.start()
        return runner

    def state(self, entity_id: str) -> str | None:
        entity = self.hass.state_of(entity_id)
        assert entity is not None, f"{entity_id} not published"
        return entity.raw

    def attrs(self, entity_id: str):
        entity = self.hass.state_of(entity_id)
        assert entity is not None, f"{entity_id} not published"
        return entity.attributes


def seed_month(world: World, statistic_id: str, per_hour: float, unit: str = "kWh") -> None:
    """Hourly rows from the month start up to the last complete hour before NOW."""
    hours = int((NOW.replace(minute=0) - MONTH_START) / timedelta(hours=1))
    world.model.add_hours(statistic_id, MONTH_START, [per_hour] * hours, unit=unit)


@pytest.mark.parametrize(("count", "month_pages"), [(1, 1), (10, 1), (500, 5)])
async def test_statistics_requests_per_cycle_do_not_grow_with_meters(count, month_pages):
    world = World()
    world.arm()
    first = MONTH_START - timedelta(days=3)
    hours = int((NOW.replace(minute=0) - first) / timedelta(hours=1))
    for i in range(count):
        world.model.add_hours(f"sensor.m{i}", first, [1.0] * hours)

    runner = await world.runner(config(meters_of(count)))
    per_cycle = [len(world.stat_commands())]
    for _ in range(2):
        await world.hass.advance(300)
        per_cycle.append(len(world.stat_commands()) - sum(per_cycle))
    await world.hass.fire_event("gridwatch_energy_tally_refresh", {})
    per_cycle.append(len(world.stat_commands()) - sum(per_cycle))

    # Cold: today + the month hour by hour, in pages whose answers fit the
    # budget even if every meter had every hour (~100 meters of 15 days a
    # page); then today only (the month's complete days are kept); the
    # refresh event reads the month again.
    assert per_cycle == [1 + month_pages, 1, 1, 1 + month_pages]
    assert month_pages <= MAX_PAGES_PER_CYCLE
    periods = [c["period"] for c in world.stat_commands()]
    assert set(periods) == {"hour"}
    today = [c for c in world.stat_commands() if c["types"] == ["sum", "state"]]
    for command in today:
        assert len(command["statistic_ids"]) == count
    # Every meter got its values from those few requests.
    assert world.state(f"sensor.m{count - 1}_energy_today") == "10.000"
    month = 14 * 24 + 10  # 1 kWh an hour since 1 June 00:00 local
    assert world.state("sensor.energy_tally_import_this_month") == f"{month * count:.3f}"
    await runner.stop()


async def test_meters_past_the_pages_of_one_cycle_are_stale_with_the_reason_until_read(
    monkeypatch,
):
    # 250 meters of 15 days are 3 pages; one page a cycle here.
    monkeypatch.setattr("gridwatch.energy.runner.MAX_PAGES_PER_CYCLE", 1)
    world = World()
    world.arm()
    first = MONTH_START - timedelta(days=3)
    hours = int((NOW.replace(minute=0) - first) / timedelta(hours=1))
    for i in range(250):
        world.model.add_hours(f"sensor.m{i}", first, [1.0] * hours)
    runner = await world.runner(config(meters_of(250)))
    month = f"{14 * 24 + 10:.3f}"

    states = [world.state(f"sensor.m{i}_energy_this_month") for i in range(250)]
    stale = [world.attrs(f"sensor.m{i}_energy_this_month") for i in range(250)]
    read = [i for i, s in enumerate(states) if s == month]
    assert 0 < len(read) < 250
    for i in set(range(250)) - set(read):
        assert states[i] == "unknown"
        assert stale[i]["stale"] is True
        assert "next cycle" in stale[i]["stale_reason"]
    # The total is unknown, not short: it names the meters still missing.
    total = "sensor.energy_tally_import_this_month"
    assert world.state(total) == "unknown"
    assert world.attrs(total)["stale"] is True
    assert len(world.attrs(total)["missing_meters"]) == 250 - len(read)

    for _ in range(2):
        await world.hass.advance(300)
    for i in range(250):
        assert world.state(f"sensor.m{i}_energy_this_month") == month
        assert world.attrs(f"sensor.m{i}_energy_this_month")["stale"] is False
    assert world.state(total) == f"{250 * (14 * 24 + 10):.3f}"
    assert world.attrs(total)["stale"] is False
    await runner.stop()


async def test_publishes_meters_totals_health_and_last_update():
    world = World()
    world.arm()
    seed_month(world, "sensor.grid_in", 0.5)
    seed_month(world, "sensor.pv_wh", 2000.0, unit="Wh")
    cfg = config(
        [
            {"statistic_id": "sensor.grid_in", "name": "Grid in", "role": "import"},
            {"statistic_id": "sensor.pv_wh", "name": "PV", "role": "pv"},
            {"statistic_id": "sensor.brand_new", "name": "New meter", "role": "pv"},
        ]
    )

    runner = await world.runner(cfg)

    assert world.state("sensor.grid_in_energy_today") == "5.000"
    assert world.state("sensor.grid_in_energy_this_month") == "173.000"
    assert world.state("sensor.pv_energy_today") == "20.000"  # Wh converted
    assert world.state("sensor.new_meter_energy_today") == "unknown"
    assert world.state("sensor.energy_tally_import_today") == "5.000"
    assert world.state("sensor.energy_tally_pv_today") == "unknown"  # a pv meter is unknown
    attrs = world.attrs("sensor.grid_in_energy_today")
    assert attrs["device_class"] == "energy"
    assert attrs["state_class"] == "total"
    assert attrs["unit_of_measurement"] == "kWh"
    assert attrs["last_reset"] == "2026-06-15T00:00:00+02:00"
    assert (
        world.attrs("sensor.grid_in_energy_this_month")["last_reset"] == "2026-06-01T00:00:00+02:00"
    )
    assert attrs["stale"] is False
    assert world.state("sensor.energy_tally_health") == "ok"
    assert world.attrs("sensor.energy_tally_health")["statistics_requests_per_cycle"] == 1
    assert world.attrs("sensor.energy_tally_health")["statistics_requests_max"] == 13
    assert datetime.fromisoformat(world.state("sensor.energy_tally_last_update") or "") == NOW
    await runner.stop()


async def test_live_state_adds_the_partial_hour():
    world = World()
    world.arm()
    world.model.add_hours(
        "sensor.grid_in", NOW.replace(minute=0) - timedelta(hours=2), [1.0, 1.0], start_state=98
    )
    world.hass.seed("sensor.grid_in", "100400", {"unit_of_measurement": "Wh"})

    runner = await world.runner(config([{"statistic_id": "sensor.grid_in", "name": "Grid in"}]))

    assert world.state("sensor.grid_in_energy_today") == "2.400"
    assert world.attrs("sensor.grid_in_energy_today")["partial_hour_kwh"] == pytest.approx(0.4)
    await runner.stop()


async def test_failures_keep_stale_values_then_error_and_notice_then_resolve(caplog):
    caplog.set_level(logging.WARNING, logger=LOG.name)
    world = World()
    world.hass.script_websocket("get_config", {"time_zone": "Europe/Berlin"})
    world.hass.script_websocket(METADATA_COMMAND, *([world.metadata] * 5))
    seed_month(world, "sensor.grid_in", 1.0)
    # After the first cycle only the today request is sent: the month's
    # complete days are kept (failures of the today request do not drop them).
    world.hass.script_websocket(
        COMMAND_TYPE,
        world.respond,
        world.respond,  # start: good (today + month)
        Fail("unknown_error: database is locked"),
        TimeOut(),
        {"sensor.grid_in": "not rows"},  # answered, but malformed
        world.respond,  # recovery: today
    )
    runner = await world.runner(
        config([{"statistic_id": "sensor.grid_in", "name": "Grid in", "role": "export"}])
    )
    assert world.state("sensor.grid_in_energy_today") == "10.000"

    await world.hass.advance(300)
    assert world.state("sensor.grid_in_energy_today") == "10.000"
    assert world.attrs("sensor.grid_in_energy_today")["stale"] is True
    assert world.attrs("sensor.energy_tally_export_today")["stale"] is True
    assert world.state("sensor.energy_tally_health") == "stale"
    assert world.attrs("sensor.energy_tally_health")["consecutive_failures"] == 1
    assert "database is locked" in world.attrs("sensor.energy_tally_health")["last_error"]
    assert world.hass.events_of(NOTICE_EVENT) == []

    await world.hass.advance(300)  # times out
    assert world.hass.events_of(NOTICE_EVENT) == []
    await world.hass.advance(300)  # malformed: third failure in a row
    (raised,) = world.hass.events_of(NOTICE_EVENT)
    assert raised["action"] == "raise"
    assert raised["notice_id"] == "energy_tally_statistics_unavailable"
    assert any("recorder running" in step for step in raised["steps"])
    assert "3 statistics queries in a row failed" in raised["message"]
    assert world.state("sensor.energy_tally_health") == "error"
    assert world.state("sensor.grid_in_energy_today") == "10.000"
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING, logging.ERROR]

    await world.hass.advance(300)  # recovers
    assert [e["action"] for e in world.hass.events_of(NOTICE_EVENT)] == ["raise", "resolve"]
    assert world.state("sensor.energy_tally_health") == "ok"
    assert world.attrs("sensor.grid_in_energy_today")["stale"] is False
    # 20 minutes later the hour 10:00-11:00 local is complete.
    assert world.state("sensor.grid_in_energy_today") == "10.000"
    await runner.stop()


async def test_failure_before_any_success_publishes_health_only():
    world = World()
    world.hass.script_websocket(COMMAND_TYPE, Fail("recorder not running"))

    runner = await world.runner(config([{"statistic_id": "sensor.grid_in", "name": "Grid in"}]))

    assert world.state("sensor.energy_tally_health") == "stale"
    assert world.state("sensor.energy_tally_last_update") == "unknown"
    assert world.hass.state_of("sensor.grid_in_energy_today") is None
    await runner.stop()


async def test_removed_or_renamed_meter_is_marked_unavailable_with_the_reason():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    seed_month(world, "sensor.b", 1.0)
    first = await world.runner(
        config(
            [
                {"statistic_id": "sensor.a", "name": "A", "role": "import"},
                {"statistic_id": "sensor.b", "name": "B", "role": "export"},
            ]
        )
    )
    await first.stop()  # AppDaemon restarts the app when apps.yaml changes
    assert world.state("sensor.b_energy_this_month") == "346.000"

    # B renamed to "B2"; no meter has the export role any more.
    second = await world.runner(
        config(
            [
                {"statistic_id": "sensor.a", "name": "A", "role": "import"},
                {"statistic_id": "sensor.b", "name": "B2"},
            ]
        )
    )
    world.model.add_hours("sensor.a", NOW.replace(minute=0), [5.0])
    await world.hass.advance(3600)

    for entity_id in (
        "sensor.b_energy_today",
        "sensor.b_energy_this_month",
        "sensor.energy_tally_export_today",
        "sensor.energy_tally_export_this_month",
    ):
        assert world.state(entity_id) == "unavailable", entity_id
        assert "no longer configured" in world.attrs(entity_id)["reason"]
    assert world.state("sensor.b2_energy_this_month") == "346.000"
    assert world.state("sensor.a_energy_today") == "15.000"
    assert world.attrs("sensor.energy_tally_meters")["meter_slugs"] == ["a", "b2"]
    await second.stop()


async def test_a_first_start_retires_nothing():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    assert not [w for w in world.hass.entity_writes if w[1] == "unavailable"]
    await runner.stop()


async def test_unchanged_values_are_not_rewritten():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    writes = len(world.hass.entity_writes)

    await world.hass.fire_event("gridwatch_energy_tally_refresh", {})

    assert len(world.stat_commands()) == 4  # two cold cycles: today + the month
    assert len(world.hass.entity_writes) == writes
    await runner.stop()


async def test_ha_restart_runs_a_cycle_and_stop_cancels_everything():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}], interval_s=60))

    await world.hass.simulate_restart()
    assert len(world.stat_commands()) == 4  # two cold cycles: today + the month
    assert world.state("sensor.a_energy_today") == "10.000"

    await runner.stop()
    await world.hass.advance(600)
    await world.hass.fire_event("gridwatch_energy_tally_refresh", {})
    assert len(world.stat_commands()) == 4
    assert world.hass.pending_timers == 0


class GatedHass(FakeHass):
    """Holds every websocket command until the test opens the gate."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def websocket_command(self, command, *, timeout_s=15.0):
        self.waiting.set()
        async with asyncio.timeout(2):
            await self.gate.wait()
        return await super().websocket_command(command, timeout_s=timeout_s)


async def test_triggers_during_a_running_cycle_coalesce_into_one_more():
    world = World()
    world.hass = GatedHass(FakeClock(wall=NOW))
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    runner = TallyRunner(
        config([{"statistic_id": "sensor.a", "name": "A"}]),
        world.hass,
        NoticeClient(world.hass, "energy_tally"),
        "energy_tally",
        LOG,
    )
    cycle = asyncio.create_task(runner.run_cycle())
    async with asyncio.timeout(2):
        await world.hass.waiting.wait()

    # Both return at once: a cycle is running; together they ask for one more.
    await runner.run_cycle()
    await runner.run_cycle()
    world.hass.gate.set()
    async with asyncio.timeout(2):
        await cycle

    # The running cycle (today + month) + one rerun (today only: the month
    # was read this hour).
    assert len(world.stat_commands()) == 3
    assert world.state("sensor.a_energy_today") == "10.000"


async def test_the_appdaemon_app_runs_cycles_and_stops_them():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    args = {"meters": [{"statistic_id": "sensor.a", "name": "A"}], "time_zone": "Europe/Berlin"}
    app = make_app(EnergyTally, args, world.hass, name="energy_tally")

    await app.initialize()
    assert world.state("sensor.a_energy_today") == "10.000"
    await app.terminate()
    await world.hass.advance(900)

    assert len(world.stat_commands()) == 2  # one cold cycle: today + the month
    assert world.hass.pending_timers == 0


async def test_the_app_refuses_a_bad_config_and_says_which_key():
    world = World()
    app = make_app(EnergyTally, {"meters": [], "interval_s": 1}, world.hass, name="energy_tally")

    await app.initialize()

    assert world.stat_commands() == []
    (notification,) = world.hass.notifications.values()
    assert "meters" in notification["message"]
    assert "interval_s" in notification["message"]
    await app.terminate()


async def test_a_refused_start_marks_the_last_runs_entities_unavailable_and_stale():
    world = World()
    world.arm()
    seed_month(world, "sensor.grid_in", 1.0)
    world.hass.seed("sensor.grid_in", "1000", {"unit_of_measurement": "kWh"})
    meters = [{"statistic_id": "sensor.grid_in", "name": "Grid in", "role": "import"}]
    args = {"meters": meters, "time_zone": "Europe/Berlin"}
    app = make_app(EnergyTally, args, world.hass, name="energy_tally")
    await app.initialize()
    await app.terminate()
    assert world.state("sensor.energy_tally_health") == "ok"

    def states(_command):
        return [
            {"entity_id": e, "state": st.raw, "attributes": dict(st.attributes)}
            for e, st in world.hass.entities.items()
        ]

    world.hass.script_websocket("get_states", states)
    refused = make_app(EnergyTally, {**args, "interval_s": 1}, world.hass, name="energy_tally")
    await refused.initialize()

    # Nothing it published reads as current: its health, its totals and the
    # meter entities named after the meters (listed by sensor.<app>_meters).
    for entity_id in (
        "sensor.energy_tally_health",
        "sensor.energy_tally_import_this_month",
        "sensor.grid_in_energy_today",
        "sensor.grid_in_energy_this_month",
    ):
        assert world.state(entity_id) == "unavailable", entity_id
        attrs = world.attrs(entity_id)
        assert attrs["stale"] is True
        assert "interval_s" in attrs["reason"]
    # The meters it measured, not the app's, are untouched.
    assert world.state("sensor.grid_in") == "1000"
    await refused.terminate()


# --- the month's complete days are kept between cycles ----------------------

ROLLOVER_METERS = [
    {"statistic_id": "sensor.grid_in", "name": "Grid in", "role": "import"},
    {"statistic_id": "sensor.pv_wh", "name": "PV", "role": "pv", "unit": "Wh"},
    {"statistic_id": "sensor.swapped", "name": "Swapped", "role": "import"},
    {"statistic_id": "sensor.brand_new", "name": "New meter", "role": "pv"},
]


def seed_rollover(world: World, around: datetime) -> None:
    """Hourly data from 40 days before ``around`` to 2 days after, hidden until
    compiled; the swapped meter drops on an earlier day of the month."""
    first = around - timedelta(days=40)
    hours = 42 * 24
    world.model.add_hours("sensor.grid_in", first, [0.5 + (h % 7) * 0.1 for h in range(hours)])
    world.model.add_hours(
        "sensor.pv_wh", first, [(h % 24) * 100.0 for h in range(hours)], unit="Wh"
    )
    swapped = [1.0] * hours
    swapped[hours // 2 - 30] = -500.0
    world.model.add_hours("sensor.swapped", first, swapped)
    world.hass.seed("sensor.grid_in", "100000", {"unit_of_measurement": "kWh"})
    world.compile_delay = timedelta(minutes=2)


@pytest.mark.parametrize(
    ("first_cycle", "sent"),
    [
        # Cycles every 5 minutes from 23:50 local: cold (today + the month hour
        # by hour), then today + the probe of the meter without rows (every
        # cycle), at local midnight (a new day and a new UTC hour) also the
        # days since the kept ones, and once more the recheck at 15 minutes
        # past midnight (SETTLE_GRACE), when yesterday's last hour is compiled.
        pytest.param("2026-06-14T21:50", [2, 2, 3, 2, 2, 3, 2, 2], id="ordinary-midnight"),
        pytest.param("2026-03-28T22:50", [2, 2, 3, 2, 2, 3, 2, 2], id="into-23h-day"),
        pytest.param("2026-03-29T21:50", [2, 2, 3, 2, 2, 3, 2, 2], id="end-of-23h-day"),
        pytest.param("2026-10-24T21:50", [2, 2, 3, 2, 2, 3, 2, 2], id="into-25h-day"),
        pytest.param("2026-10-25T22:50", [2, 2, 3, 2, 2, 3, 2, 2], id="end-of-25h-day"),
        # A new month reads every meter's month (no probe: all just read); on
        # the 1st the settled recheck reads the opening's lead again (a month
        # read, so no probe either).
        pytest.param("2026-10-31T22:50", [2, 2, 2, 2, 2, 2, 2, 2], id="month-rollover"),
    ],
)
async def test_month_request_only_when_the_kept_days_do_not_serve(first_cycle, sent):
    start = datetime.fromisoformat(first_cycle).replace(tzinfo=UTC)
    world = World()
    world.hass = FakeHass(FakeClock(wall=start))
    world.arm(cycles=len(sent))
    seed_rollover(world, start)
    cfg = config(ROLLOVER_METERS)

    runner = await world.runner(cfg)
    counts = [len(world.stat_commands())]
    tallies = [runner.state.last_good]
    expected = [world.uncached(cfg)]
    for _ in sent[1:]:
        before = len(world.stat_commands())
        await world.hass.advance(300)
        counts.append(world.sent_per_cycle(before))
        tallies.append(runner.state.last_good)
        expected.append(world.uncached(cfg))

    assert counts == sent
    # Every cycle computed exactly what sending both requests computes.
    assert tallies == expected
    assert world.state("sensor.new_meter_energy_this_month") == "unknown"
    assert world.attrs("sensor.energy_tally_health")["statistics_requests_last_cycle"] == 2
    await runner.stop()


async def test_refresh_event_and_ha_start_refetch_the_month():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    cfg = config([{"statistic_id": "sensor.a", "name": "A"}])
    runner = await world.runner(cfg)

    before = len(world.stat_commands())
    # Statistics of an earlier day imported late: the refresh event picks them up.
    world.model.stats["sensor.a"].hours[MONTH_START] = (100.0, 100.0)
    await world.hass.fire_event("gridwatch_energy_tally_refresh", {})
    assert world.sent_per_cycle(before) == 2  # today + the month
    assert runner.state.last_good == world.uncached(cfg)

    # HA started: refetch, and keep refetching while it may still compile
    # hours it missed.
    before = len(world.stat_commands())
    await world.hass.simulate_restart()
    counts = [world.sent_per_cycle(before)]
    for _ in range(5):
        before = len(world.stat_commands())
        await world.hass.advance(300)
        counts.append(world.sent_per_cycle(before))
    # The month at the start, and the recheck of the last complete days once
    # SETTLE_GRACE has passed since the start.
    assert timedelta(minutes=15) == SETTLE_GRACE
    assert counts == [2, 1, 1, 2, 1, 1]
    await runner.stop()


async def test_failed_month_request_leaves_the_cache_cold():
    world = World()
    seed_month(world, "sensor.a", 1.0)
    world.hass.script_websocket(
        COMMAND_TYPE,
        world.respond,
        Fail("unknown_error: database is locked"),  # month of the first cycle
        world.respond,
        world.respond,  # next cycle: both again
        world.respond,  # then today only (same hour)
    )
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    assert world.state("sensor.energy_tally_health") == "stale"

    await world.hass.advance(300)
    assert world.state("sensor.energy_tally_health") == "ok"
    assert world.state("sensor.a_energy_this_month") == "346.000"
    await world.hass.advance(300)

    months = [c for c in world.stat_commands() if c["types"] == ["sum"]]
    assert len(world.stat_commands()) == 5
    # The month failed, so it was asked again, not taken as read.
    assert [c["start_time"] for c in months] == ["2026-05-29T22:00:00+00:00"] * 2
    assert world.state("sensor.energy_tally_health") == "ok"
    await runner.stop()


# --- the cases on the run loop ------------------------------------------


async def test_a_time_zone_other_than_has_is_refused_with_one_config_error():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    args = {
        "meters": [{"statistic_id": "sensor.a", "name": "A"}],
        "time_zone": "America/New_York",
    }
    app = make_app(EnergyTally, args, world.hass, name="energy_tally")

    await app.initialize()

    assert world.stat_commands() == []
    assert world.hass.pending_timers == 0
    (notification,) = world.hass.notifications.values()
    assert "time_zone" in notification["message"]
    assert "Europe/Berlin" in notification["message"]
    await app.terminate()


async def test_days_are_counted_in_has_zone_when_no_time_zone_is_given():
    world = World()
    # HA runs in New York (answered before arm()'s Berlin); AppDaemon's
    # clock (the fake's) says UTC.
    world.hass.script_websocket("get_config", {"time_zone": "America/New_York"})
    world.arm()
    world.compile_delay = timedelta(minutes=1)
    world.model = RecorderModel(ZoneInfo("America/New_York"))
    world.model.add_hours("sensor.a", datetime(2026, 6, 13, tzinfo=UTC), [1.0] * 56)
    cfg = load_config(
        EnergyTallySchema,
        {"name": "energy_tally", "meters": [{"statistic_id": "sensor.a", "name": "A"}]},
        into=EnergyTallyConfig,
    )

    runner = await world.runner(cfg)

    # 04:30 New York time on 15 June: today began at 04:00 UTC.
    assert world.state("sensor.a_energy_today") == "4.000"
    assert world.attrs("sensor.a_energy_today")["last_reset"] == "2026-06-15T00:00:00-04:00"
    await runner.stop()


async def test_a_statistic_without_sum_is_a_visible_problem_not_a_zero():
    world = World()
    world.arm()
    seed_month(world, "sensor.a", 1.0)
    # A power sensor: rows with a mean only; asked for sums, the recorder
    # answers rows whose sum is empty.
    seed_month(world, "sensor.power", 1.0)
    for hour in list(world.model.stats["sensor.power"].hours):
        world.model.blank("sensor.power", hour)
    cfg = config(
        [
            {"statistic_id": "sensor.a", "name": "A", "role": "import"},
            {"statistic_id": "sensor.power", "name": "Power", "role": "import"},
        ]
    )

    runner = await world.runner(cfg)

    assert world.state("sensor.power_energy_this_month") == "unknown"
    assert "no sum" in world.attrs("sensor.power_energy_this_month")["problem"]
    assert world.attrs("sensor.a_energy_this_month")["problem"] is None
    assert world.state("sensor.energy_tally_import_this_month") == "unknown"
    assert world.attrs("sensor.energy_tally_import_this_month")["missing_meters"] == ["Power"]
    await runner.stop()


async def test_an_empty_sum_before_midnight_never_publishes_the_lifetime():
    # The case: an empty sum two hours before midnight and no row for
    # the last hour; HA's change would give 6503.227 kWh for today.
    world = World()
    world.arm()
    today_start = datetime(2026, 6, 14, 22, tzinfo=UTC)
    world.model.add_hours("sensor.a", today_start - timedelta(hours=30), [0.5] * 29, start_sum=6500)
    world.model.blank("sensor.a", today_start - timedelta(hours=2))
    # No row for 23:00-00:00 local; the meter used 0.5 kWh in it.
    world.model.add_hours("sensor.a", today_start, [0.3] * 10, start_sum=6515.0)
    # The cold read and the recheck both happen before "now" is looked at.
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    await world.hass.advance(300)

    # Bridged from 22:00 local (the last sum): the empty hour 22:00-23:00 and
    # the missing 23:00-00:00 land on today's first hour, as in HA's own
    # windows; never the lifetime.
    assert float(world.state("sensor.a_energy_today") or "nan") == pytest.approx(1.0 + 3.0)
    await runner.stop()


async def test_a_reset_is_not_subtracted_when_its_day_completes():
    world = World()
    world.hass = FakeHass(FakeClock(wall=datetime(2026, 6, 14, 21, 40, tzinfo=UTC)))
    world.arm(cycles=10)
    world.compile_delay = timedelta(minutes=2)
    changes = [1.0] * (24 * 13 + 10) + [-61.0] + [1.0] * 40
    world.model.add_hours("sensor.a", MONTH_START, changes)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    await world.hass.advance(300)
    before = float(world.state("sensor.a_energy_this_month") or "nan")

    await world.hass.advance(1800)  # past midnight and the settle time

    after = float(world.state("sensor.a_energy_this_month") or "nan")
    # The month goes on growing (1 kWh an hour); the drop stays a reset.
    assert after >= before
    assert after == pytest.approx(24 * 14 - 1.0)
    assert world.attrs("sensor.a_energy_this_month")["resets"] == 1
    await runner.stop()


async def test_late_statistics_reach_the_month_within_the_hour():
    world = World()
    world.arm(cycles=30)
    seed_month(world, "sensor.a", 1.0)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    await world.hass.advance(300)
    assert world.state("sensor.a_energy_this_month") == "346.000"
    # A utility's import lands late: yesterday 10:00-11:00 local held 5 kWh
    # more (the sums after it move up with it).
    stat = world.model.stats["sensor.a"]
    late = datetime(2026, 6, 14, 8, tzinfo=UTC)
    for hour, (total, state) in list(stat.hours.items()):
        if hour >= late and total is not None and state is not None:
            stat.hours[hour] = (total + 5.0, state + 5.0)

    await world.hass.advance(3600)

    assert world.state("sensor.a_energy_this_month") == "351.000"
    await runner.stop()


async def test_history_imported_after_the_first_cycle_reaches_the_month():
    world = World()
    world.arm(cycles=30)
    seed_month(world, "sensor.a", 1.0)
    today_start = datetime(2026, 6, 14, 22, tzinfo=UTC)
    world.model.add_hours("sensor.new", today_start, [1.0] * 10)
    world.model.blank("sensor.new", today_start - timedelta(hours=1))  # no sum before today
    cfg = config(
        [{"statistic_id": "sensor.a", "name": "A"}, {"statistic_id": "sensor.new", "name": "New"}]
    )
    runner = await world.runner(cfg)
    assert world.state("sensor.new_energy_this_month") == "9.000"

    # The month's history is imported (sums continue into today's).
    world.model.stats["sensor.new"].hours.clear()
    world.model.add_hours(
        "sensor.new", MONTH_START - timedelta(hours=1), [0.0] + [2.0] * (24 * 14) + [1.0] * 10
    )
    await world.hass.advance(300)

    # The next cycle's probe sees days before the first row read, and the
    # same cycle reads the meter's month.
    assert world.state("sensor.new_energy_this_month") == f"{2.0 * 24 * 14 + 10:.3f}"
    assert world.attrs("sensor.new_energy_this_month")["stale"] is False
    await runner.stop()


async def test_a_meter_new_this_month_counts_its_first_day_within_the_hour():
    world = World()
    world.arm(cycles=30)
    seed_month(world, "sensor.a", 1.0)
    # Its first compiled hour (sum 0) is 5 June 09:00 local, before the days
    # the recheck covers; the day row of 5 June only says where the day ended.
    first = datetime(2026, 6, 5, 7, tzinfo=UTC)
    hours = int((NOW.replace(minute=0) - first) / timedelta(hours=1))
    world.model.add_hours("sensor.new", first, [2.0] * hours)
    cfg = config(
        [{"statistic_id": "sensor.a", "name": "A"}, {"statistic_id": "sensor.new", "name": "New"}]
    )
    runner = await world.runner(cfg)
    # Every hour after its first one, 5 June included, from the cold read on
    # (it reads hours, not day rows), and so after the next full reads.
    assert world.state("sensor.new_energy_this_month") == f"{2.0 * hours:.3f}"
    for _ in range(3):
        await world.hass.fire_event("gridwatch_energy_tally_refresh", {})
        await world.hass.advance(1200)
        assert world.state("sensor.new_energy_this_month") == f"{2.0 * hours:.3f}"
    await runner.stop()


async def test_a_unit_changed_within_the_month_is_a_warning_and_a_problem(caplog):
    caplog.set_level(logging.WARNING, logger=LOG.name)
    world = World()
    world.arm(cycles=10)
    seed_month(world, "sensor.a", 1.0)
    runner = await world.runner(config([{"statistic_id": "sensor.a", "name": "A"}]))
    assert world.attrs("sensor.a_energy_this_month")["problem"] is None

    # Re-imported in Wh where it was kWh: HA now reads every old row as Wh.
    world.model.stats["sensor.a"].unit = "Wh"
    await world.hass.advance(3600)

    problem = world.attrs("sensor.a_energy_this_month")["problem"]
    assert "changed from kWh to Wh" in problem
    assert "refresh event" in problem
    assert [r for r in caplog.records if "changed from kWh to Wh" in r.getMessage()]
    # The figure is still published (what HA's rows say), with the warning.
    assert world.state("sensor.a_energy_this_month") != "unknown"
    await runner.stop()


async def test_has_zone_is_read_again_when_ha_starts_if_it_was_not_known():
    world = World()
    world.hass.script_websocket("get_config", Fail("not ready"), {"time_zone": "America/New_York"})
    world.arm()
    world.model = RecorderModel(ZoneInfo("America/New_York"))
    world.model.add_hours("sensor.a", datetime(2026, 6, 13, tzinfo=UTC), [1.0] * 56)
    cfg = load_config(
        EnergyTallySchema,
        {"name": "energy_tally", "meters": [{"statistic_id": "sensor.a", "name": "A"}]},
        into=EnergyTallyConfig,
    )
    runner = await world.runner(cfg)
    # AppDaemon's zone (the fake clock's UTC) until HA answers.
    assert world.attrs("sensor.a_energy_today")["last_reset"] == "2026-06-15T00:00:00+00:00"

    await world.hass.simulate_restart()

    assert world.attrs("sensor.a_energy_today")["last_reset"] == "2026-06-15T00:00:00-04:00"
    await runner.stop()
