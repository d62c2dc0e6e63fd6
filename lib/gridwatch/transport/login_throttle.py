"""How often a link may log in again while its connection stays up.

A device may refuse one path to this user (401/403) while the login and
every other path work. A token refused on every path polled may also have
expired, and a new login fixes that; but if the refusal is about the path
and not the token, logging in again on every poll round only hammers the
device's login (the fault run saw one login a second, for ever). So
in-place logins are spaced on a backoff schedule of their own that a token
which then works starts over. Pure: the link passes in the time.
"""

from __future__ import annotations

from gridwatch.transport.backoff_policy import BackoffPolicy, backoff_delay

# A second in-place login comes no sooner than half a minute after the first,
# then 1, 2, 4 ... minutes, capped at a quarter of an hour: a token that truly
# expired is renewed at once (the first is allowed straight away), and a
# device that refuses the path whatever the token sees a handful of logins an
# hour at most.
RELOGIN_BACKOFF = BackoffPolicy(initial_s=30.0, factor=2.0, cap_s=900.0, jitter=0.1)


class LoginThrottle:
    """Spaces the in-place logins of one link.

    Args:
        policy: the schedule of gaps between logins.
    """

    def __init__(self, policy: BackoffPolicy = RELOGIN_BACKOFF) -> None:
        self.policy = policy
        self.logins = 0  # in-place logins since a token last proved itself
        self._next_at: float | None = None

    def allowed(self, now: float) -> bool:
        """Whether a login may be made at monotonic time ``now``."""
        return self._next_at is None or now >= self._next_at

    def wait_s(self, now: float) -> float:
        """Seconds until a login is allowed (0 if it is now)."""
        return 0.0 if self._next_at is None else max(0.0, self._next_at - now)

    def logged_in(self, now: float, rand: float) -> None:
        """Note an in-place login made at ``now`` (``rand`` in [0, 1) for jitter)."""
        self._next_at = now + backoff_delay(self.logins, rand, self.policy)
        self.logins += 1

    def token_worked(self) -> None:
        """A request succeeded with the current token: the login that got it
        fixed a real expiry, so the next one is not held back further."""
        self.logins = 0
