"""HttpPollLink against the real aiohttp device server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    NotConnectedError,
    RequestTimeout,
    TransportError,
)
from gridwatch.transport.health import LinkState
from gridwatch.transport.http_link import (
    HttpPollLink,
    HttpPollSettings,
    HttpStatusError,
    LoginSettings,
    fetch_token,
    make_session,
    translate_client_error,
)
from tests.support.device_server import DeviceServer, Inbox, RawBody, eventually

FAST_BACKOFF = BackoffPolicy(initial_s=0.02, factor=2.0, cap_s=0.1)
HANG_GUARD_S = 5.0
STATUS = "/api/status"


class GatedSleep:
    """A reconnect sleep that holds the link offline until the test opens the
    gate, so the offline state can be observed without racing the reconnect."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.entered.set()
        await self.gate.wait()


def make_link(
    server: DeviceServer,
    *,
    password: str | None = None,
    failures_before_offline: int = 3,
    request_timeout_s: float = 1.0,
    **link_options: Any,
) -> HttpPollLink:
    settings = HttpPollSettings(
        base_url=server.url,
        login=LoginSettings(server.username, password or server.password),
        poll_interval_s=0.01,
        request_timeout_s=request_timeout_s,
        failures_before_offline=failures_before_offline,
        probe_path=STATUS,
    )
    link_options.setdefault("backoff", FAST_BACKOFF)
    return HttpPollLink("http-test", settings, **link_options)


@pytest.fixture
async def link(device_server: DeviceServer) -> AsyncIterator[HttpPollLink]:
    link = make_link(device_server)
    try:
        yield link
    finally:
        await link.disconnect()


async def test_polls_deliver_each_subscribed_path_on_the_loop_thread(device_server, link):
    device_server.values["/api/meter"] = {"kwh": 12.5}
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.subscribe("/api/meter", inbox)

    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(4)

    by_key = {m.key: m.payload for m in inbox.messages}
    assert by_key == {STATUS: device_server.values[STATUS], "/api/meter": {"kwh": 12.5}}
    assert inbox.threads == {threading.get_ident()}
    assert device_server.logins == 1


async def test_new_values_are_picked_up_by_the_next_poll(device_server, link):
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(1)

    device_server.values[STATUS] = {"power_w": 900, "soc": 80}

    await eventually(lambda: inbox.payloads[-1] == {"power_w": 900, "soc": 80})


@pytest.mark.parametrize("failures", [1, 2])
async def test_fewer_failed_polls_than_the_limit_do_not_flap(device_server, link, failures):
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(1)
    polls = device_server.gets[STATUS]

    device_server.fail_gets(failures)
    await device_server.wait_for(lambda: device_server.gets[STATUS] >= polls + failures + 2)
    await inbox.wait_count(3)

    assert link.connected
    assert link.failed_rounds == 0
    assert link.health.reconnects == 0
    assert device_server.logins == 1


async def test_consecutive_failed_polls_go_offline_then_recover(device_server):
    sleep = GatedSleep()
    link = make_link(device_server, sleep=sleep)
    inbox = Inbox()
    try:
        await link.subscribe(STATUS, inbox)
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(1)
        delivered = len(inbox.messages)

        device_server.fail_gets(3)
        await asyncio.wait_for(sleep.entered.wait(), HANG_GUARD_S)

        assert not link.connected
        assert link.health.state is LinkState.OFFLINE
        assert "3 poll rounds failed" in (link.health.last_error or "")
        assert len(inbox.messages) == delivered
        sleep.gate.set()
        await link.wait_connected(HANG_GUARD_S)
        await inbox.wait_count(delivered + 1)
        assert device_server.logins == 2
        assert link.health.reconnects == 1
    finally:
        await link.disconnect()


async def test_hanging_polls_time_out_and_count_as_failures(device_server):
    sleep = GatedSleep()
    link = make_link(device_server, sleep=sleep, request_timeout_s=0.05)
    try:
        await link.subscribe(STATUS, Inbox())
        await link.connect(timeout=HANG_GUARD_S)

        device_server.hang_gets()
        await asyncio.wait_for(sleep.entered.wait(), HANG_GUARD_S)

        assert "timed out" in (link.health.last_error or "")
        device_server.hang_gets(False)
        sleep.gate.set()
        await link.wait_connected(HANG_GUARD_S)
    finally:
        await link.disconnect()


async def test_blackholed_path_goes_offline_after_the_failure_limit(device_server, fault_proxy):
    proxy = await fault_proxy(device_server.host, device_server.port)
    sleep = GatedSleep()
    settings = HttpPollSettings(
        base_url=f"http://{proxy.host}:{proxy.port}",
        login=LoginSettings(device_server.username, device_server.password),
        poll_interval_s=0.01,
        request_timeout_s=0.1,
        failures_before_offline=2,
    )
    link = HttpPollLink("http-blackhole", settings, backoff=FAST_BACKOFF, sleep=sleep)
    inbox = Inbox()
    try:
        await link.subscribe(STATUS, inbox)
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(1)

        proxy.blackhole()
        await asyncio.wait_for(sleep.entered.wait(), HANG_GUARD_S)

        assert "2 poll rounds failed" in (link.health.last_error or "")
        proxy.heal()
        sleep.gate.set()
        await link.wait_connected(HANG_GUARD_S)
        delivered = len(inbox.messages)
        await inbox.wait_count(delivered + 1)
    finally:
        await link.disconnect()


async def test_missing_path_is_not_an_outage(device_server, link):
    inbox = Inbox()
    await link.subscribe("/api/nothing_here", Inbox())
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)

    await device_server.wait_for(lambda: device_server.gets["/api/nothing_here"] >= 5)

    assert link.connected
    assert link.failed_rounds == 0


async def test_server_restart_goes_offline_and_recovers(device_server, link):
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(1)

    await device_server.stop()
    await eventually(lambda: not link.connected)
    await device_server.start()
    await link.wait_connected(HANG_GUARD_S)
    delivered = len(inbox.messages)
    await inbox.wait_count(delivered + 1)

    assert device_server.logins == 2


async def test_revoked_token_logs_in_again(device_server, link):
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)

    device_server.revoke_tokens()

    await device_server.wait_for(lambda: device_server.logins == 2)
    delivered = len(inbox.messages)
    await inbox.wait_count(delivered + 1)
    assert link.fatal_error is None


async def test_bad_credentials_raise_auth_error_and_stop_the_loop(device_server):
    link = make_link(device_server, password="wrong")
    try:
        with pytest.raises(AuthError):
            await link.connect(timeout=HANG_GUARD_S)
        link.start()
        await eventually(lambda: link.fatal_error is not None)

        assert link.health.state is LinkState.DISCONNECTED
        assert device_server.login_attempts == 2
    finally:
        await link.disconnect()


async def test_malformed_answers_are_counted_and_polling_goes_on(device_server, link):
    device_server.values["/api/broken"] = RawBody("{not json")
    inbox = Inbox()
    await link.subscribe("/api/broken", Inbox())
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)

    await inbox.wait_count(3)

    assert link.payload_errors.counts["not_json"] >= 2
    assert set(link.payload_errors.counts) == {"not_json"}
    assert link.connected
    assert link.failed_rounds == 0


async def test_request_sends_commands_with_the_token(device_server, link):
    await link.connect(timeout=HANG_GUARD_S)

    answer = await link.request("POST", "/api/command", json={"discharge_w": 1500})

    assert answer == {"ok": True, "echo": {"discharge_w": 1500}}
    assert device_server.posts == [("/api/command", {"discharge_w": 1500})]
    with pytest.raises(HttpStatusError) as caught:
        await link.request("GET", "/api/nothing_here")
    assert caught.value.status == 404


async def test_request_when_not_connected_raises(link):
    with pytest.raises(NotConnectedError):
        await link.request("GET", STATUS)


async def test_unsubscribe_stops_polling_that_path(device_server, link):
    device_server.values["/api/meter"] = {"kwh": 1}
    await link.subscribe(STATUS, Inbox())
    await link.subscribe("/api/meter", Inbox())
    await link.connect(timeout=HANG_GUARD_S)
    await device_server.wait_for(lambda: device_server.gets["/api/meter"] >= 1)

    await link.unsubscribe("/api/meter")
    meter_polls = device_server.gets["/api/meter"]
    status_polls = device_server.gets[STATUS]
    await device_server.wait_for(lambda: device_server.gets[STATUS] >= status_polls + 3)

    # At most the one request already in flight when unsubscribe ran.
    assert device_server.gets["/api/meter"] <= meter_polls + 1
    assert set(link.subscriptions) == {STATUS}


async def test_subscriptions_survive_disconnect_and_connect(device_server, link):
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(1)
    await link.disconnect()
    delivered = len(inbox.messages)

    await link.connect(timeout=HANG_GUARD_S)
    await inbox.wait_count(delivered + 1)

    assert set(link.subscriptions) == {STATUS}


async def test_50_connect_disconnect_cycles_leak_nothing(device_server):
    link = make_link(device_server)
    await link.subscribe(STATUS, Inbox())
    await link.connect(timeout=HANG_GUARD_S)
    await link.disconnect()
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    tasks = len(asyncio.all_tasks())

    for _ in range(50):
        await link.connect(timeout=HANG_GUARD_S)
        await link.disconnect()

    await eventually(lambda: len(os.listdir("/proc/self/fd")) <= fds)
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds
    assert len(asyncio.all_tasks()) == tasks


# ----------------------------------------------------------------------
# The one translation of aiohttp errors, and the login helper


def _response_error(cls: type[aiohttp.ClientResponseError], status: int) -> BaseException:
    url = URL("http://device/api/x")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return cls(info, (), status=status, message="nope")


@pytest.mark.parametrize(
    ("error", "established", "expected"),
    [
        (_response_error(aiohttp.ClientResponseError, 401), False, AuthError),
        (_response_error(aiohttp.WSServerHandshakeError, 403), False, AuthError),
        (_response_error(aiohttp.ClientResponseError, 503), False, HttpStatusError),
        (aiohttp.ServerTimeoutError("slow"), False, RequestTimeout),
        (TimeoutError(), True, RequestTimeout),
        (aiohttp.ClientConnectionError("refused"), False, ConnectError),
        (ConnectionRefusedError(111, "refused"), False, ConnectError),
        (aiohttp.ClientConnectionResetError("reset"), True, ConnectionLost),
    ],
)
def test_aiohttp_errors_become_the_suites_own(error, established, expected):
    translated = translate_client_error(error, "GET /api/x", established=established)

    assert type(translated) is expected
    assert isinstance(translated, TransportError)
    assert "GET /api/x" in str(translated)


def test_status_error_keeps_the_status():
    translated = translate_client_error(_response_error(aiohttp.ClientResponseError, 503), "x")

    assert isinstance(translated, HttpStatusError)
    assert translated.status == 503


def test_password_stays_out_of_reprs():
    login = LoginSettings("installer", "hunter2")

    assert "hunter2" not in repr(login)
    assert "hunter2" not in repr(HttpPollSettings("http://device", login=login))


@pytest.mark.parametrize(
    "options",
    [{"poll_interval_s": 0}, {"request_timeout_s": -1}, {"failures_before_offline": 0}],
)
def test_settings_reject_nonsense(options):
    with pytest.raises(ValueError):
        HttpPollSettings("http://device", **options)


async def test_login_answer_without_token_is_a_connect_error(device_server):
    device_server.require_auth = False
    not_a_login = LoginSettings("installer", "s3cret", path="/api/command")
    async with make_session(verify_ssl=True) as session:
        with pytest.raises(ConnectError, match="no token"):
            await fetch_token(session, URL(device_server.url), not_a_login, timeout=2.0)


async def test_oversized_answer_is_a_payload_error_not_an_outage(device_server):
    device_server.values["/api/huge"] = {"blob": "x" * 4096}
    settings = HttpPollSettings(
        device_server.url,
        login=LoginSettings(device_server.username, device_server.password),
        poll_interval_s=0.01,
        max_payload_bytes=1024,
    )
    link = HttpPollLink("http-huge", settings, backoff=FAST_BACKOFF)
    inbox = Inbox()
    try:
        await link.subscribe("/api/huge", Inbox())
        await link.subscribe(STATUS, inbox)
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(3)

        assert set(link.payload_errors.counts) == {"oversized"}
        assert link.connected
    finally:
        await link.disconnect()


# ---------------------------------------------------------------------------
# A path the device refuses (issue 12: probe 404 meant offline forever, while
# a poll 404 meant reached). Both now mean: reached, and the status says why.


async def test_probe_404_connects_and_names_the_path(device_server, caplog):
    link = make_link(device_server)
    settings = link.settings
    link.settings = dataclasses.replace(settings, probe_path="/api/nope")
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(1)  # the other paths still deliver
        assert link.connected
        assert link.health.state is LinkState.CONNECTED
        await eventually(lambda: "/api/nope answered HTTP 404" in (link.health.last_error or ""))
        assert "probe_path" in (link.health.last_error or "")
        assert link.health.consecutive_failures == 0
        warnings = [r for r in caplog.records if "/api/nope" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await link.disconnect()


async def test_probe_5xx_is_a_failed_connect(device_server):
    link = make_link(device_server)
    device_server.fail_gets(1, status=503)
    try:
        with pytest.raises(ConnectError, match="probe /api/status: HTTP 503"):
            await link.connect(timeout=HANG_GUARD_S)
    finally:
        await link.disconnect()


async def test_poll_404_keeps_the_link_up_and_names_the_path(device_server, caplog):
    link = make_link(device_server)
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    await link.subscribe("/api/missing", inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(3)
        assert link.connected
        assert "/api/missing answered HTTP 404" in (link.health.last_error or "")
        # Warned once, not on every poll round.
        assert sum("/api/missing" in r.getMessage() for r in caplog.records) == 1
    finally:
        await link.disconnect()


@pytest.mark.parametrize("status", [429, 503])
async def test_poll_429_or_5xx_counts_towards_offline(device_server, status):
    sleep = GatedSleep()  # holds the link offline once it is lost
    link = make_link(device_server, failures_before_offline=2, sleep=sleep)
    await link.subscribe(STATUS, Inbox())
    try:
        await link.connect(timeout=HANG_GUARD_S)
        device_server.fail_gets(2, status=status)
        await asyncio.wait_for(sleep.entered.wait(), HANG_GUARD_S)
        assert not link.connected
        assert f"2 poll rounds failed: HTTP {status}" in (link.health.last_error or "")
    finally:
        sleep.gate.set()
        await link.disconnect()


# ---------------------------------------------------------------------------
# A path the user may not read while the login works (issue 22, fault run):
# the link logged in again about once a second for ever when such a path was
# polled after a working one, delivered nothing when it was polled first, and
# a probe path answering 403 read as "credentials refused".

SECRET = "/api/secret"


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("refused_first", [False, True], ids=["after", "first"])
async def test_a_refused_path_is_that_paths_problem_not_a_dead_link(
    device_server, status, refused_first
):
    device_server.refused_paths[SECRET] = status
    link = make_link(device_server)
    good, refused = Inbox(), Inbox()
    paths = (
        [(SECRET, refused), (STATUS, good)]
        if refused_first
        else [(STATUS, good), (SECRET, refused)]
    )
    for path, inbox in paths:
        await link.subscribe(path, inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await device_server.wait_for(lambda: device_server.gets[SECRET] >= 30)
        await good.wait_count(20)

        assert link.connected
        assert link.health.state is LinkState.CONNECTED
        assert link.health.reconnects == 0
        assert device_server.logins == 1
        assert refused.messages == []
        problem = link.source_problems.get(SECRET, "")
        assert f"HTTP {status}" in problem
        assert STATUS not in link.source_problems
    finally:
        await link.disconnect()


async def test_a_probe_path_refused_after_a_good_login_is_not_refused_credentials(device_server):
    device_server.refused_paths[SECRET] = 403
    link = make_link(device_server)
    link.settings = dataclasses.replace(link.settings, probe_path=SECRET)
    inbox = Inbox()
    await link.subscribe(STATUS, inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(1)
        assert link.fatal_error is None
        assert link.connected
        assert "probe_path" in link.source_problems[SECRET]
        assert "HTTP 403" in (link.health.last_error or "")
    finally:
        await link.disconnect()


async def test_a_path_answering_again_clears_its_problem(device_server):
    device_server.refused_paths[SECRET] = 403
    device_server.values[SECRET] = {"pin": 1234}
    link = make_link(device_server)
    inbox = Inbox()
    await link.subscribe(SECRET, inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await eventually(lambda: SECRET in link.source_problems)
        del device_server.refused_paths[SECRET]
        await inbox.wait_count(1)
        assert SECRET not in link.source_problems
    finally:
        await link.disconnect()


async def test_logins_are_rate_limited_when_every_path_is_refused(device_server):
    # Every path refused straight after a good login: the token is not the
    # problem, so the link must not log in again on every poll round.
    device_server.refused_paths[STATUS] = 401
    link = make_link(device_server)
    await link.subscribe(STATUS, Inbox())
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await device_server.wait_for(lambda: device_server.gets[STATUS] >= 100)
        assert device_server.login_attempts <= 2
        assert link.connected
        assert link.fatal_error is None
        assert "HTTP 401" in link.source_problems[STATUS]
    finally:
        await link.disconnect()


async def test_a_revoked_token_with_a_refused_path_logs_in_once_and_delivers(device_server):
    device_server.refused_paths[SECRET] = 403
    link = make_link(device_server)
    inbox = Inbox()
    await link.subscribe(SECRET, Inbox())
    await link.subscribe(STATUS, inbox)
    try:
        await link.connect(timeout=HANG_GUARD_S)
        await inbox.wait_count(1)
        device_server.revoke_tokens()
        await device_server.wait_for(lambda: device_server.logins == 2)
        delivered = len(inbox.messages)
        await inbox.wait_count(delivered + 5)
        assert device_server.logins == 2
        assert link.fatal_error is None
        assert SECRET in link.source_problems
    finally:
        await link.disconnect()
