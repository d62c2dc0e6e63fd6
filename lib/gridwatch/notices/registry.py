"""The notifier's decisions: which notices to post, dismiss, push and when.

Pure logic: every method takes the current monotonic time and returns
:class:`Action` values; ``apps/notifier.py`` performs them. Rules:

- **Dedupe**: a raise identical to what is posted does nothing.
- **Rate limit per notice**: a notice is (re)posted at most once every
  ``min_repost_s``; a change inside that window is held and posted (latest
  content) when the window ends. Two exceptions post at once: a notice that
  is not on screen and is critical, and a severity escalation.
- **Resolve**: dismisses at once; a resolve of an unknown notice does nothing.
- **HA restart**: every active notice is posted again (HA forgot them).
- **Critical push**: a critical notice is pushed to the configured
  ``notify.*`` services when posted and every ``repeat_s`` until resolved or
  downgraded; when it resolves a short "resolved" push follows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from gridwatch.notices.client import Notice, Severity

_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True)
class NotifierPolicy:
    """Timing rules.

    Attributes:
        min_repost_s: at most one post per notice in this window (rate limit).
        repeat_s: repeat period of critical pushes; ``None`` pushes once.
        push_enabled: whether critical notices are pushed at all.
    """

    min_repost_s: float = 60.0
    repeat_s: float | None = 900.0
    push_enabled: bool = False


# --- actions -------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """Create or replace the persistent notification of ``notice``."""

    notice: Notice


@dataclass(frozen=True)
class Dismiss:
    """Dismiss the persistent notification ``notice_id``."""

    notice_id: str


@dataclass(frozen=True)
class Push:
    """Send ``notice`` to the notify services (``resolved``: the all-clear)."""

    notice: Notice
    resolved: bool = False


Action = Post | Dismiss | Push


@dataclass(frozen=True)
class _Entry:
    notice: Notice  # latest content requested
    posted: Notice | None  # what HA shows now (None: held, not yet shown)
    posted_at: float | None  # monotonic time of the last post
    pushed_at: float | None  # monotonic time of the last critical push


class NoticeRegistry:
    """Active notices and the rules above.

    Args:
        policy: timing rules.
    """

    def __init__(self, policy: NotifierPolicy) -> None:
        self.policy = policy
        self._active: dict[str, _Entry] = {}
        # Last post time per id, kept after a resolve so a flapping condition
        # is rate limited too; pruned once the window has passed.
        self._last_post: dict[str, float] = {}

    @property
    def active(self) -> dict[str, Notice]:
        """Active notices by id (latest content)."""
        return {nid: e.notice for nid, e in self._active.items()}

    def raise_notice(self, notice: Notice, now: float) -> list[Action]:
        """A notice was raised (or raised again, possibly changed).

        Args:
            notice: the notice.
            now: monotonic seconds.

        Returns:
            The actions to perform now.
        """
        entry = self._active.get(notice.notice_id)
        if entry is not None and entry.notice == notice and entry.posted == notice:
            return []  # dedupe: exactly what HA shows
        entry = _Entry(notice, None, None, None) if entry is None else replace(entry, notice=notice)
        self._active[notice.notice_id] = entry
        if self._may_post_now(entry, now):
            return self._post(entry, now)
        return []

    def resolve(self, notice_id: str, now: float) -> list[Action]:
        """A notice was resolved.

        Returns:
            ``Dismiss`` (and the all-clear push for a pushed critical), or
            nothing if the notice was not active.
        """
        entry = self._active.pop(notice_id, None)
        if entry is None:
            return []
        actions: list[Action] = []
        if entry.posted is not None:
            actions.append(Dismiss(notice_id))
        if entry.pushed_at is not None and self.policy.push_enabled:
            actions.append(Push(entry.notice, resolved=True))
        return actions

    def tick(self, now: float) -> list[Action]:
        """Post held changes whose window ended; repeat critical pushes.

        Returns:
            The actions due at ``now``.
        """
        actions: list[Action] = []
        for entry in list(self._active.values()):
            if entry.posted != entry.notice and self._window_passed(entry.notice.notice_id, now):
                actions += self._post(entry, now)
                continue
            actions += self._repeat_push(entry, now)
        self._prune(now)
        return actions

    def ha_restarted(self, now: float) -> list[Action]:
        """HA forgot every notification: post every active notice again.

        The rate limit does not apply (nothing is on screen any more);
        pushes are not repeated early.
        """
        actions: list[Action] = []
        for nid, entry in list(self._active.items()):
            self._active[nid] = replace(entry, posted=entry.notice, posted_at=now)
            self._last_post[nid] = now
            actions.append(Post(entry.notice))
        return actions

    def restore(self, notices: list[Notice], now: float) -> list[Action]:
        """Load notices kept from an earlier run (the notifier was recreated)
        and post them all, as after an HA restart."""
        for notice in notices:
            self._active.setdefault(notice.notice_id, _Entry(notice, None, None, None))
        return self.ha_restarted(now)

    def next_due(self, now: float) -> float | None:
        """When :meth:`tick` next has something to do (monotonic), if ever."""
        times: list[float] = []
        for nid, entry in self._active.items():
            if entry.posted != entry.notice:
                times.append(
                    self._last_post.get(nid, now - self.policy.min_repost_s)
                    + self.policy.min_repost_s
                )
            elif (
                self._pushes(entry.notice) and entry.pushed_at is not None and self.policy.repeat_s
            ):
                times.append(entry.pushed_at + self.policy.repeat_s)
        return max(now, min(times)) if times else None

    # ------------------------------------------------------------------

    def _may_post_now(self, entry: _Entry, now: float) -> bool:
        nid = entry.notice.notice_id
        if self._window_passed(nid, now):
            return True
        if entry.posted is None:
            # Not on screen (new after a recent resolve): only a critical
            # notice jumps the rate limit.
            return entry.notice.severity is Severity.CRITICAL
        return _RANK[entry.notice.severity] > _RANK[entry.posted.severity]

    def _window_passed(self, notice_id: str, now: float) -> bool:
        last = self._last_post.get(notice_id)
        return last is None or now - last >= self.policy.min_repost_s

    def _post(self, entry: _Entry, now: float) -> list[Action]:
        notice = entry.notice
        actions: list[Action] = [Post(notice)]
        pushed_at = entry.pushed_at
        if not self._pushes(notice):
            pushed_at = None  # downgraded: the repeat stops
        elif pushed_at is None:
            # Newly critical (new or escalated): push now; a changed message
            # of an already pushed notice waits for the repeat.
            actions.append(Push(notice))
            pushed_at = now
        self._active[notice.notice_id] = _Entry(notice, notice, now, pushed_at)
        self._last_post[notice.notice_id] = now
        return actions

    def _repeat_push(self, entry: _Entry, now: float) -> list[Action]:
        repeat = self.policy.repeat_s
        if (
            not self._pushes(entry.notice)
            or entry.pushed_at is None
            or repeat is None
            or now - entry.pushed_at < repeat
        ):
            return []
        self._active[entry.notice.notice_id] = replace(entry, pushed_at=now)
        return [Push(entry.notice)]

    def _pushes(self, notice: Notice) -> bool:
        return self.policy.push_enabled and notice.severity is Severity.CRITICAL

    def _prune(self, now: float) -> None:
        for nid, at in list(self._last_post.items()):
            if nid not in self._active and now - at >= self.policy.min_repost_s:
                del self._last_post[nid]
