"""The one connection lifecycle every transport shares.

A :class:`Link` owns: connect with a timeout (cancelled promptly by
``disconnect()``; a second ``connect()`` joins the one running), automatic
reconnect with backoff after an unexpected loss (a connection that carried
data restarts the schedule), a subscription registry kept in step with each
connection (what is registered while a connect runs is sent before the link
reports connected), health figures with an optional data watchdog, and
callback delivery on the event loop. A transport subclass only opens and
closes its connection, sends (un)subscribe requests and hands received
messages to :meth:`Link._deliver`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gridwatch.transport.backoff_policy import BackoffPolicy, backoff_delay, next_attempt
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    LinkClosedError,
    TransportError,
    UnsupportedHostError,
)
from gridwatch.transport.health import HealthPolicy, HealthSnapshot, HealthTracker
from gridwatch.transport.watchdog import Verdict

_LOGGER = logging.getLogger(__name__)

# Closing a connection must never hang a shutdown: a peer that does not answer
# a close handshake within this is abandoned.
CLOSE_TIMEOUT_S = 5.0
# How long a cancelled open() may take to unwind before we stop waiting for it.
CANCEL_GRACE_S = 1.0
# Errors that retrying cannot fix: the reconnect loop stops and exposes them
# as ``fatal_error`` instead of hammering the device or flooding the log.
FATAL_ERRORS: tuple[type[TransportError], ...] = (AuthError, UnsupportedHostError)
# The data watchdog sleeps until a limit can be reached, but wakes at least
# this often: a new message or subscription changes when that is.
WATCHDOG_RECHECK_S = 5.0


@dataclass(frozen=True)
class Message:
    """One message received on a link."""

    key: str  # MQTT topic, WebSocket event name, BLE characteristic, HTTP path
    payload: Any  # bytes for MQTT/BLE; decoded JSON for WebSocket/HTTP
    received_at: float  # monotonic seconds


MessageCallback = Callable[[Message], None]


@dataclass(frozen=True)
class Subscription:
    """A registered interest, replayed after every (re)connect."""

    key: str
    callback: MessageCallback
    options: Mapping[str, Any] = field(default_factory=dict)


Sleep = Callable[[float], Awaitable[None]]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a transport's helper task (receive loop, poller) and wait until
    it has unwound; a task closing its own connection is left to finish."""
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    await asyncio.wait({task})


class Link(ABC):
    """Base of the MQTT, WebSocket, HTTP and BLE links.

    Args:
        name: the link's name (used in logs and entity ids).
        backoff: reconnect schedule.
        health: health window and adaptive connect timeout.
        clock: monotonic clock (tests pass a fake).
        rand: uniform [0, 1) source for backoff jitter.
        sleep: the sleep used between reconnect attempts (tests pass a fake).
    """

    def __init__(
        self,
        name: str,
        *,
        backoff: BackoffPolicy = BackoffPolicy(),
        health: HealthPolicy = HealthPolicy(),
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.backoff = backoff
        self._clock = clock
        self._rand = rand
        self._sleep = sleep
        self._logger = logger or _LOGGER
        self._health = HealthTracker(health)
        self._subs: dict[str, Subscription] = {}
        self._closing = asyncio.Event()
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._fatal: TransportError | None = None
        self._connected_at: float | None = None
        self._attempting = False
        # What the current connection has been asked for; compared with the
        # registry so a (un)subscribe made while an attempt runs is not lost.
        self._sent: dict[str, Subscription] = {}
        # The connect() in progress: a second caller joins it.
        self._connecting: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------
    # Subclass hooks

    @abstractmethod
    async def _open(self) -> None:
        """Open the connection (and session: login, handshake).

        Raise :class:`AuthError` for refused credentials and another
        :class:`TransportError` for anything else. May be cancelled.
        """

    @abstractmethod
    async def _close(self) -> None:
        """Close the connection. Idempotent; also called after a failed or
        cancelled :meth:`_open`."""

    async def _send_subscribe(self, sub: Subscription) -> None:  # noqa: B027 - optional hook
        """Ask the peer for ``sub`` on the current connection (default: nothing to ask)."""

    async def _send_unsubscribe(self, key: str) -> None:  # noqa: B027 - optional hook
        """Withdraw ``key`` on the current connection (default: nothing to send)."""

    async def _replay_subscriptions(self, subs: list[Subscription]) -> None:
        """Re-send every subscription after a connect; transports that can
        batch (one MQTT SUBSCRIBE for many topics) override this."""
        for sub in subs:
            await self._send_subscribe(sub)

    def _on_lost(self, error: TransportError) -> None:  # noqa: B027 - optional hook
        """Fail per-connection state (pending requests) with ``error``."""

    def _on_connected(self) -> None:  # noqa: B027 - optional hook
        """Called once a connect has been counted (``last_error`` cleared):
        a transport may note a problem that outlives connections here."""

    def _loss_counts_as_failure(self) -> bool:
        """Whether the last loss was a failure however long the connection
        lasted or whatever it carried (the backoff then keeps climbing instead
        of starting over); e.g. another client taking the MQTT session."""
        return False

    # ------------------------------------------------------------------
    # For subclasses

    def _deliver(self, sub: Subscription, payload: Any, key: str | None = None) -> None:
        """Hand a received message to its subscriber. Call on the loop thread.

        A subscriber that raises is logged and never stops the link.
        """
        now = self._clock()
        self._health.message(now)
        try:
            sub.callback(Message(key or sub.key, payload, now))
        except Exception:
            self._logger.exception("link %s: subscriber of %s raised", self.name, sub.key)

    def _note_message(self) -> None:
        """Count a message that reached no subscriber (still proof of life)."""
        self._health.message(self._clock())

    def _connection_lost(self, reason: str) -> None:
        """Report an unexpected loss of the current connection. Call on the loop."""
        if self._closing.is_set():
            return
        if not self._connected.is_set():
            if self._attempting:
                # Lost while the attempt was still replaying subscriptions: if
                # the attempt succeeds anyway, the supervisor reconnects at once
                # instead of keeping a dead connection marked as up.
                self._logger.debug("link %s: lost during connect: %s", self.name, reason)
                self._lost.set()
            return
        self._logger.warning("link %s: connection lost: %s", self.name, reason)
        self._connected.clear()
        self._health.lost(reason)
        self._on_lost(ConnectionLost(f"link {self.name}: connection lost: {reason}"))
        self._lost.set()

    # ------------------------------------------------------------------
    # Public surface

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def health(self) -> HealthSnapshot:
        return self._health.snapshot(self._clock())

    @property
    def health_policy(self) -> HealthPolicy:
        """The health window, adaptive timeout and data watchdog in use."""
        return self._health.policy

    @property
    def fatal_error(self) -> TransportError | None:
        """The error that stopped the reconnect loop (bad credentials), if any."""
        return self._fatal

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        return MappingProxyType(self._subs)

    @property
    def source_problems(self) -> Mapping[str, str]:
        """Subscription keys the peer refuses while the link works (an HTTP
        path this user may not read), each with what to do about it: the
        values on that key say so, the link itself stays up. Empty for
        transports that cannot tell."""
        return MappingProxyType({})

    async def connect(self, timeout: float | None = None) -> None:
        """Connect once; on success keep the link up (reconnect after losses)
        until :meth:`disconnect`.

        A call made while another ``connect()`` runs joins that attempt and
        shares its outcome (its ``timeout`` is ignored): two attempts on one
        link would race for the connection and its health.

        Raises:
            ConnectTimeout: not connected within ``timeout`` (default: the
                adaptive timeout).
            AuthError: credentials refused.
            LinkClosedError: :meth:`disconnect` was called meanwhile.
            ConnectError: any other failure (also for a joined call whose
                first caller was cancelled).
        """
        if self.connected:
            return
        running = self._connecting
        if running is not None and not running.done():
            await self._join(running)
            return
        task = asyncio.create_task(self._connect_once(timeout), name=f"link-{self.name}-connect")
        self._connecting = task
        try:
            # Awaiting the task itself: cancelling this caller cancels the attempt.
            await task
        finally:
            if self._connecting is task:
                self._connecting = None

    async def _join(self, running: asyncio.Task[None]) -> None:
        try:
            # Shielded: a joiner that gives up must not cancel the first caller's attempt.
            await asyncio.shield(running)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if running.cancelled() and not (current is not None and current.cancelling()):
                raise ConnectError(
                    f"link {self.name}: the connect() this call joined was cancelled"
                ) from None
            raise

    async def _connect_once(self, timeout: float | None) -> None:
        await self._stop_supervisor()
        self._closing.clear()
        self._fatal = None
        try:
            await self._attempt(timeout)
        except BaseException:
            # Nothing retries a failed connect(): report the link as stopped,
            # not as "offline, trying" (unless start() was called meanwhile).
            if not self._supervising():
                self._health.stopped()
            raise
        if not self._supervising():
            self._supervisor = asyncio.create_task(
                self._supervise(connected=True), name=f"link-{self.name}"
            )

    def _supervising(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    def start(self) -> None:
        """Connect in the background, retrying with backoff until connected,
        and reconnect after every loss until :meth:`disconnect`."""
        if self._supervising():
            return
        self._closing.clear()
        self._fatal = None
        self._supervisor = asyncio.create_task(
            self._supervise(connected=False, after=self._connecting), name=f"link-{self.name}"
        )

    async def wait_connected(self, timeout: float) -> None:
        """Wait until connected. Raises :class:`ConnectTimeout` after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError as err:
            raise ConnectTimeout(f"link {self.name}: not connected after {timeout} s") from err

    async def disconnect(self) -> None:
        """Close the link and stop reconnecting. A ``connect()`` in progress
        raises :class:`LinkClosedError` at once. Subscriptions are kept."""
        self._closing.set()
        await self._stop_supervisor()
        was_connected = self._connected.is_set()
        self._connected.clear()
        await self._safe_close()
        if was_connected:
            self._on_lost(LinkClosedError(f"link {self.name}: disconnected"))
        self._health.stopped()

    async def subscribe(self, key: str, callback: MessageCallback, **options: Any) -> Subscription:
        """Register ``callback`` for ``key`` (replacing an earlier one); sent now
        if connected, and again after every reconnect. One registered while a
        connect is under way is sent by that connect before the link reports
        connected."""
        sub = Subscription(key, callback, MappingProxyType(dict(options)))
        self._subs[key] = sub
        self._health.expects_data = True
        if self.connected:
            # Marked first: the attempt that follows a loss must not skip it.
            self._sent[key] = sub
            try:
                await self._send_subscribe(sub)
            except TransportError as err:
                # Kept in the registry: the next reconnect replays it.
                self._logger.warning("link %s: subscribe %s failed: %s", self.name, key, err)
        return sub

    async def unsubscribe(self, key: str) -> None:
        """Forget ``key``; the only way a subscription leaves the registry."""
        removed = self._subs.pop(key, None) is not None
        self._health.expects_data = bool(self._subs)
        if removed and self.connected and self._sent.pop(key, None) is not None:
            try:
                await self._send_unsubscribe(key)
            except TransportError as err:
                self._logger.debug("link %s: unsubscribe %s failed: %s", self.name, key, err)

    # ------------------------------------------------------------------
    # Lifecycle internals

    async def _attempt(self, timeout: float | None) -> None:
        """One connect attempt: open, replay subscriptions, then catch up
        with (un)subscribes made meanwhile, until the registry and the
        connection agree at the moment the link is marked connected."""
        limit = self._health.timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        self._health.started()
        self._lost = asyncio.Event()
        started = self._clock()
        self._attempting = True
        work = asyncio.ensure_future(self._open_and_replay())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while True:
                try:
                    done, _ = await asyncio.wait(
                        {work, closing},
                        timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                except asyncio.CancelledError:
                    await self._abandon(work)
                    raise
                succeeded = (
                    work in done
                    and not work.cancelled()
                    and work.exception() is None
                    and not self._closing.is_set()
                )
                if succeeded and self._out_of_sync():
                    # A (un)subscribe came in after the replay finished and
                    # before this task woke up: send it before "connected".
                    work = asyncio.ensure_future(self._sync_subscriptions())
                    continue
                break
        finally:
            closing.cancel()
            self._attempting = False
        if succeeded:
            # No await between the last sync check and this: a subscribe()
            # from now on sees the link connected and sends for itself.
            duration = self._clock() - started
            self._health.attempt_succeeded(duration, self._clock())
            self._connected_at = self._clock()
            self._connected.set()
            self._logger.debug("link %s: connected in %.3f s", self.name, duration)
            self._on_connected()
            return
        finished = work in done
        await self._abandon(work)
        error = self._attempt_error(work, limit, finished=finished)
        if not isinstance(error, LinkClosedError):
            self._health.attempt_failed(str(error))
        raise error

    async def _open_and_replay(self) -> None:
        self._sent = {}
        await self._open()
        await self._sync_subscriptions()

    def _out_of_sync(self) -> bool:
        return self._sent.keys() != self._subs.keys() or any(
            self._sent[key] is not sub for key, sub in self._subs.items()
        )

    async def _sync_subscriptions(self) -> None:
        """Ask the new connection for every registered subscription it has not
        been asked for, and withdraw any unsubscribed meanwhile."""
        while self._out_of_sync():
            for key in [k for k in self._sent if k not in self._subs]:
                del self._sent[key]
                try:
                    await self._send_unsubscribe(key)
                except TransportError as err:
                    self._logger.debug("link %s: unsubscribe %s failed: %s", self.name, key, err)
            missing = [sub for key, sub in self._subs.items() if self._sent.get(key) is not sub]
            if missing:
                await self._replay_subscriptions(missing)
                for sub in missing:
                    current = self._subs.get(sub.key)
                    # Replaced while the replay ran: left unmarked, so sent
                    # again. Removed meanwhile: marked, so withdrawn next round.
                    if current is sub or current is None:
                        self._sent[sub.key] = sub

    def _attempt_error(
        self, opener: asyncio.Future[None], limit: float, *, finished: bool
    ) -> TransportError:
        if self._closing.is_set():
            return LinkClosedError(f"link {self.name}: disconnect() called during connect")
        if not finished:
            return ConnectTimeout(f"link {self.name}: no connection within {limit:.1f} s")
        if opener.cancelled():
            # The transport's own open was cancelled from inside (not by us).
            return ConnectError(f"link {self.name}: connect was cancelled")
        exc = opener.exception()
        if isinstance(exc, TransportError):
            return exc
        # A transport should translate its library's errors; this is the net.
        error = ConnectError(f"link {self.name}: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    async def _abandon(self, opener: asyncio.Future[None]) -> None:
        """Cancel an unfinished open and close whatever it left behind."""
        if not opener.done():
            opener.cancel()
            await asyncio.wait({opener}, timeout=CANCEL_GRACE_S)
        # Mark the outcome retrieved (the error is re-raised as ours), also for
        # an open that outlives the grace period and fails later.
        opener.add_done_callback(_retrieve)
        await self._safe_close()

    async def _safe_close(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._close()
        except TimeoutError:
            self._logger.warning(
                "link %s: close did not finish in %s s", self.name, CLOSE_TIMEOUT_S
            )
        except Exception:
            self._logger.exception("link %s: error while closing", self.name)

    async def _stop_supervisor(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is None or task.done():
            return
        if task is asyncio.current_task():
            return
        task.cancel()
        # asyncio.wait never raises the task's CancelledError; one raised here
        # is our caller's own cancellation and must propagate.
        await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)

    async def _wait_closing(self, delay: float) -> bool:
        """Sleep ``delay`` unless the link is closed first. True if closed."""
        sleeper = asyncio.ensure_future(self._sleep(delay))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closing.cancel()
        return self._closing.is_set()

    async def _supervise(self, *, connected: bool, after: asyncio.Task[None] | None = None) -> None:
        """Keep the link up: retry with backoff, reconnect after losses.

        ``after``: a ``connect()`` running when :meth:`start` was called; the
        loop waits for its outcome instead of racing it with a second attempt.
        """
        if after is not None and not after.done():
            await asyncio.wait({after})
            connected = self.connected
        attempt = 0
        while not self._closing.is_set():
            if not connected:
                try:
                    await self._attempt(None)
                except FATAL_ERRORS as err:
                    self._fatal = err
                    self._health.stopped()
                    self._logger.error(
                        "link %s: %s, not retrying: %s",
                        self.name,
                        "credentials refused" if isinstance(err, AuthError) else "cannot run here",
                        err,
                    )
                    return
                except LinkClosedError:
                    return
                except TransportError as err:
                    delay = backoff_delay(attempt, self._rand(), self.backoff)
                    self._logger.debug(
                        "link %s: connect failed (%s); retry %d in %.2f s",
                        self.name,
                        err,
                        attempt + 1,
                        delay,
                    )
                    attempt += 1
                    if await self._wait_closing(delay):
                        return
                    continue
            connected = False
            await self._wait_lost_or_closing()
            if self._closing.is_set():
                return
            connected_at = self._connected_at or self._clock()
            up_for = self._clock() - connected_at
            last_message = self._health.last_message_at
            if self._loss_counts_as_failure():
                pass  # e.g. pushed out by another client: keep climbing
            elif last_message is not None and last_message >= connected_at:
                # The connection carried data: it was no failure, however short
                # (a broker reset while a backlog drains), so the schedule
                # starts over instead of climbing to its cap.
                attempt = 0
            else:
                attempt = next_attempt(attempt, up_for, self.backoff)
            await self._safe_close()
            delay = backoff_delay(attempt, self._rand(), self.backoff)
            attempt += 1
            self._logger.info("link %s: reconnecting in %.2f s", self.name, delay)
            if await self._wait_closing(delay):
                return

    async def _wait_lost_or_closing(self) -> None:
        lost = asyncio.ensure_future(self._lost.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        watchdog = (
            asyncio.ensure_future(self._watch_data())
            if self._health.policy.watchdog.enabled
            else None
        )
        waiting = {lost, closing} | ({watchdog} if watchdog is not None else set())
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiting:
                task.cancel()
            if watchdog is not None:
                await asyncio.wait({watchdog})

    async def _watch_data(self) -> None:
        """While connected: report silence (degraded, through the health
        state) and drop a connection silent past ``reconnect_after_s``."""
        policy = self._health.policy.watchdog
        was_silent = False
        while self._connected.is_set():
            now = self._clock()
            verdict = self._health.watchdog_verdict(now)
            silent_for = self._health.silent_for(now) or 0.0
            if verdict is Verdict.RECONNECT:
                self._connection_lost(f"no data for {silent_for:.0f} s (data watchdog)")
                return
            if verdict is Verdict.SILENT and not was_silent:
                self._logger.warning(
                    "link %s: connected but no data for %.0f s", self.name, silent_for
                )
            was_silent = verdict is Verdict.SILENT
            wait = policy.next_check_in(silent_for) if self._health.expects_data else None
            # Recheck at least every few seconds: a message resets the
            # silence, a subscription may start the watch.
            await self._sleep(min(wait, WATCHDOG_RECHECK_S) if wait else WATCHDOG_RECHECK_S)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
