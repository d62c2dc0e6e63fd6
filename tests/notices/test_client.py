"""The notice client and the notice event format."""

from __future__ import annotations

import pytest

from gridwatch.notices.client import (
    NOTICE_EVENT,
    RESYNC_EVENT,
    Action,
    NoticeClient,
    NoticeError,
    Severity,
    notice_id,
    parse_notice_event,
)
from tests.support.fake_hass import FakeHass


@pytest.fixture
async def client():
    hass = FakeHass()
    notices = NoticeClient(hass, "export_guard")
    await notices.start()
    return hass, notices


async def test_raise_fires_the_event_with_every_field(client):
    hass, notices = client
    fired = await notices.raise_notice(
        "stale_data", "warning", "Stale", "grid power 45 s old", ["Check the meter"]
    )
    assert fired
    assert hass.events_of(NOTICE_EVENT) == [
        {
            "action": "raise",
            "notice_id": "export_guard_stale_data",
            "severity": "warning",
            "title": "Stale",
            "message": "grid power 45 s old",
            "steps": ["Check the meter"],
        }
    ]


async def test_unchanged_raise_is_not_refired_but_a_change_is(client):
    hass, notices = client
    assert await notices.raise_notice("x", Severity.WARNING, "T", "m")
    assert not await notices.raise_notice("x", Severity.WARNING, "T", "m")
    assert await notices.raise_notice("x", Severity.CRITICAL, "T", "m")
    assert [e["severity"] for e in hass.events_of(NOTICE_EVENT)] == ["warning", "critical"]


async def test_resolve_is_sent_once_then_deduped(client):
    hass, notices = client
    await notices.raise_notice("x", "info", "T", "m")
    assert await notices.resolve("x")
    assert not await notices.resolve("x")
    # First resolve of a never-raised condition still goes out once: an
    # earlier instance of the app (before an HA reconnect) may have raised it.
    assert await notices.resolve("y")
    assert not await notices.resolve("y")
    actions = [(e["action"], e["notice_id"]) for e in hass.events_of(NOTICE_EVENT)]
    assert actions == [
        ("raise", "export_guard_x"),
        ("resolve", "export_guard_x"),
        ("resolve", "export_guard_y"),
    ]
    assert notices.active == {}


async def test_resync_refires_active_notices_only(client):
    hass, notices = client
    await notices.raise_notice("a", "warning", "A", "m")
    await notices.raise_notice("b", "critical", "B", "m")
    await notices.resolve("a")
    before = len(hass.fired)
    await hass.fire_event(RESYNC_EVENT, {})
    refired = [d for n, d in hass.fired[before:] if n == NOTICE_EVENT]
    assert [d["notice_id"] for d in refired] == ["export_guard_b"]


async def test_stop_stops_answering_resync(client):
    hass, notices = client
    await notices.raise_notice("a", "warning", "A", "m")
    await notices.stop()
    before = len(hass.events_of(NOTICE_EVENT))
    await hass.fire_event(RESYNC_EVENT, {})
    assert len(hass.events_of(NOTICE_EVENT)) == before
    assert hass.listener_count(RESYNC_EVENT) == 0


async def test_unknown_severity_is_refused(client):
    _, notices = client
    with pytest.raises(NoticeError, match="severity"):
        await notices.raise_notice("x", "urgent", "T", "m")


def test_notice_id_slugs_parts():
    assert notice_id("Export Guard", "Stale data!") == "export_guard_stale_data"
    with pytest.raises(NoticeError):
        notice_id("app", "!!!")


def test_parse_round_trips_a_raise():
    data = {
        "action": "raise",
        "notice_id": "energy_tally_query_failed",
        "severity": "critical",
        "title": "  Tally failing ",
        "message": "3 failures",
        "steps": ["a", "b"],
        "metadata": {"origin": "LOCAL"},
    }
    request = parse_notice_event(data)
    assert request.action is Action.RAISE
    assert request.notice is not None
    assert request.notice.title == "Tally failing"
    assert request.notice.steps == ("a", "b")
    assert request.notice.to_event_data()["severity"] == "critical"


def test_parse_resolve_needs_only_the_id():
    request = parse_notice_event({"action": "resolve", "notice_id": "a_b"})
    assert request.action is Action.RESOLVE
    assert request.notice is None


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({"action": "raise"}, ["notice_id", "severity", "title", "message"]),
        ({"action": "shout", "notice_id": "a"}, ["action"]),
        ({"action": "resolve", "notice_id": "Bad Id"}, ["notice_id"]),
        (
            {
                "action": "raise",
                "notice_id": "a",
                "severity": "urgent",
                "title": "t",
                "message": "m",
            },
            ["severity"],
        ),
        (
            {"action": "raise", "notice_id": "a", "severity": "info", "title": "", "message": 3},
            ["title", "message"],
        ),
        (
            {
                "action": "raise",
                "notice_id": "a",
                "severity": "info",
                "title": "t",
                "message": "m",
                "steps": "do it",
            },
            ["steps"],
        ),
    ],
)
def test_parse_names_every_problem(data, problems):
    with pytest.raises(NoticeError) as info:
        parse_notice_event(data)
    for word in problems:
        assert word in str(info.value)


class _FlakyEvents(FakeHass):
    """Fails the next ``failures`` fire_event calls, like HA being away."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def fire_event(self, event, data):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("HA is away")
        await super().fire_event(event, data)


async def test_a_raise_that_failed_to_fire_is_sent_again():
    hass = _FlakyEvents()
    notices = NoticeClient(hass, "export_guard")
    hass.failures = 1
    with pytest.raises(ConnectionError):
        await notices.raise_notice("stop_failed", "critical", "Stop failed", "m")
    assert await notices.raise_notice("stop_failed", "critical", "Stop failed", "m")
    assert [e["action"] for e in hass.events_of(NOTICE_EVENT)] == ["raise"]


async def test_a_resolve_that_failed_to_fire_is_sent_again():
    hass = _FlakyEvents()
    notices = NoticeClient(hass, "export_guard")
    await notices.raise_notice("x", "warning", "T", "m")
    hass.failures = 1
    with pytest.raises(ConnectionError):
        await notices.resolve("x")
    assert await notices.resolve("x")
    assert [e["action"] for e in hass.events_of(NOTICE_EVENT)] == ["raise", "resolve"]
