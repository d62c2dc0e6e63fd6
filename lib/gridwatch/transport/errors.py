"""The suite's transport error types.

Each transport translates its library's exceptions into these at one place
(``raise ... from err``) so callers never see paho, aiohttp or bleak types.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base of every error a link raises."""


class ConnectError(TransportError):
    """A connection attempt failed; the link may retry it."""


class ConnectTimeout(ConnectError):
    """A connection attempt did not finish within its timeout."""


class AuthError(TransportError):
    """Credentials were refused. Retrying would only hammer the device, so
    the reconnect loop stops and surfaces this error instead."""


class LinkClosedError(TransportError):
    """The link was closed by ``disconnect()`` (also raised by a ``connect()``
    that was in progress when ``disconnect()`` was called)."""


class ConnectionLost(TransportError):
    """An established connection dropped; pending requests fail with this."""


class RequestError(TransportError):
    """A request to the device failed or was answered with an error."""


class RequestTimeout(RequestError):
    """A request got no answer in time."""


class NotConnectedError(TransportError):
    """A request or publish was made while the link had no connection."""


class PayloadError(TransportError):
    """A received payload could not be decoded. ``kind`` groups the reason so
    repeats can be counted and logged once per kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class UnsupportedHostError(TransportError):
    """The host lacks what the transport needs (e.g. BLE without BlueZ)."""
