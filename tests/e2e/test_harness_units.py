"""The harness's own parts, without booting Home Assistant (fast, not e2e)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

from tests.e2e.appdaemon_proc import AppDaemon, AppDaemonConfig, AppRefused
from tests.e2e.ha import HomeAssistant, setup_failures
from tests.e2e.ha_client import wait_for
from tests.e2e.ha_config import DOMAINS, HaConfig
from tests.e2e.ha_install import HaInstall, integration_requirements
from tests.e2e.process import ManagedProcess, ProcessDied, free_port, tail, wait_until

# -- process -------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = (
        "import signal, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "signal.pause()  # until a signal it does not ignore: SIGKILL\n"
    )
    proc = ManagedProcess("stubborn", [sys.executable, "-c", script], tmp_path / "log")
    proc.start()
    wait_until(ready.exists, 10, interval=0.02, alive=proc.check_alive)

    code = proc.stop(timeout=0.2)

    assert code == -signal.SIGKILL
    assert not proc.running
    assert proc.stop() is None  # a second stop is harmless


def test_died_process_is_reported_with_its_log(tmp_path: Path) -> None:
    script = "import sys; print('boom: bad config'); sys.exit(3)"
    proc = ManagedProcess("crasher", [sys.executable, "-c", script], tmp_path / "log")
    proc.start()

    with pytest.raises(ProcessDied, match=r"(?s)code 3.*boom: bad config"):
        wait_until(lambda: False, 10, interval=0.02, alive=proc.check_alive)
    proc.stop()


def test_log_is_kept_across_restarts(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = ManagedProcess("echo", [sys.executable, "-c", "print('run')"], log)
    for _ in range(2):
        proc.start()
        wait_until(lambda: not proc.running, 10, interval=0.02)
        proc.stop()

    assert log.read_text().splitlines() == ["run", "run"]


def test_wait_until_times_out_naming_what() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, 0.05, interval=0.01, what="the moon")


def test_tail_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope") == ""
    (tmp_path / "f").write_text("\n".join(str(i) for i in range(10)))
    assert tail(tmp_path / "f", 3) == "7\n8\n9"


# -- HA install and config ----------------------------------------------------------


def _manifest(components: Path, domain: str, deps: list[str], reqs: list[str]) -> None:
    (components / domain).mkdir(parents=True)
    manifest = {"domain": domain, "dependencies": deps, "requirements": reqs}
    (components / domain / "manifest.json").write_text(json.dumps(manifest))


def test_requirements_follow_dependencies(tmp_path: Path) -> None:
    _manifest(tmp_path, "onboarding", ["person", "http"], [])
    _manifest(tmp_path, "person", ["image_upload", "onboarding"], [])  # a cycle
    _manifest(tmp_path, "image_upload", [], ["Pillow==10.1.0"])
    _manifest(tmp_path, "http", [], ["aiohttp_cors==0.7.0"])
    _manifest(tmp_path, "recorder", [], ["SQLAlchemy==2.0.23", "fnv-hash-fast==0.5.0"])
    _manifest(tmp_path, "unused", [], ["never==1"])

    found = integration_requirements(tmp_path, ["onboarding", "recorder", "no_manifest"])

    assert found == [
        "Pillow==10.1.0",
        "SQLAlchemy==2.0.23",
        "aiohttp_cors==0.7.0",
        "fnv-hash-fast==0.5.0",
    ]


def test_ha_config_is_loopback_lean_and_overridable(tmp_path: Path) -> None:
    path = HaConfig(port=18123, extra={"logger": {"default": "info"}}).write(tmp_path)

    config = yaml.safe_load(path.read_text())

    assert config["http"] == {"server_host": "127.0.0.1", "server_port": 18123}
    assert config["recorder"]["db_url"] == f"sqlite:///{tmp_path / 'home-assistant_v2.db'}"
    assert config["logger"] == {"default": "info"}
    # No default_config / frontend: they would cost boot time.
    assert "default_config" not in config
    assert "frontend" not in config
    top_level = set(config) - {"homeassistant"}
    assert top_level <= set(DOMAINS)
    assert config["template"][0]["sensor"][2]["state_class"] == "total_increasing"


def _fake_hass(tmp_path: Path, body: str) -> HomeAssistant:
    """A HomeAssistant whose ``hass`` executable is a small script."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    hass = venv / "bin" / "hass"
    hass.write_text(f"#!{sys.executable}\n{body}")
    hass.chmod(0o755)
    return HomeAssistant(HaInstall(venv, "0.0"), tmp_path / "config", HaConfig(port=free_port()))


def test_ha_start_fails_fast_when_its_port_is_taken(tmp_path: Path) -> None:
    ha = _fake_hass(
        tmp_path,
        "import signal\n"
        "print('ERROR [homeassistant.components.http] Failed to create HTTP server at port 1:'"
        " ' address already in use', flush=True)\n"
        "signal.pause()  # a stuck HA: it never exits by itself\n",
    )
    try:
        with pytest.raises(ProcessDied, match="could not bind"):
            ha.start(timeout=30)
    finally:
        ha.stop()
    assert (tmp_path / "config" / "configuration.yaml").is_file()


def test_ha_start_reports_a_crash_with_the_log(tmp_path: Path) -> None:
    ha = _fake_hass(tmp_path, "import sys\nprint('Invalid config for [http]')\nsys.exit(1)\n")
    try:
        with pytest.raises(ProcessDied, match=r"(?s)code 1.*Invalid config for \[http\]"):
            ha.start(timeout=30)
    finally:
        ha.stop()


# -- AppDaemon config and log parsing --------------------------------------------


def _appdaemon(tmp_path: Path, **options: object) -> AppDaemon:
    config = AppDaemonConfig(
        ha_url="http://127.0.0.1:1",
        token="tok",
        apps={"one": {"module": "one_app", "class": "One"}},
        **options,  # type: ignore[arg-type]
    )
    return AppDaemon(tmp_path / "ad", config)


def test_app_dir_holds_only_apps_lib_and_the_generated_config(tmp_path: Path) -> None:
    ad = _appdaemon(tmp_path, test_apps={"one_app.py": "# test app\n"})

    ad.write()

    configs = sorted(
        p.relative_to(ad.app_dir).as_posix()
        for p in ad.app_dir.rglob("*")
        if p.suffix in {".yaml", ".toml"}
    )
    assert configs == ["apps.yaml"]  # AppDaemon would read any other one as app config
    assert (ad.app_dir / "apps" / "gridwatch_notifier.py").is_file()
    assert (ad.app_dir / "lib" / "gridwatch" / "__init__.py").is_file()
    assert (ad.app_dir / "test_apps" / "one_app.py").read_text() == "# test app\n"
    assert not (ad.app_dir / "test_apps" / "__init__.py").exists()
    assert not list(ad.app_dir.rglob("__pycache__"))
    assert yaml.safe_load((ad.app_dir / "apps.yaml").read_text()) == {
        "one": {"module": "one_app", "class": "One"}
    }
    main = yaml.safe_load((ad.config_dir / "appdaemon.yaml").read_text())
    assert main["appdaemon"]["plugins"]["HASS"]["token"] == "tok"
    assert main["appdaemon"]["time_zone"] == HaConfig(port=1).time_zone
    assert main["http"]["url"] == ad.url
    assert "hadashboard" not in main


def test_dashboard_dir_is_optional(tmp_path: Path) -> None:
    ad = _appdaemon(tmp_path, dashboard_dir=tmp_path / "dash")

    ad.write()

    main = yaml.safe_load((ad.config_dir / "appdaemon.yaml").read_text())
    assert main["hadashboard"] == {"dashboard_dir": str(tmp_path / "dash")}


@pytest.fixture
def admin_api(tmp_path: Path) -> Iterator[tuple[AppDaemon, dict[str, str]]]:
    """An AppDaemon whose admin API is a stub serving ``states`` (app -> state)."""
    states: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            app = self.path.rsplit("/app.", 1)[-1]
            if app not in states:
                self.send_error(404)
                return
            body = json.dumps({"state": {"entity_id": f"app.{app}", "state": states[app]}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_args: object) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    ad = _appdaemon(tmp_path)
    ad.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield ad, states
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_wait_app_tells_started_from_refused(admin_api: tuple[AppDaemon, dict[str, str]]) -> None:
    ad, states = admin_api
    states.update(good="idle", broken="initialize_error", typo="compile_error", slow="initializing")

    assert ad.app_refused("good", timeout=1) is False
    assert ad.app_refused("broken", timeout=1) is True
    with pytest.raises(AppRefused, match="compile_error"):
        ad.wait_app("typo", timeout=1)
    with pytest.raises(TimeoutError, match="initializing"):
        ad.wait_app("slow", timeout=0.1)
    with pytest.raises(TimeoutError, match="None"):
        ad.wait_app("absent", timeout=0.1)


# -- client helpers ----------------------------------------------------------------


async def test_wait_for_returns_the_first_value_that_satisfies() -> None:
    values = iter([1, 2, 3, 4])

    async def probe() -> int:
        return next(values)

    assert await wait_for(probe, lambda v: v >= 3, interval=0.001) == 3


async def test_wait_for_timeout_names_the_last_value() -> None:
    async def probe() -> str:
        return "unavailable"

    with pytest.raises(TimeoutError, match=r"sensor\.x; last: 'unavailable'"):
        await wait_for(probe, lambda v: v == "on", timeout=0.05, interval=0.01, what="sensor.x")


def test_setup_failures_are_read_from_ha_log_lines() -> None:
    # Lines as HA 2026.2.3 and 2024.1.6 write them.
    log = (
        "2026-11-29 23:43:05.701 WARNING (MainThread) [homeassistant.bootstrap] Skipping pip\n"
        "2026-11-29 23:43:06.495 ERROR (MainThread) [homeassistant.components.notify] "
        "Error setting up platform file\n"
        "Traceback (most recent call last):\n"
        "2024-01-10 10:00:00.000 ERROR (MainThread) [homeassistant.setup] "
        "Setup failed for 'recorder': Requirements for recorder not found: ['SQLAlchemy'].\n"
        "2026-11-29 23:43:06.497 INFO (MainThread) [homeassistant.bootstrap] Home Assistant "
        "initialized in 0.79s\n"
    )

    found = setup_failures(log)

    assert [line.split("] ", 1)[1] for line in found] == [
        "Error setting up platform file",
        "Setup failed for 'recorder': Requirements for recorder not found: ['SQLAlchemy'].",
    ]
