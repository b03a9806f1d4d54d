"""The password-file and acl-file plugins under ``twistd mqttauth``, with real
clients, over TCP and TLS.

The password file is written by Debian's ``mosquitto_passwd``; the clients
are paho-mqtt and ``mosquitto_pub``/``mosquitto_sub``.  The rules:

- alice may read and write ``alice/#`` and read ``public/#``;
- bob may write ``public/#``;
- carol may read ``public/#``;
- everyone may read and write ``devices/{username}/#``.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode

from tests.support.mosquitto_clients import MosquittoSub, mosquitto_pub
from tests.support.pahoclient import MQTTv5, MQTTv311, PahoClient
from tests.support.process import BrokerProcess, start_broker
from tests.support.tls import PKI, make_pki

pytestmark = pytest.mark.e2e

PASSWORDS = {
    "alice": "alice-secret-1",
    "bob": "bob-secret-2",
    "carol": "carol-secret-3",
}

ACL = """\
user alice
topic readwrite alice/#
topic read public/#

user bob
topic write public/#

user carol
topic read public/#

pattern readwrite devices/%u/#
"""


def mosquitto_passwd(path: Path, user: str, password: str) -> None:
    create = [] if path.exists() else ["-c"]
    subprocess.run(
        ["mosquitto_passwd", *create, "-b", str(path), user, password],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("files")
    passwords = folder / "passwd"
    for user, password in PASSWORDS.items():
        mosquitto_passwd(passwords, user, password)
    acl = folder / "acl"
    acl.write_text(ACL)
    return passwords, acl


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class Deployment:
    broker: BrokerProcess
    tls: bool
    pki: PKI

    def paho(
        self, user: str, password: str | None = None, protocol=MQTTv5
    ) -> PahoClient:
        client = PahoClient(self.broker.port, f"{user}-{protocol.name}", protocol)
        client.client.username_pw_set(
            user, PASSWORDS[user] if password is None else password
        )
        if self.tls:
            client.client.tls_set(ca_certs=str(self.pki.ca_cert))
        client.host = "localhost" if self.tls else "127.0.0.1"
        return client

    def mosquitto_args(self, user: str) -> list[str]:
        args = ["-p", str(self.broker.port), "-u", user, "-P", PASSWORDS[user]]
        if self.tls:
            return ["-h", "localhost", "--cafile", str(self.pki.ca_cert), *args]
        return ["-h", "127.0.0.1", *args]


@pytest.fixture(scope="module", params=["tcp", "tls"])
def deployment(
    request: pytest.FixtureRequest, files: tuple[Path, Path], pki: PKI
) -> Iterator[Deployment]:
    passwords, acl = files
    tls = request.param == "tls"
    if tls:
        listen = (
            f"ssl:0:interface=127.0.0.1:privateKey={pki.server_key}:certKey={pki.server_cert}",
        )
    else:
        listen = ("tcp:0:interface=127.0.0.1",)
    options = (
        "--authenticator",
        "password-file",
        "--password-file",
        str(passwords),
        "--authorizer",
        "acl-file",
        "--acl-file",
        str(acl),
    )
    with start_broker(*options, listen=listen) as broker:
        yield Deployment(broker, tls, pki)
    for password in PASSWORDS.values():
        assert password not in broker.log()


@pytest.mark.parametrize("protocol", [MQTTv311, MQTTv5])
def test_paho_allowed_flow(deployment: Deployment, protocol) -> None:
    alice = deployment.paho("alice", protocol=protocol)
    alice.connect()
    granted = alice.subscribe("public/#", qos=1)
    bob = deployment.paho("bob", protocol=protocol)
    bob.connect()
    bob.publish("public/news", b"extra", qos=1)
    message = alice.next_message()
    bob.disconnect()
    alice.disconnect()
    assert granted[0].value == 1
    assert (message.topic, message.payload) == ("public/news", b"extra")


def test_paho_wrong_password(deployment: Deployment) -> None:
    client = deployment.paho("alice", password="wrong")
    _, reason, _ = client.connect()
    client.client.loop_stop()
    assert reason == PahoReasonCode(2, identifier=0x86)


def test_paho_unknown_user_311(deployment: Deployment) -> None:
    client = deployment.paho("alice", password="wrong", protocol=MQTTv311)
    client.client.username_pw_set("mallory", "x")
    _, reason, _ = client.connect()
    client.client.loop_stop()
    assert reason.is_failure


def test_paho_subscribe_denied(deployment: Deployment) -> None:
    bob = deployment.paho("bob")
    bob.connect()
    (code,) = bob.subscribe("public/#", qos=1)
    bob.disconnect()
    assert code.value == 0x87


def test_paho_subscribe_denied_311(deployment: Deployment) -> None:
    bob = deployment.paho("bob", protocol=MQTTv311)
    bob.connect()
    (code,) = bob.subscribe("alice/#", qos=1)
    bob.disconnect()
    assert code.value == 0x80


def test_paho_publish_denied_not_delivered(deployment: Deployment) -> None:
    carol = deployment.paho("carol")
    carol.connect()
    carol.subscribe("public/#", qos=1)
    alice = deployment.paho("alice")
    alice.connect()
    alice.publish("public/forged", b"x", qos=1)
    alice.disconnect()
    quiet = carol.no_message(1.0)
    carol.disconnect()
    assert quiet


def test_paho_pattern_placeholder(deployment: Deployment) -> None:
    carol = deployment.paho("carol")
    carol.connect()
    own = carol.subscribe("devices/carol/#", qos=1)
    other = carol.subscribe("devices/alice/#", qos=1)
    carol.publish("devices/carol/state", b"on", qos=1)
    message = carol.next_message()
    carol.disconnect()
    assert not own[0].is_failure
    assert other[0].value == 0x87
    assert message.topic == "devices/carol/state"


def test_mosquitto_clients_allowed(deployment: Deployment) -> None:
    with MosquittoSub(
        [*deployment.mosquitto_args("alice"), "-t", "alice/#", "-v"]
    ) as sub:
        assert sub.wait_subscribed() == [0]
        result = mosquitto_pub(
            [*deployment.mosquitto_args("alice"), "-t", "alice/x", "-m", "hi"]
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert sub.wait_message() == "alice/x hi"


def test_mosquitto_sub_denied(deployment: Deployment) -> None:
    with MosquittoSub(
        [*deployment.mosquitto_args("bob"), "-V", "mqttv311", "-t", "alice/#", "-v"]
    ) as sub:
        assert sub.wait_subscribed() == [128]


def test_mosquitto_pub_wrong_password(deployment: Deployment) -> None:
    args = deployment.mosquitto_args("alice")
    args[args.index("-P") + 1] = "wrong"
    result = mosquitto_pub([*args, "-t", "alice/x", "-m", "hi"])
    assert result.returncode != 0


def test_failed_tls_handshake_logged(pki: PKI) -> None:
    listen = (
        f"ssl:0:interface=127.0.0.1:privateKey={pki.server_key}"
        f":certKey={pki.server_cert}",
    )
    with start_broker("--authenticator", "anonymous", listen=listen) as broker:
        offset = len(broker.log())
        # The default context trusts the system's CAs, not the test CA.
        context = ssl.create_default_context()
        with socket.create_connection(("127.0.0.1", broker.port), 10) as raw:
            with pytest.raises(ssl.SSLError):
                context.wrap_socket(raw, server_hostname="localhost")
        match = broker.wait_for_log(
            r"TLS handshake with 127\.0\.0\.1:\d+ failed: .*", 10, offset
        )
    assert "failed: " in match.group()
