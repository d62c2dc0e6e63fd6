"""One connection lifecycle, four transports (MQTT, WebSocket, HTTP, BLE).

Import a transport from its module (``gridwatch.transport.mqtt_link``...) so a user who
does not need BLE never imports bleak.
"""

from gridwatch.transport.backoff_policy import (
    BackoffPolicy,
    TimeoutPolicy,
    adaptive_timeout,
    backoff_delay,
)
from gridwatch.transport.errors import (
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
from gridwatch.transport.health import HealthPolicy, HealthSnapshot, LinkState
from gridwatch.transport.link import Link, Message, MessageCallback, Subscription

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
