"""MqttLink over TLS against a real mosquitto with a throwaway CA: the
broker's certificate is verified by default, and only an explicit opt-out
connects to a broker the link cannot verify."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gridwatch.transport.errors import ConnectError
from gridwatch.transport.mqtt_link import MqttLink, MqttSettings
from tests.support.mosquitto import Mosquitto
from tests.transport.mqtt_helpers import FAST_BACKOFF, Inbox, unique

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, Path]]:
    """A TLS-only mosquitto whose certificate (for 127.0.0.1 and localhost)
    is signed by a CA made here; yields the broker and the CA file."""
    work = tmp_path_factory.mktemp("mqtt-tls")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Key usage on the CA and the issuer's key id on the leaf: Python 3.13's
    # default context verifies strictly (VERIFY_X509_STRICT) and refuses
    # certificates without them (Debian 13's python3 is 3.13).
    _openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=gridwatch test CA",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)  # fmt: skip
    _openssl("req", *curve, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=work)  # fmt: skip
    (work / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2",
             "-extfile", "san.ext", cwd=work)  # fmt: skip
    with Mosquitto(
        work,
        extra_config=[f"certfile {work / 'server.pem'}", f"keyfile {work / 'server.key'}"],
    ) as broker:
        yield broker, work / "ca.pem"


@pytest.fixture
async def links() -> AsyncIterator[list[MqttLink]]:
    made: list[MqttLink] = []
    yield made
    for link in made:
        await link.disconnect()


def _link(links: list[MqttLink], broker: Mosquitto, **settings: object) -> MqttLink:
    link = MqttLink(
        "tls",
        MqttSettings(host=broker.host, port=broker.port, tls=True, **settings),  # type: ignore[arg-type]
        backoff=FAST_BACKOFF,
    )
    links.append(link)
    return link


async def test_verified_tls_roundtrip_with_ca_file(
    tls_broker: tuple[Mosquitto, Path], links: list[MqttLink]
) -> None:
    broker, ca = tls_broker
    link = _link(links, broker, ca_file=str(ca))
    inbox = Inbox()
    topic = unique("tls")
    await link.subscribe(topic, inbox, qos=1)
    await link.connect(timeout=10)
    await link.publish(topic, b"secret reading", qos=1)
    await inbox.wait_for(lambda i: i.payloads == [b"secret reading"])


async def test_unknown_ca_is_refused_by_default(
    tls_broker: tuple[Mosquitto, Path], links: list[MqttLink]
) -> None:
    broker, _ = tls_broker
    link = _link(links, broker)  # system CAs do not know our test CA
    with pytest.raises(ConnectError, match="not trusted"):
        await link.connect(timeout=10)
    assert not link.connected


async def test_insecure_opt_out_connects_without_verification(
    tls_broker: tuple[Mosquitto, Path], links: list[MqttLink]
) -> None:
    broker, _ = tls_broker
    link = _link(links, broker, tls_insecure=True)
    await link.connect(timeout=10)
    assert link.connected


async def test_plain_mqtt_to_a_tls_port_fails_cleanly(
    tls_broker: tuple[Mosquitto, Path], links: list[MqttLink]
) -> None:
    broker, _ = tls_broker
    link = MqttLink("plain", MqttSettings(host=broker.host, port=broker.port))
    links.append(link)
    with pytest.raises(ConnectError):
        await link.connect(timeout=5)
