"""Pure parts of the MQTT link: settings validation, TLS defaults, filters."""

from __future__ import annotations

import ssl

import pytest

from gridwatch.transport.errors import ConnectError
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings, build_tls_context, validate_filter


def test_tls_verifies_certificate_and_host_by_default() -> None:
    context = build_tls_context(MqttSettings(host="broker.lan", tls=True))
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_tls_insecure_only_when_asked() -> None:
    context = build_tls_context(MqttSettings(host="broker.lan", tls=True, tls_insecure=True))
    assert context is not None
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False


def test_no_tls_means_no_context() -> None:
    assert build_tls_context(MqttSettings(host="broker.lan")) is None


def test_unreadable_ca_file_is_a_connect_error(tmp_path) -> None:
    settings = MqttSettings(host="broker.lan", tls=True, ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConnectError, match="CA file"):
        build_tls_context(settings)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": ""},
        {"host": "h", "port": 0},
        {"host": "h", "port": 70000},
        {"host": "h", "keepalive_s": 0},
        {"host": "h", "protocol": "3.1"},
        {"host": "h", "default_qos": 3},
        {"host": "h", "clean_session": False},
        {"host": "h", "request_timeout_s": 0},
    ],
)
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        MqttSettings(**kwargs)


def test_password_is_not_in_repr() -> None:
    settings = MqttSettings(host="h", username="u", password="s3cret")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("good", ["a", "a/b", "a/+/c", "+", "#", "a/#", "+/+/#", "$SYS/#"])
def test_valid_filters_pass(good: str) -> None:
    validate_filter(good)


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "#/a", "a/+x"])
def test_invalid_filters_raise(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_filter(bad)


async def test_subscribe_rejects_bad_filter_before_registering() -> None:
    link = MqttLink("t", MqttSettings(host="127.0.0.1"))
    with pytest.raises(ValueError):
        await link.subscribe("a/#/b", lambda m: None)
    with pytest.raises(ValueError):
        await link.subscribe("a", lambda m: None, qos=5)
    assert dict(link.subscriptions) == {}


def test_client_id_is_generated_once_and_kept() -> None:
    link = MqttLink("meter", MqttSettings(host="h"))
    assert link.client_id.startswith("gridwatch-meter-")
    assert MqttLink("m", MqttSettings(host="h", client_id="fixed")).client_id == "fixed"
