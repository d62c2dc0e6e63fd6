"""A fake monotonic + wall clock for logic and transport tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Time that only moves when a test says so.

    ``monotonic()`` is the callable transports and breakers take; ``now()``
    gives the matching tz-aware wall time. ``sleep`` records the requested
    delays, advances the clock and yields once, so backoff schedules can be
    observed without waiting.
    """

    def __init__(self, start: float = 1000.0, wall: datetime | None = None) -> None:
        self._t = start
        self._wall0 = wall or datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
        self._t0 = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._t

    __call__ = monotonic

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self._t - self._t0)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self._t += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
