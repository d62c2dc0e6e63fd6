"""The demo orchestrator: start every part, print the URLs, stop them all.

Order of start: mosquitto, the controller (device server), Home Assistant,
the site simulator, AppDaemon with the four apps. Each started part is pushed
on one exit stack, so whatever happens (a part that fails to start, Ctrl-C,
SIGTERM, the end of ``--duration``) everything already started is stopped, in
reverse order. Blocking starts (processes waited for with the e2e harness)
run in worker threads; a stop request is honoured between steps.

While the demo runs it checks every second that HA and AppDaemon still run:
HA's own restart service (exit code 100) gets HA started again, as a real
install's supervisor does; any other exit stops the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import aiohttp
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

from demo import config_files
from demo.config_files import Addresses
from demo.ha_mqtt import configure_mqtt
from demo.ha_rest import HaRest, HaRestError
from demo.history import GAP_DAYS_AGO, HISTORY_DAYS, RESET_DAYS_AGO
from demo.history_import import import_history
from demo.sandbox import (
    DEMO_DOMAINS,
    MQTT_DOMAINS,
    DemoHaConfig,
    finish_onboarding,
    onboarding_done,
)
from demo.sim_clock import SimClock, origin_at_hour
from demo.simulator import INITIAL_SITE, Simulator
from demo.site_model import SiteParams
from demo.site_store import load_site, save_site
from demo.story import Storyteller
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.e2e.appdaemon_proc import AppDaemon, AppDaemonConfig
from tests.e2e.ha import OWNER_PASSWORD, OWNER_USERNAME, HomeAssistant
from tests.e2e.ha_client import HaClient, HaCommandError
from tests.e2e.ha_config import TIME_ZONE
from tests.e2e.ha_install import ensure_installed, install_for
from tests.e2e.ha_matrix import OLDEST_HA
from tests.e2e.process import ManagedProcess, free_port, tail
from tests.support.device_server import DeviceServer
from tests.support.mosquitto import Mosquitto

_LOGGER = logging.getLogger("demo")

DEFAULT_STATE_DIR = config_files.REPO / ".gridwatch" / "demo"
MQTT_USER = "gridwatch"
CONTROLLER_USER = "installer"
# Entities that show the apps are up: the notifier's count and one link's
# connectivity. Waited for after AppDaemon reports its apps initialized.
READY_ENTITIES = ("sensor.notifier_active_notices", "binary_sensor.gateway_connected")
APPS_READY_TIMEOUT_S = 60.0
STATUS_INTERVAL_S = 60.0
# How often the demo looks whether HA and AppDaemon still run.
PROCESS_CHECK_S = 1.0
# HA's exit code when its restart service was called (homeassistant.const).
HA_RESTART_EXIT_CODE = 100
# HADashboard's folder of extra scripts, in AppDaemon's config dir.
CUSTOM_JAVASCRIPT = "custom_javascript"
# The simulator's counters between runs (demo.site_store).
SITE_FILE = "site.json"


class StartError(RuntimeError):
    """A part of the stack could not start; the message says which and why."""


class Stopped(Exception):
    """A stop was requested while the stack was starting."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``python -m demo`` was asked for.

    Attributes:
        duration_s: run this long, then stop (None: until Ctrl-C).
        speed: simulated seconds per real second.
        start_hour: simulated time of day at start (local, HA's zone).
        state_dir: where HA's config/database and AppDaemon's config live.
        frontend: load HA's web UI.
        apps_yaml: the apps.yaml AppDaemon runs (default: the repository's).
        check_apps: refuse to start when apps.yaml is invalid (False: warn
            and start anyway; each bad app then refuses to run by itself).
        entities: the apps' entity backend, ``rest`` or ``mqtt`` (MQTT
            discovery through the demo's broker; HA's MQTT integration is
            set up for it).
        ha_version: the Home Assistant version to run (one of the tested).
        story: play the scripted story (demo.story) once the demo is up.
    """

    duration_s: float | None = None
    speed: float = 1.0
    start_hour: float = 10.0
    state_dir: Path = DEFAULT_STATE_DIR
    frontend: bool = True
    apps_yaml: Path = config_files.DEMO_APPS_YAML
    check_apps: bool = True
    entities: str = "rest"
    ha_version: str = OLDEST_HA
    story: bool = True


@dataclass
class Stack:
    """The running parts (for the URLs and the status lines)."""

    options: DemoOptions
    out: TextIO
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ha: HomeAssistant | None = None
    appdaemon: DemoAppDaemon | None = None
    simulator: Simulator | None = None
    broker: Mosquitto | None = None
    starting: bool = True

    def say(self, text: str) -> None:
        """A line for the person running the demo (stdout, flushed)."""
        print(text, file=self.out, flush=True)

    def request_stop(self, why: str) -> None:
        if not self.stop.is_set():
            self.say(f"==> {why}: stopping" + (" after the current step" if self.starting else ""))
        self.stop.set()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Run the demo until a signal or ``options.duration_s``.

    Returns:
        The exit code: 0 after a clean stop, 1 when a part failed to start.
    """
    stack = Stack(options, out)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.request_stop, signal.Signals(sig).name)
    try:
        async with contextlib.AsyncExitStack() as exits:
            try:
                await _start(stack, exits)
            except Stopped:
                stack.say("==> stopped before the demo was up")
                return 0
            except StartError as err:
                stack.say(f"==> the demo could not start: {err}")
                return 1
            stack.starting = False
            _print_urls(stack)
            if stack.options.story:
                _start_story(stack, exits)
            await _run_until_stopped(stack)
            stack.say("==> stopping every part of the demo")
        stack.say("==> stopped cleanly")
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start(stack: Stack, exits: contextlib.AsyncExitStack) -> None:
    opts = stack.options
    state = opts.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    mqtt_password = secrets.token_urlsafe(12)
    controller = DeviceServer(username=CONTROLLER_USER, password=secrets.token_urlsafe(12))

    stack.say(
        f"==> checking Home Assistant {opts.ha_version}'s venv "
        "(installs once; the first time takes minutes)"
    )
    install = install_for(opts.ha_version)
    mqtt_entities = opts.entities == "mqtt"
    domains = MQTT_DOMAINS if mqtt_entities else DEMO_DOMAINS
    await _step(stack, "installing Home Assistant", lambda: ensure_installed(install, domains))

    stack.say("==> starting mosquitto")
    broker_dir = state / "mosquitto"
    broker_dir.mkdir(exist_ok=True)
    broker = Mosquitto(broker_dir, users={MQTT_USER: mqtt_password})
    exits.push_async_callback(asyncio.to_thread, broker.stop)
    await _step(stack, "starting mosquitto", broker.start)
    stack.broker = broker

    stack.say("==> starting the controller (HTTP login + WebSocket)")
    try:
        await controller.start()
    except OSError as err:
        raise StartError(f"the controller cannot listen: {err}") from err
    exits.push_async_callback(controller.stop)

    ha_config = DemoHaConfig(port=free_port(), frontend=opts.frontend, config_flows=mqtt_entities)
    ha_dir = state / "homeassistant"
    ha = HomeAssistant(install, ha_dir, ha_config)
    addresses = Addresses(
        ha_url=ha.url,
        mqtt_port=broker.port,
        mqtt_username=MQTT_USER,
        mqtt_password=mqtt_password,
        controller_url=controller.url,
        controller_username=controller.username,
        controller_password=controller.password,
    )
    secret_values = config_files.secrets(addresses)
    # Check apps.yaml before the slow part: a bad entry fails in a second,
    # naming every bad key, instead of after HA and AppDaemon booted.
    apps_yaml = config_files.with_entity_backend(
        opts.apps_yaml.resolve(), opts.entities, state / "apps.mqtt.yaml"
    )
    apps = config_files.load_apps_yaml(apps_yaml, secret_values)
    problems = await asyncio.to_thread(config_files.check_apps, apps)
    if problems and opts.check_apps:
        raise StartError(f"{apps_yaml} is invalid:\n" + "\n".join(problems))
    if problems:
        stack.say(f"==> warning: {apps_yaml} is invalid (starting anyway):\n" + "\n".join(problems))

    stack.say("==> starting Home Assistant")
    ha_config.write(ha_dir)  # always: the port is new each run
    if opts.frontend:
        finish_onboarding(ha_dir)
    exits.push_async_callback(asyncio.to_thread, ha.stop)
    await _step(stack, "starting Home Assistant", ha.start, lambda: ha.process.log_tail(40))
    if opts.frontend and not onboarding_done(ha_dir):
        stack.say("==> first run: finishing Home Assistant's onboarding (one restart)")
        await _step(stack, "stopping Home Assistant", ha.stop)
        finish_onboarding(ha_dir)
        await _step(stack, "starting Home Assistant", ha.start, lambda: ha.process.log_tail(40))
    stack.ha = ha
    if mqtt_entities:
        stack.say("==> adding Home Assistant's MQTT integration (the apps' entities go there)")
        await _setup_ha_mqtt(ha, addresses)

    await _import_history(stack, ha)

    stack.say("==> starting the site simulator")
    stack.simulator = await _start_simulator(stack, exits, ha, addresses, controller)

    stack.say("==> starting AppDaemon with the Gridwatch apps")
    appdaemon = DemoAppDaemon(
        state / "appdaemon",
        AppDaemonConfig(
            ha_url=ha.url,
            token=ha.token,
            dashboard_dir=config_files.DASHBOARD_DIR,
        ),
        secret_values,
        apps_yaml,
        http_password=secrets.token_urlsafe(9),
    )
    exits.push_async_callback(asyncio.to_thread, appdaemon.stop)
    await _step(
        stack,
        "starting AppDaemon",
        appdaemon.start,
        lambda: tail(appdaemon.log_path, 40) + "\n" + appdaemon.process.log_tail(20),
    )
    stack.appdaemon = appdaemon
    await _wait_entities(stack, ha)


def _start_story(stack: Stack, exits: contextlib.AsyncExitStack) -> None:
    """Play the story (demo.story) beside the running demo; stopped with it."""
    sim = stack.simulator
    assert sim is not None  # started before the story
    teller = Storyteller(sim.ha, sim, stack.say)
    story_stop = asyncio.Event()
    task = asyncio.create_task(teller.run(story_stop), name="demo-story")

    async def stop_story() -> None:
        story_stop.set()
        try:
            await asyncio.wait_for(task, 10.0)
        except Exception:
            _LOGGER.exception("the story did not stop cleanly")

    exits.push_async_callback(stop_story)


async def _import_history(stack: Stack, ha: HomeAssistant) -> None:
    """Give the meters their past before the simulator's first reading (see demo.history)."""
    counters = load_site(stack.options.state_dir.resolve() / SITE_FILE, INITIAL_SITE)
    began = time.monotonic()
    try:
        async with HaClient(ha.url, ha.token) as client:
            imported = await import_history(
                client, datetime.now(UTC), ZoneInfo(TIME_ZONE), counters
            )
    except (HaCommandError, aiohttp.ClientError, TimeoutError) as err:
        stack.say(
            f"==> warning: the meters' past was not imported ({err}); the energy tiles "
            "read unknown until HA compiles its first statistics"
        )
        return
    if imported is None:
        stack.say("==> the meters' past is in Home Assistant's recorder (from an earlier run)")
        return
    rows = sum(len(h.rows) for h in imported)
    stack.say(
        f"==> gave the meters {HISTORY_DAYS} days of past: {rows} hourly statistics rows "
        f"imported into Home Assistant's recorder in {time.monotonic() - began:.1f} s "
        f"(a gap {GAP_DAYS_AGO} days ago, a replaced grid import meter {RESET_DAYS_AGO} days ago)"
    )


async def _setup_ha_mqtt(ha: HomeAssistant, addresses: Addresses) -> None:
    rest = HaRest(ha.url, ha.token)
    try:
        await configure_mqtt(
            rest,
            "127.0.0.1",
            addresses.mqtt_port,
            addresses.mqtt_username,
            addresses.mqtt_password,
        )
    except HaRestError as err:
        raise StartError(f"setting up HA's MQTT integration failed: {err}") from err
    finally:
        await rest.close()


async def _step(
    stack: Stack,
    what: str,
    work: Callable[[], Any],
    log_tail: Callable[[], str] | None = None,
) -> None:
    """Run a blocking start in a worker thread; a failure becomes a StartError."""
    stack.check_stop()
    try:
        await asyncio.to_thread(work)
    except Exception as err:
        detail = f"\n--- log tail ---\n{log_tail()}" if log_tail is not None else ""
        raise StartError(f"{what} failed: {err}{detail}") from err
    stack.check_stop()


async def _start_simulator(
    stack: Stack,
    exits: contextlib.AsyncExitStack,
    ha: HomeAssistant,
    addresses: Addresses,
    controller: DeviceServer,
) -> Simulator:
    opts = stack.options
    rest = HaRest(ha.url, ha.token)
    exits.push_async_callback(rest.close)
    gateway = MqttLink(
        "demo-gateway",
        MqttSettings(
            host="127.0.0.1",
            port=addresses.mqtt_port,
            client_id="demo-gateway",
            username=addresses.mqtt_username,
            password=addresses.mqtt_password,
            keepalive_s=10,
            availability_topic="demo-gateway/status",
        ),
    )
    zone = ZoneInfo(TIME_ZONE)
    clock = SimClock(origin_at_hour(datetime.now(zone), opts.start_hour), opts.speed)
    site_file = opts.state_dir.resolve() / SITE_FILE
    simulator = Simulator(
        ha=rest,
        clock=clock,
        gateway=gateway,
        controller=controller,
        params=SiteParams(),
        site=load_site(site_file, INITIAL_SITE),
    )
    # One tick before the loop: it proves HA accepts the simulator's writes,
    # and the apps find readings in HA when they start.
    simulator.start_links()
    await asyncio.wait_for(simulator.tick(), 20.0)
    if simulator.health["HA sensors"].failing:
        raise StartError("Home Assistant refused the simulator's sensor writes (see above)")
    sim_stop = asyncio.Event()
    task = asyncio.create_task(simulator.run(sim_stop), name="demo-simulator")

    async def stop_simulator() -> None:
        sim_stop.set()
        try:
            await asyncio.wait_for(task, 20.0)
        except Exception:
            _LOGGER.exception("the simulator did not stop cleanly")
        save_site(site_file, simulator.site)

    exits.push_async_callback(stop_simulator)
    return simulator


class DemoAppDaemon(AppDaemon):
    """The harness's AppDaemon with the demo's own apps.yaml and secrets.

    The app dir gets a symlink to apps.yaml (the documented file runs
    as it is, and AppDaemon reloads an app when its entry is edited) and
    AppDaemon's config dir a secrets.yaml with the sandbox's addresses;
    AppDaemon finds it next to appdaemon.yaml.

    With ``http_password`` the panel, AppDaemon's API and admin ask for it
    (``http: password:``); the export guard's chart checks it itself
    (gridwatch.runtime.chart_route: AppDaemon 4.5.13 leaves ``/app/``
    routes open).
    """

    def __init__(
        self,
        config_dir: Path,
        config: AppDaemonConfig,
        secret_values: dict[str, Any],
        apps_yaml: Path = config_files.DEMO_APPS_YAML,
        http_password: str | None = None,
    ) -> None:
        super().__init__(config_dir, config)
        self.secret_values = secret_values
        self.apps_yaml = apps_yaml
        self.http_password = http_password
        # The repository on AppDaemon's import path: a BLE link of the demo
        # names its simulated device's backend as demo.ble_battery:BACKEND.
        self.process = ManagedProcess(
            self.process.name,
            self.process.argv,
            self.process.log_path,
            env={"PYTHONPATH": str(config_files.REPO)},
            cwd=config_dir,
        )

    def _appdaemon_yaml(self) -> dict[str, Any]:
        config = super()._appdaemon_yaml()
        if self.http_password is not None:
            config["http"]["password"] = self.http_password
        return config

    def write(self) -> None:
        super().write()
        os.chmod(self.config_dir / "appdaemon.yaml", 0o600)  # it holds the password
        # HADashboard loads custom_javascript/*.js from AppDaemon's config dir:
        # the panel's fix for 4.5.13's login cookie (dashboards/custom_javascript).
        custom_js = self.config_dir / CUSTOM_JAVASCRIPT
        if custom_js.is_symlink() or custom_js.exists():
            custom_js.unlink()
        custom_js.symlink_to(config_files.DASHBOARD_DIR / CUSTOM_JAVASCRIPT)
        apps_yaml = self.app_dir / "apps.yaml"
        apps_yaml.unlink(missing_ok=True)
        apps_yaml.symlink_to(self.apps_yaml)
        secrets_path = self.config_dir / "secrets.yaml"
        secrets_path.write_text(yaml.safe_dump(self.secret_values, sort_keys=False))
        os.chmod(secrets_path, 0o600)


async def _wait_entities(stack: Stack, ha: HomeAssistant) -> None:
    """Wait until the apps' first entities are in HA (warn, do not fail)."""
    timeout = aiohttp.ClientTimeout(total=5)
    deadline = time.monotonic() + APPS_READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=timeout, headers=ha.headers) as session:
        missing = list(READY_ENTITIES)
        while missing and time.monotonic() < deadline:
            stack.check_stop()
            still = []
            for entity_id in missing:
                try:
                    async with session.get(f"{ha.url}/api/states/{entity_id}") as resp:
                        if resp.status != 200:
                            still.append(entity_id)
                except (aiohttp.ClientError, TimeoutError):
                    still.append(entity_id)
            missing = still
            if missing:
                await asyncio.sleep(0.2)
    if missing:
        stack.say(f"==> warning: not in Home Assistant yet: {', '.join(missing)} (see the logs)")


def _print_urls(stack: Stack) -> None:
    ha, appdaemon = stack.ha, stack.appdaemon
    assert ha is not None  # started before the URLs are printed
    assert appdaemon is not None
    state = stack.options.state_dir.resolve()
    stack.say("")
    stack.say("Gridwatch demo is running.")
    stack.say(
        f"  Home Assistant:      {ha.url}   (user {OWNER_USERNAME}, password {OWNER_PASSWORD}; "
        f"version {ha.install.version})"
    )
    stack.say(f"  Gridwatch panel:     {appdaemon.url}/{config_files.DASHBOARD_NAME}")
    stack.say(f"  AppDaemon admin:     {appdaemon.url}/")
    if appdaemon.http_password is not None:
        stack.say(
            f"  AppDaemon password:  {appdaemon.http_password}   (the panel asks for it once "
            "per browser: whoever can open the panel can start a discharge)"
        )
    if stack.broker is not None:
        stack.say(f"  MQTT broker:         mqtt://127.0.0.1:{stack.broker.port}")
    stack.say(f"  Logs:                {state}")
    duration = stack.options.duration_s
    stack.say(f"Running for {duration:g} s." if duration is not None else "Press Ctrl-C to stop.")
    stack.say("")


async def _run_until_stopped(stack: Stack) -> None:
    """Wait for a stop request or the duration; print a status line now and then."""
    began = time.monotonic()
    next_status = began + STATUS_INTERVAL_S
    duration = stack.options.duration_s
    while not stack.stop.is_set():
        now = time.monotonic()
        left = PROCESS_CHECK_S if duration is None else duration - (now - began)
        if left <= 0:
            stack.say(f"==> {duration:g} s are up")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stack.stop.wait(), min(left, PROCESS_CHECK_S))
        await _check_processes(stack)
        if not stack.stop.is_set() and time.monotonic() >= next_status:
            next_status += STATUS_INTERVAL_S
            _status(stack)


async def _check_processes(stack: Stack) -> None:
    """Stop the demo when HA or AppDaemon exited; restart HA when it asked to."""
    ha, appdaemon = stack.ha, stack.appdaemon
    if ha is not None and not ha.process.running and not stack.stop.is_set():
        code = ha.process.stop()  # reaps it: the exit code
        if code != HA_RESTART_EXIT_CODE:
            stack.request_stop(f"Home Assistant exited (code {code})")
            return
        # Its restart service (Settings > System > Restart) exits with this
        # code; as HA's supervisor or a container's restart policy does, the
        # demo starts it again, on the same port, with the same token.
        stack.say("==> Home Assistant is restarting (its restart service was called)")
        try:
            await _step(stack, "restarting Home Assistant", ha.start, ha.process.log_tail)
        except StartError as err:
            stack.say(f"==> {err}")
            stack.request_stop("Home Assistant did not come back")
            return
        except Stopped:
            return
        stack.say("==> Home Assistant is back")
    if appdaemon is not None and not appdaemon.process.running:
        stack.request_stop("AppDaemon exited")


def _status(stack: Stack) -> None:
    sim = stack.simulator
    if sim is None or sim.last is None:
        return
    r = sim.last.readings
    stack.say(
        f"[{sim.last.time:%H:%M}] PV {r.pv_w:.0f} W, load {r.load_w:.0f} W, battery "
        f"{r.battery_w:.0f} W ({r.soc_pct:.1f} %), grid {r.grid_w:.0f} W, {sim.last.mode}"
    )
