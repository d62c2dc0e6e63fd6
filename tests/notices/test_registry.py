"""The notifier's decisions: dedupe, rate limit, resolve, restart, critical pushes."""

from __future__ import annotations

import pytest

from gridwatch.notices.client import Notice, Severity
from gridwatch.notices.registry import Dismiss, NoticeRegistry, NotifierPolicy, Post, Push

W, C, INFO = Severity.WARNING, Severity.CRITICAL, Severity.INFO


def notice(
    nid: str = "guard_stale",
    severity: Severity = W,
    message: str = "grid power 40 s old",
    steps: tuple[str, ...] = ("Check",),
) -> Notice:
    return Notice(nid, severity, f"Title {nid}", message, tuple(steps))


@pytest.fixture
def reg():
    return NoticeRegistry(NotifierPolicy(min_repost_s=60, repeat_s=900, push_enabled=True))


def test_new_notice_is_posted_once_then_deduped(reg):
    n = notice()
    assert reg.raise_notice(n, 0) == [Post(n)]
    assert reg.raise_notice(n, 1) == []
    assert reg.raise_notice(n, 500) == []
    assert reg.active == {n.notice_id: n}


def test_changed_notice_inside_the_window_is_held_then_posted_latest(reg):
    first = notice(message="40 s old")
    reg.raise_notice(first, 0)
    assert reg.raise_notice(notice(message="45 s old"), 10) == []
    latest = notice(message="50 s old")
    assert reg.raise_notice(latest, 20) == []
    assert reg.tick(59) == []
    assert reg.next_due(59) == 60
    assert reg.tick(60) == [Post(latest)]
    assert reg.tick(61) == []
    assert reg.next_due(61) is None


def test_changed_notice_after_the_window_is_posted_at_once(reg):
    reg.raise_notice(notice(message="a"), 0)
    b = notice(message="b")
    assert reg.raise_notice(b, 60) == [Post(b)]


def test_escalation_jumps_the_rate_limit(reg):
    reg.raise_notice(notice(severity=INFO), 0)
    warning = notice(severity=W)
    assert reg.raise_notice(warning, 5) == [Post(warning)]
    # A downgrade waits for the window.
    assert reg.raise_notice(notice(severity=INFO), 6) == []


def test_resolve_dismisses_and_unknown_resolve_does_nothing(reg):
    n = notice()
    reg.raise_notice(n, 0)
    assert reg.resolve(n.notice_id, 1) == [Dismiss(n.notice_id)]
    assert reg.resolve(n.notice_id, 2) == []
    assert reg.resolve("never_raised", 3) == []
    assert reg.active == {}


def test_flapping_warning_is_rate_limited_across_resolve(reg):
    n = notice()
    reg.raise_notice(n, 0)
    reg.resolve(n.notice_id, 5)
    assert reg.raise_notice(n, 10) == []  # held: posted 10 s ago
    assert reg.resolve(n.notice_id, 20) == []  # never shown: nothing to dismiss
    reg.raise_notice(n, 30)
    assert reg.tick(60) == [Post(n)]


def test_critical_after_resolve_is_posted_at_once(reg):
    n = notice(severity=C)
    reg.raise_notice(n, 0)
    reg.resolve(n.notice_id, 5)
    actions = reg.raise_notice(n, 10)
    assert Post(n) in actions


def test_ha_restart_reposts_every_active_notice_ignoring_the_window(reg):
    a, b = notice("a_x"), notice("b_y", severity=INFO)
    reg.raise_notice(a, 0)
    reg.raise_notice(b, 0)
    held = notice("a_x", message="changed")
    reg.raise_notice(held, 1)
    assert reg.ha_restarted(2) == [Post(held), Post(b)]
    assert reg.tick(100) == []


def test_restore_posts_kept_notices(reg):
    a = notice("a_x")
    assert reg.restore([a], 0) == [Post(a)]
    assert reg.raise_notice(a, 1) == []  # same as shown: deduped


def test_critical_is_pushed_then_repeated_until_resolved(reg):
    n = notice(severity=C)
    assert reg.raise_notice(n, 0) == [Post(n), Push(n)]
    assert reg.tick(899) == []
    assert reg.next_due(899) == 900
    assert reg.tick(900) == [Push(n)]
    assert reg.tick(1000) == []
    assert reg.tick(1800) == [Push(n)]
    assert reg.resolve(n.notice_id, 1801) == [Dismiss(n.notice_id), Push(n, resolved=True)]
    assert reg.tick(5000) == []


def test_changed_critical_message_is_reposted_but_not_repushed_early(reg):
    reg.raise_notice(notice(severity=C, message="a"), 0)
    b = notice(severity=C, message="b")
    assert reg.raise_notice(b, 61) == [Post(b)]
    assert reg.tick(900) == [Push(b)]


def test_escalation_to_critical_pushes_and_downgrade_stops_repeats(reg):
    reg.raise_notice(notice(severity=W), 0)
    crit = notice(severity=C)
    assert reg.raise_notice(crit, 10) == [Post(crit), Push(crit)]
    warn = notice(severity=W, message="better")
    assert reg.raise_notice(warn, 50) == []  # downgrade: waits for the window
    assert reg.tick(70) == [Post(warn)]
    assert reg.tick(2000) == []


def test_no_push_when_disabled_or_repeat_off():
    quiet = NoticeRegistry(NotifierPolicy(min_repost_s=60, repeat_s=900, push_enabled=False))
    n = notice(severity=C)
    assert quiet.raise_notice(n, 0) == [Post(n)]
    assert quiet.tick(5000) == []
    assert quiet.resolve(n.notice_id, 5001) == [Dismiss(n.notice_id)]
    once = NoticeRegistry(NotifierPolicy(min_repost_s=60, repeat_s=None, push_enabled=True))
    assert once.raise_notice(n, 0) == [Post(n), Push(n)]
    assert once.tick(100000) == []


def test_zero_window_disables_the_rate_limit():
    reg = NoticeRegistry(NotifierPolicy(min_repost_s=0, repeat_s=None))
    for i in range(3):
        n = notice(message=str(i))
        assert reg.raise_notice(n, 0) == [Post(n)]
