"""Notification text, the summary sensor's attributes and the notice store."""

from __future__ import annotations

import json
import logging

from gridwatch.notices.client import Notice, Severity
from gridwatch.notices.render import notification_text, push_text, summary_attributes
from gridwatch.notices.store import load_notices, save_notices

A = Notice("guard_stale", Severity.WARNING, "Stale", "grid power 40 s old", ("Check", "Restart"))
B = Notice("tally_failed", Severity.CRITICAL, "Tally", "3 failures", ())


def test_notification_text_has_message_numbered_steps_and_footer():
    text = notification_text(A)
    assert text.startswith("grid power 40 s old\n\n**What to do**\n1. Check\n2. Restart")
    assert text.endswith("_Gridwatch · warning · guard_stale_")
    assert "What to do" not in notification_text(B)


def test_push_text():
    assert push_text(B, resolved=False) == ("Tally", notification_text(B))
    assert push_text(B, resolved=True)[0] == "Resolved: Tally"


def test_summary_attributes():
    attrs = summary_attributes({B.notice_id: B, A.notice_id: A})
    assert attrs["notices"] == {"guard_stale": "warning", "tally_failed": "critical"}
    assert (attrs["critical_count"], attrs["warning_count"], attrs["info_count"]) == (1, 1, 0)
    assert summary_attributes({})["icon"] == "mdi:bell-check"


def test_store_round_trip(tmp_path):
    path = tmp_path / "notices.json"
    assert load_notices(path) == []
    save_notices(path, [A, B])
    assert load_notices(path) == [A, B]
    save_notices(path, [B])
    assert load_notices(path) == [B]
    assert [p.name for p in tmp_path.iterdir()] == ["notices.json"]  # no temp files left


def test_store_survives_corruption(tmp_path, caplog):
    path = tmp_path / "notices.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert load_notices(path) == []
    good = A.to_event_data()
    path.write_text(json.dumps({"version": 1, "notices": [good, {"action": "raise"}, 7]}))
    with caplog.at_level(logging.WARNING):
        assert load_notices(path) == [A]
    assert sum("skipping bad entry" in r.getMessage() for r in caplog.records) == 2
