"""The paho-mqtt internals MqttLink builds on are still there.

``_LoopClient`` overrides or replaces private parts of paho 2.1 (buffered
reads, TLS wrap that closes on failure, no-op locks, hard close). A paho
upgrade that renames them would not break loudly on its own: reads would go
slow, a failed TLS handshake would leak a socket. This test breaks loudly.
"""

from __future__ import annotations

import inspect

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.transport.mqtt_link import _PAHO_LOCKS, _LoopClient


@pytest.mark.parametrize("method", ["_sock_recv", "_ssl_wrap_socket", "_sock_close"])
def test_paho_still_has_the_methods_we_override_or_call(method: str) -> None:
    assert callable(getattr(mqtt.Client, method, None))


def test_paho_reads_packets_through_sock_recv() -> None:
    assert "self._sock_recv(" in inspect.getsource(mqtt.Client._packet_read)


def test_paho_wraps_tls_through_ssl_wrap_socket() -> None:
    assert "self._ssl_wrap_socket(" in inspect.getsource(mqtt.Client._create_socket)


@pytest.mark.parametrize("name", _PAHO_LOCKS)
def test_every_lock_we_replace_exists_in_paho(name: str) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    assert hasattr(getattr(client, name), "acquire")


def test_loop_client_replaces_every_paho_lock() -> None:
    client = _LoopClient(CallbackAPIVersion.VERSION2)
    paho_locks = {
        name
        for name, value in vars(mqtt.Client(CallbackAPIVersion.VERSION2)).items()
        if name.endswith("_mutex")
    }
    assert paho_locks == set(_PAHO_LOCKS)
    assert all(type(getattr(client, name)).__name__ == "_NullLock" for name in paho_locks)
