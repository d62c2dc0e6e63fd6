"""Settings of the HTTP polling and WebSocket links, and the URL check.

Pure: no aiohttp import, so the link monitor's config can build these (and
tests can check them) without loading a transport.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from gridwatch.transport.payload import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = [
    "HttpPollSettings",
    "LoginSettings",
    "WebSocketSettings",
    "http_url_problem",
    "without_userinfo",
]


def http_url_problem(url: str) -> str | None:
    """What is wrong with a device's base URL, or None if it is usable.

    Usable: ``http`` or ``https``, a host, a port in 1..65535 if one is
    given, brackets that close around an IPv6 address, no spaces.
    """
    if any(c.isspace() for c in url):
        return "a URL has no spaces"
    try:
        parts = urlsplit(url)
        port = parts.port  # parses the port: raises for 99999 or "x"
    except ValueError as err:
        return f"not a valid URL ({err})"
    if parts.scheme not in ("http", "https"):
        return "not an http(s):// URL"
    if not parts.hostname:
        return "the URL has no host"
    if port == 0:
        return "port 0 is not a port (1..65535)"
    if parts.query or parts.fragment:
        return "give the base URL only (no ?query or #fragment)"
    return None


def _require_http_url(url: str) -> None:
    problem = http_url_problem(url)
    if problem is not None:
        raise ValueError(f"base_url {url!r}: {problem}")


def without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: safe to show."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _positive(**values: float) -> None:
    for name, value in values.items():
        # "not (valid)" so a NaN is refused as well.
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class LoginSettings:
    """Credentials for the device's token login (``POST path``
    ``{"username", "password"}`` -> ``{"token"}``)."""

    username: str
    password: str = field(repr=False)  # never in logs or reprs
    path: str = "/api/login"


@dataclass(frozen=True)
class HttpPollSettings:
    """How to reach and poll a device over HTTP.

    Attributes:
        base_url: ``http(s)://host:port`` of the device.
        login: token login, or None for a device without one.
        poll_interval_s: pause between poll rounds (real time: the ``sleep``
            given to the link paces reconnects only).
        request_timeout_s: limit for each HTTP exchange.
        failures_before_offline: consecutive failed poll rounds that count
            as a lost connection. One failed poll is a blip, not an outage:
            reporting it would flap the link's HA entity.
        probe_path: fetched once on connect to prove the device answers
            (without it, and without a login, connect succeeds offline and
            failed polls take the link offline). A 4xx answer (other than
            401/403/408/429) proves the device is there: the link connects
            and its ``last_error`` names the path, as for a poll.
        verify_ssl: verify the device's TLS certificate.
        max_payload_bytes: answers larger than this are dropped and counted.
    """

    base_url: str
    login: LoginSettings | None = None
    poll_interval_s: float = 10.0
    request_timeout_s: float = 10.0
    failures_before_offline: int = 3
    probe_path: str | None = None
    verify_ssl: bool = True
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        _require_http_url(self.base_url)
        _positive(poll_interval_s=self.poll_interval_s, request_timeout_s=self.request_timeout_s)
        if self.failures_before_offline < 1:
            raise ValueError("failures_before_offline must be >= 1")

    def target(self) -> str:
        """Where the link points, safe to show (no user:password@)."""
        return without_userinfo(self.base_url)


@dataclass(frozen=True)
class WebSocketSettings:
    """How to reach a device's WebSocket API.

    Attributes:
        base_url: ``http(s)://host:port`` of the device.
        ws_path: path of the WebSocket endpoint; the token goes in its
            ``token`` query parameter.
        login: token login, or None for a device without one.
        heartbeat_s: ping after this long without traffic; a peer that does
            not pong within half of it is treated as gone.
        receive_timeout_s: backstop for a peer that sends nothing at all
            (default three heartbeat periods; pongs count as traffic).
        request_timeout_s: default limit for :meth:`WebSocketLink.request`.
        http_timeout_s: limit for the login and the WebSocket handshake.
        verify_ssl: verify the device's TLS certificate.
        max_payload_bytes: frames larger than this are dropped and counted.
    """

    base_url: str
    ws_path: str = "/ws"
    login: LoginSettings | None = None
    heartbeat_s: float = 10.0
    receive_timeout_s: float | None = None
    request_timeout_s: float = 10.0
    http_timeout_s: float = 10.0
    verify_ssl: bool = True
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        _require_http_url(self.base_url)
        if self.heartbeat_s <= 0 or self.request_timeout_s <= 0 or self.http_timeout_s <= 0:
            raise ValueError("heartbeat_s, request_timeout_s and http_timeout_s must be > 0")
        if self.receive_timeout_s is not None and self.receive_timeout_s <= self.heartbeat_s:
            raise ValueError("receive_timeout_s must exceed heartbeat_s (pongs count as traffic)")

    @property
    def effective_receive_timeout_s(self) -> float:
        """The receive timeout in use."""
        if self.receive_timeout_s is not None:
            return self.receive_timeout_s
        return 3 * self.heartbeat_s

    def target(self) -> str:
        """Where the link points, safe to show (no user:password@)."""
        return without_userinfo(self.base_url)
