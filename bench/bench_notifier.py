"""Notifier decision cost: parsing a ``gridwatch_notice`` event and deciding.

The notifier handles every app's notice events on AppDaemon's loop; this
shows the pure cost per event (no HA round trip), with many notices active.
"""

from __future__ import annotations

import time

from bench import Row, progress, row

EVENTS = 50_000
ACTIVE = 200


async def run() -> list[Row]:
    from gridwatch.notices.client import parse_notice_event
    from gridwatch.notices.registry import NoticeRegistry, NotifierPolicy

    registry = NoticeRegistry(NotifierPolicy(min_repost_s=60, repeat_s=900, push_enabled=True))
    events = [
        {
            "action": "raise",
            "notice_id": f"app_condition_{i % ACTIVE}",
            "severity": ("info", "warning", "critical")[i % 3],
            "title": "Condition",
            "message": f"value {i // ACTIVE}",
            "steps": ["Check the link", "Restart the device"],
        }
        for i in range(EVENTS)
    ]
    progress(f"{EVENTS:,} raise events over {ACTIVE} notices")
    posts = 0
    start = time.perf_counter()
    for now, data in enumerate(events):
        request = parse_notice_event(data)
        assert request.notice is not None
        posts += len(registry.raise_notice(request.notice, float(now) / 100))
    per_event = (time.perf_counter() - start) / EVENTS
    start = time.perf_counter()
    ticks = 1000
    for i in range(ticks):
        registry.tick(float(EVENTS) / 100 + i)
    per_tick = (time.perf_counter() - start) / ticks
    return [
        row("parse + decide one notice event", per_event * 1e6, "us", goal="< 100"),
        row("actions from rate-limited changes", posts, "", note=f"of {EVENTS:,} changed raises"),
        row(f"tick with {ACTIVE} active notices", per_tick * 1e6, "us", goal="< 5000"),
    ]
