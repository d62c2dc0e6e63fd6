"""One connection lifecycle, four transports (MQTT, WebSocket, HTTP, BLE).

Import a transport from its module (``lib.transport.mqtt``...) so a user who
does not need BLE never imports bleak.
"""

from lib.transport.backoff import BackoffPolicy, TimeoutPolicy, adaptive_timeout, backoff_delay
from lib.transport.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    LinkClosedError,
    NotConnectedError,
    PayloadError,
    RequestError,
    RequestTimeout,
    TransportError,
    UnsupportedHostError,
)
from lib.transport.health import HealthPolicy, HealthSnapshot, LinkState
from lib.transport.link import Link, Message, MessageCallback, Subscription

__all__ = [
    "AuthError",
    "BackoffPolicy",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "HealthPolicy",
    "HealthSnapshot",
    "Link",
    "LinkClosedError",
    "LinkState",
    "Message",
    "MessageCallback",
    "NotConnectedError",
    "PayloadError",
    "RequestError",
    "RequestTimeout",
    "Subscription",
    "TimeoutPolicy",
    "TransportError",
    "UnsupportedHostError",
    "adaptive_timeout",
    "backoff_delay",
]
