"""MQTT broker settings and the TLS context built from them.

Pure: no paho import and no network, so settings can be built and checked
(and tested) without a broker. :mod:`gridwatch.transport.mqtt_link` uses them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Literal

from gridwatch.transport.errors import ConnectError

__all__ = ["MqttProtocol", "MqttSettings", "build_tls_context"]

MqttProtocol = Literal["3.1.1", "5"]


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker. Immutable; built from the app's config.

    Args:
        host: broker host name or address.
        port: broker port (8883 is usual with TLS).
        client_id: MQTT client id; empty means a random ``gridwatch-...`` id,
            kept for the link's life (required for a persistent session).
        username: user name, or None for anonymous.
        password: password (never logged, hidden from repr).
        keepalive_s: MQTT keepalive; a dead path is noticed within about
            two to three of these.
        protocol: ``"3.1.1"`` or ``"5"``.
        tls: use TLS. Certificates and host name are verified unless
            ``tls_insecure`` is set.
        ca_file: CA bundle to verify the broker with (default: system CAs).
        tls_insecure: turn verification off (a self-signed broker on a LAN);
            never the default.
        availability_topic: if set, the last will publishes ``payload_offline``
            there (retained) when the link dies, and ``payload_online`` is
            published (retained) after every connect.
        default_qos: QoS for publish/subscribe when the caller gives none.
        clean_session: False keeps the broker session (queued messages)
            across reconnects; needs a stable ``client_id``.
        session_expiry_s: MQTT 5 only: how long the broker keeps a
            non-clean session after a disconnect (MQTT 3.1.1 brokers keep
            it until they are told otherwise or restart without persistence).
        request_timeout_s: how long to wait for PUBACK / SUBACK / UNSUBACK.
        socket_connect_timeout_s: limit for the TCP (and TLS) connect.
    """

    host: str
    port: int = 1883
    client_id: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 60
    protocol: MqttProtocol = "3.1.1"
    tls: bool = False
    ca_file: str | None = None
    tls_insecure: bool = False
    availability_topic: str | None = None
    payload_online: str = "online"
    payload_offline: str = "offline"
    default_qos: int = 0
    clean_session: bool = True
    session_expiry_s: int = 3600
    request_timeout_s: float = 10.0
    socket_connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not in 1..65535")
        # 0 would switch keepalive off, and with it the only way to notice a
        # silently dead path (blackhole): not allowed.
        if not 1 <= self.keepalive_s <= 65535:
            raise ValueError(f"keepalive_s {self.keepalive_s} is not in 1..65535")
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol {self.protocol!r} is not '3.1.1' or '5'")
        if self.default_qos not in (0, 1, 2):
            raise ValueError(f"default_qos {self.default_qos} is not 0, 1 or 2")
        if not self.clean_session and not self.client_id:
            raise ValueError("a persistent session (clean_session=False) needs a client_id")
        if self.request_timeout_s <= 0 or self.socket_connect_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if self.protocol == "5" and not self.clean_session and self.session_expiry_s < 1:
            # MQTT 5: an expiry of 0 ends the session at disconnect, which is
            # a clean session in all but name.
            raise ValueError("a persistent MQTT 5 session needs session_expiry_s >= 1")

    def target(self) -> str:
        """Where the link points, safe to show."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def build_tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings`` (None without TLS).

    Verification (chain and host name) is on unless ``tls_insecure``. Loads
    CA files: call it off the event loop.

    Raises:
        ConnectError: the CA file cannot be read.
    """
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as err:
        raise ConnectError(f"cannot load CA file {settings.ca_file}: {err}") from err
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
