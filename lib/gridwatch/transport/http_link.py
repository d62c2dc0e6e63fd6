"""HTTP for device links: one request function, the token login, and the
HTTP polling link.

Every HTTP exchange of the suite (the WebSocket link's login included) goes
through :func:`http_json`, and :func:`translate_client_error` is the one place
where aiohttp's exceptions become the suite's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import aiohttp
from yarl import URL

from gridwatch.transport.backoff_policy import BackoffPolicy
from gridwatch.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    NotConnectedError,
    PayloadError,
    RequestError,
    RequestTimeout,
    TransportError,
)
from gridwatch.transport.http_settings import HttpPollSettings, LoginSettings, WebSocketSettings
from gridwatch.transport.link import Link, cancel_and_wait
from gridwatch.transport.login_throttle import RELOGIN_BACKOFF, LoginThrottle
from gridwatch.transport.payload import DEFAULT_MAX_PAYLOAD_BYTES, PayloadErrorLog, decode_json

# The settings live in a pure module; callers may import them from here.
__all__ = [
    "HttpPollLink",
    "HttpPollSettings",
    "HttpStatusError",
    "LoginSettings",
    "device_reached",
    "fetch_token",
    "http_json",
    "make_session",
    "translate_client_error",
]

_LOGGER = logging.getLogger(__name__)

# HTTP statuses that mean "these credentials (or this token) are refused".
AUTH_STATUSES = frozenset({401, 403})
# 4xx answers that mean "not now" rather than "no such thing": like a 5xx,
# they count as a failure to reach a working device.
TRANSIENT_CLIENT_STATUSES = frozenset({408, 429})


def device_reached(err: HttpStatusError) -> bool:
    """Whether an error status still proves a working device answered.

    A 4xx (other than 401/403, which are :class:`AuthError`, and 408/429)
    says the device is there but has no such path or dislikes the request:
    reconnecting cannot change that, so the probe and the polls both count
    it as reached and report the path. A 5xx, 408 or 429 is a device that
    is failing now.
    """
    return err.status < 500 and err.status not in TRANSIENT_CLIENT_STATUSES


class HttpStatusError(RequestError):
    """The device answered with an HTTP error status.

    Attributes:
        status: the HTTP status code.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


def translate_client_error(
    err: BaseException, what: str, *, established: bool = False
) -> TransportError:
    """The suite's error for an aiohttp (or socket) failure during ``what``.

    Args:
        err: the exception aiohttp (or the socket layer) raised.
        what: a short description of the operation, for the message.
        established: the failure hit a connection that was already open
            (a WebSocket send), rather than an attempt to reach the device.

    Returns:
        :class:`AuthError` for a 401/403 answer (a WebSocket handshake
        included), :class:`HttpStatusError` for another error status,
        :class:`RequestTimeout` for a timeout, :class:`ConnectionLost` for a
        failure on an established connection, :class:`ConnectError` for
        everything else (refused, reset, DNS, TLS).
    """
    if isinstance(err, aiohttp.ClientResponseError):
        if err.status in AUTH_STATUSES:
            return AuthError(f"{what}: refused with HTTP {err.status}")
        return HttpStatusError(err.status, f"{what}: {err.message}")
    if isinstance(err, TimeoutError):
        return RequestTimeout(f"{what}: timed out")
    if established:
        return ConnectionLost(f"{what}: {type(err).__name__}: {err}")
    return ConnectError(f"{what}: {type(err).__name__}: {err}")


def make_session(verify_ssl: bool) -> aiohttp.ClientSession:
    """A session for one link. ``verify_ssl=False`` is for devices with
    self-signed certificates only; verification is on by default."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=verify_ssl))


class SessionSlot:
    """The aiohttp session of one link's connection.

    An injected session belongs to the caller and is never closed here; one
    the link creates lives for one connection and is closed with it.
    """

    def __init__(self, injected: aiohttp.ClientSession | None, verify_ssl: bool) -> None:
        self._injected = injected
        self._verify_ssl = verify_ssl
        self.current: aiohttp.ClientSession | None = None

    def open(self) -> aiohttp.ClientSession:
        """The session for a new connection (set before any await, so a
        cancelled open still gets it closed)."""
        self.current = self._injected or make_session(self._verify_ssl)
        return self.current

    async def close(self) -> None:
        session, self.current = self.current, None
        if session is not None and session is not self._injected:
            await session.close()


async def http_json(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    timeout: float,
    json: Any = None,
    token: str | None = None,
    verify_ssl: bool = True,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Any:
    """Send one HTTP request and decode its JSON answer.

    Args:
        session: the aiohttp session to use.
        method: HTTP method.
        url: absolute URL.
        timeout: seconds for the whole exchange, body included.
        json: request body, sent as JSON when not None.
        token: bearer token for the ``Authorization`` header.
        verify_ssl: verify the device's TLS certificate.
        max_bytes: answers larger than this are refused.

    Returns:
        The decoded JSON answer (None for an empty body).

    Raises:
        AuthError: 401/403.
        HttpStatusError: another error status.
        RequestTimeout: no complete answer within ``timeout``.
        ConnectError: the device could not be reached.
        PayloadError: the answer is not JSON or too large.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else None
    what = f"{method} {url.path}"
    try:
        async with (
            asyncio.timeout(timeout),
            session.request(method, url, json=json, headers=headers, ssl=verify_ssl) as resp,
        ):
            if resp.status >= 400:
                resp.raise_for_status()
            body = await _read_limited(resp, max_bytes)
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise translate_client_error(err, what) from err
    if not body.strip():
        return None
    return decode_json(body, max_bytes)


async def _read_limited(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, but at most one byte past ``max_bytes``: enough for the
    decoder to call it oversized without buffering a runaway answer."""
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await resp.content.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def fetch_token(
    session: aiohttp.ClientSession,
    base_url: URL,
    login: LoginSettings,
    *,
    timeout: float,
    verify_ssl: bool = True,
) -> str:
    """Log in and return the bearer token.

    Raises:
        AuthError: the device refused the credentials.
        ConnectError: the device could not be reached, or answered the login
            with something that is not a token.
        RequestTimeout: no answer within ``timeout``.
    """
    body = {"username": login.username, "password": login.password}
    try:
        answer = await http_json(
            session,
            "POST",
            base_url.join(URL(login.path)),
            json=body,
            timeout=timeout,
            verify_ssl=verify_ssl,
        )
    except PayloadError as err:
        raise ConnectError(f"login answer is not JSON: {err}") from err
    except HttpStatusError as err:
        raise ConnectError(f"login failed: {err}") from err
    token = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise ConnectError("login answer has no token")
    return token


SettingsT = TypeVar("SettingsT", HttpPollSettings, WebSocketSettings)


class DeviceHttpLink(Link, Generic[SettingsT]):
    """What the links to an HTTP device share: its settings, base URL,
    session and payload-error log.

    Args:
        name: the link's name.
        settings: where and how to reach the device.
        session: an aiohttp session to use; the link closes only a session it
            created itself.
        **link_options: passed to :class:`Link` (backoff, clock, sleep...).
    """

    def __init__(
        self,
        name: str,
        settings: SettingsT,
        *,
        session: aiohttp.ClientSession | None = None,
        **link_options: Any,
    ) -> None:
        super().__init__(name, **link_options)
        self.settings: SettingsT = settings
        self.payload_errors = PayloadErrorLog(name, self._logger)
        self._base = URL(settings.base_url)
        self._session = SessionSlot(session, settings.verify_ssl)


class HttpPollLink(DeviceHttpLink[HttpPollSettings]):
    """Polls JSON endpoints of a device; subscriptions are URL paths.

    While connected, every ``poll_interval_s`` each subscribed path is
    fetched and its decoded JSON delivered to the subscriber (key = path).
    A path the device refuses (a 4xx, 401/403 with a working token
    included) is that path's problem (:attr:`source_problems`), not a lost
    connection. Constructed as :class:`DeviceHttpLink`; ``relogin`` spaces
    the logins made to renew a token that may have expired.
    """

    def __init__(
        self,
        name: str,
        settings: HttpPollSettings,
        *,
        relogin: BackoffPolicy = RELOGIN_BACKOFF,
        **options: Any,
    ) -> None:
        super().__init__(name, settings, **options)
        self._token: str | None = None
        # True from a login until a poll round has used its token: a refusal
        # then is about the path, not about an expired token.
        self._token_fresh = False
        self._relogins = LoginThrottle(relogin)
        self._poller: asyncio.Task[None] | None = None
        self._failed_rounds = 0
        # path -> (status, text) for paths the device refuses.
        self._path_problems: dict[str, tuple[int, str]] = {}

    @property
    def failed_rounds(self) -> int:
        """Consecutive poll rounds that reached no endpoint."""
        return self._failed_rounds

    @property
    def source_problems(self) -> Mapping[str, str]:
        """Paths the device answers with an error status while it is reached."""
        return MappingProxyType({path: text for path, (_s, text) in self._path_problems.items()})

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One HTTP exchange with the device on the current session.

        Args:
            method: HTTP method.
            path: path on the device (``/api/status``), joined to the base URL.
            json: body to send as JSON.
            timeout: seconds (default: ``request_timeout_s``).

        Returns:
            The decoded JSON answer.

        Raises:
            NotConnectedError: the link has no session (not connected).
            AuthError, HttpStatusError, RequestTimeout, ConnectError,
            PayloadError: see :func:`http_json`.
        """
        session = self._session.current
        if session is None or session.closed:
            raise NotConnectedError(f"link {self.name}: not connected")
        return await http_json(
            session,
            method,
            self._base.join(URL(path)),
            json=json,
            token=self._token,
            timeout=self.settings.request_timeout_s if timeout is None else timeout,
            verify_ssl=self.settings.verify_ssl,
            max_bytes=self.settings.max_payload_bytes,
        )

    # ------------------------------------------------------------------
    # Link hooks

    async def _open(self) -> None:
        session = self._session.open()
        self._token = None
        self._failed_rounds = 0
        await self._login(session)
        self._path_problems = {}
        probe = self.settings.probe_path
        if probe is not None:
            try:
                await self.request("GET", probe)
            except PayloadError as err:
                # The device answered: reachability is proven, the body is its problem.
                self.payload_errors.record(err, probe)
            except AuthError as err:
                # The login (if any) just worked: a refused probe is about
                # this path, not about the credentials.
                self._path_problem(probe, _status_of(err), "probe_path")
            except HttpStatusError as err:
                if not device_reached(err):
                    raise ConnectError(f"probe {probe}: {err}") from err
                # Same rule as a poll: the device answered, so it is reached;
                # retrying would get the same answer. Connected, and the
                # status says which path to fix (see _path_problem).
                self._path_problem(probe, err.status, "probe_path")
        self._poller = asyncio.create_task(self._run_poller(), name=f"link-{self.name}-poll")

    async def _login(self, session: aiohttp.ClientSession) -> None:
        """Get a token (a device without a login needs none)."""
        if self.settings.login is None:
            return
        self._token = await fetch_token(
            session,
            self._base,
            self.settings.login,
            timeout=self.settings.request_timeout_s,
            verify_ssl=self.settings.verify_ssl,
        )
        self._token_fresh = True

    async def _close(self) -> None:
        poller, self._poller = self._poller, None
        await cancel_and_wait(poller)
        self._token = None
        await self._session.close()

    # ------------------------------------------------------------------
    # Polling

    async def _run_poller(self) -> None:
        try:
            await self._poll_loop()
        except Exception as err:
            # A bug in polling must end in a reconnect, not in a link that
            # looks connected but never polls again.
            self._logger.exception("link %s: poll loop failed", self.name)
            self._connection_lost(f"poll loop failed: {type(err).__name__}: {err}")

    async def _poll_loop(self) -> None:
        """Poll until cancelled, or until a loss is reported."""
        # Started by _open; a loss reported before the connect finished would
        # be ignored by the base, so polling waits for the connect to complete
        # (a failed connect cancels this task through _close).
        await self._connected.wait()
        for _status, text in self._path_problems.values():
            # A refused probe path, found before the connect was counted
            # (which clears the last error).
            self._health.problem(text)
        while True:
            outcome = await self._poll_round()
            if outcome.suspect_token and not await self._renew_token(outcome.suspect_token):
                return
            if outcome.reached or outcome.error is None:
                self._failed_rounds = 0
            else:
                self._failed_rounds += 1
                self._logger.debug(
                    "link %s: poll round %d failed: %s",
                    self.name,
                    self._failed_rounds,
                    outcome.error,
                )
                if self._failed_rounds >= self.settings.failures_before_offline:
                    self._connection_lost(
                        f"{self._failed_rounds} poll rounds failed: {outcome.error}"
                    )
                    return
            await asyncio.sleep(self.settings.poll_interval_s)

    async def _poll_round(self) -> _RoundOutcome:
        """Fetch every subscribed path once and deliver what arrives."""
        outcome = _RoundOutcome()
        refused: dict[str, AuthError] = {}
        for path in list(self.subscriptions):
            try:
                value = await self.request("GET", path)
            except PayloadError as err:
                outcome.reached = outcome.token_works = True
                self.payload_errors.record(err, path)
                continue
            except AuthError as err:
                # Judged after the round: whether the token is the problem
                # depends on what the other paths answered.
                outcome.reached = True
                refused[path] = err
                continue
            except HttpStatusError as err:
                # 4xx: the device is there but dislikes this path; 5xx: it is
                # there but failing, which counts towards going offline.
                if device_reached(err):
                    outcome.reached = outcome.token_works = True
                    self._path_problem(path, err.status, "source")
                else:
                    outcome.error = err
                continue
            except TransportError as err:
                outcome.error = err
                continue
            outcome.reached = outcome.token_works = True
            if self._path_problems.pop(path, None) is not None:
                self._logger.info("link %s: %s answers again", self.name, path)
            sub = self.subscriptions.get(path)
            if sub is not None:  # None: unsubscribed while the request was in flight
                self._deliver(sub, value, key=path)
        if outcome.token_works:
            self._relogins.token_worked()
        if refused:
            if self._token is None or self._token_fresh or outcome.token_works:
                # The token works (or there is none to renew): these paths are
                # refused to this user, whatever the token.
                for path, refusal in refused.items():
                    self._path_problem(path, _status_of(refusal), "source")
            else:
                outcome.suspect_token = refused
        self._token_fresh = False
        return outcome

    async def _renew_token(self, refused: Mapping[str, AuthError]) -> bool:
        """Every path polled was refused with a token that worked before: it
        may have expired. Log in again in place if the throttle allows it
        (else the paths are reported as refused). False if the link was lost."""
        now = self._clock()
        session = self._session.current
        if not self._relogins.allowed(now) or session is None:
            for path, refusal in refused.items():
                self._path_problem(path, _status_of(refusal), "source")
            return True
        self._relogins.logged_in(now, self._rand())
        self._logger.info(
            "link %s: %s refused the token; logging in again", self.name, ", ".join(refused)
        )
        try:
            await self._login(session)
        except AuthError as err:
            # The credentials themselves are refused now: the reconnect's
            # login finds the same and stops the link (fatal_error).
            self._connection_lost(f"login refused: {err}")
            return False
        except TransportError as err:
            self._logger.debug("link %s: login to renew the token failed: %s", self.name, err)
        return True

    def _path_problem(self, path: str, status: int, key: str) -> None:
        """Report a path the device refuses: a warning when it starts (not
        every poll), the link's ``last_error`` and the path's entry in
        :attr:`source_problems`, so the status and the values say it."""
        if status in AUTH_STATUSES and self.settings.login is None:
            why = "the device wants a login for this path; add username and password to the link"
        elif status in AUTH_STATUSES:
            why = (
                "the login works but this user may not read this path; "
                f"give the user access on the device or check the link's {key} in apps.yaml"
            )
        else:
            why = (
                "the device is reachable but refuses this path; "
                f"check the link's {key} in apps.yaml"
            )
        text = f"{path} answered HTTP {status}: {why}"
        known = self._path_problems.get(path)
        if known is None or known[0] != status:
            self._path_problems[path] = (status, text)
            self._logger.warning("link %s: %s", self.name, text)
        self._health.problem(text)


def _status_of(err: AuthError) -> int:
    """The HTTP status behind a refusal (401 when it is not known)."""
    cause = err.__cause__
    status = getattr(cause, "status", None)
    return status if isinstance(status, int) else 401


@dataclass
class _RoundOutcome:
    """What one poll round found out."""

    reached: bool = False  # some request got an answer from the device
    error: TransportError | None = None  # the last failure to reach it
    token_works: bool = False  # some request was answered with something but 401/403
    # Paths refused with a token that may have expired (nothing proved it this round).
    suspect_token: Mapping[str, AuthError] | None = None
