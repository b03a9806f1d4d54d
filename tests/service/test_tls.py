"""TLS listeners: ssl: parsing, minimum version, client certificates, chains.

Each handshake test runs a real TLS listener on loopback in the test's
reactor and a blocking ``ssl`` client in a thread.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread

from mqttauth.service.config import ConfigError
from mqttauth.service.tls import (
    TLSPolicy,
    build_certificate_options,
    build_tls_endpoint,
    split_description,
)
from tests.support.tls import PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


class PeerReport(Protocol):
    """Send the peer certificate's common name in reply to the first bytes."""

    def dataReceived(self, data: bytes) -> None:
        certificate = self.transport.getPeerCertificate()  # type: ignore[union-attr]
        name = b"-" if certificate is None else certificate.get_subject().CN.encode()
        self.transport.write(b"cn:" + name)  # type: ignore[union-attr]


@dataclass
class Outcome:
    version: str | None = None
    answer: bytes | None = None
    error: str | None = None


def handshake(
    port: int,
    ca: Path,
    *,
    maximum: ssl.TLSVersion | None = None,
    certificate: tuple[Path, Path] | None = None,
) -> Outcome:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(ca))
    if maximum is not None:
        context.maximum_version = maximum
        if maximum < ssl.TLSVersion.TLSv1_2:
            # Let the client offer old versions, so that the server decides.
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if certificate is not None:
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"hello")
                answer = tls.recv(100)
                if not answer:
                    return Outcome(version=tls.version(), error="closed")
                return Outcome(version=tls.version(), answer=answer)
    except (ssl.SSLError, OSError) as error:
        return Outcome(error=str(error))


@pytest.fixture
def listen() -> Iterator[object]:
    ports = []

    def start(description: str, policy: TLSPolicy | None = None) -> object:
        policy = policy or TLSPolicy()
        endpoint = build_tls_endpoint(reactor, description, policy)
        factory = Factory.forProtocol(PeerReport)
        d = endpoint.listen(factory)

        def listening(port: object) -> object:
            ports.append(port)
            return port

        return d.addCallback(listening)

    yield start
    for port in ports:
        port.stopListening()


def server(pki: PKI, **extra: str) -> str:
    text = "ssl:0:interface=127.0.0.1"
    text += f":privateKey={pki.server_key}:certKey={pki.server_cert}"
    for key, value in extra.items():
        text += f":{key}={value}"
    return text


@pytest_twisted.inlineCallbacks
def test_tls12_accepted(pki: PKI, listen) -> Iterator[object]:
    port = yield listen(server(pki))
    outcome = yield deferToThread(
        handshake, port.getHost().port, pki.ca_cert, maximum=ssl.TLSVersion.TLSv1_2
    )
    assert outcome.version == "TLSv1.2"
    assert outcome.answer == b"cn:-"


@pytest_twisted.inlineCallbacks
def test_tls11_rejected(pki: PKI, listen) -> Iterator[object]:
    port = yield listen(server(pki))
    outcome = yield deferToThread(
        handshake, port.getHost().port, pki.ca_cert, maximum=ssl.TLSVersion.TLSv1_1
    )
    assert outcome.answer is None
    # The server's alert, not a client that could not offer TLS 1.1.
    assert "PROTOCOL_VERSION" in (outcome.error or "").upper().replace(" ", "_")


@pytest_twisted.inlineCallbacks
def test_min_tls13_rejects_tls12(pki: PKI, listen) -> Iterator[object]:
    port = yield listen(server(pki), TLSPolicy(min_version="1.3"))
    outcome = yield deferToThread(
        handshake, port.getHost().port, pki.ca_cert, maximum=ssl.TLSVersion.TLSv1_2
    )
    assert outcome.answer is None
    assert "PROTOCOL_VERSION" in (outcome.error or "").upper().replace(" ", "_")


@pytest_twisted.inlineCallbacks
def test_min_tls13_accepts_tls13(pki: PKI, listen) -> Iterator[object]:
    port = yield listen(server(pki), TLSPolicy(min_version="1.3"))
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert outcome.version == "TLSv1.3"


def test_minimum_sets_no_tls11_option(pki: PKI) -> None:
    options = build_certificate_options(
        str(pki.server_key), str(pki.server_cert), TLSPolicy()
    )
    flags = options.getContext().set_options(0)
    assert flags & SSL.OP_NO_TLSv1_1
    assert not flags & SSL.OP_NO_TLSv1_2


@pytest_twisted.inlineCallbacks
def test_client_certificate_reaches_transport(pki: PKI, listen) -> Iterator[object]:
    policy = TLSPolicy(client_ca=str(pki.ca_cert), require_client_cert=True)
    port = yield listen(server(pki), policy)
    outcome = yield deferToThread(
        handshake,
        port.getHost().port,
        pki.ca_cert,
        certificate=(pki.client_cert, pki.client_key),
    )
    assert outcome.answer == b"cn:device-1"


@pytest_twisted.inlineCallbacks
def test_required_client_certificate_missing(pki: PKI, listen) -> Iterator[object]:
    policy = TLSPolicy(client_ca=str(pki.ca_cert), require_client_cert=True)
    port = yield listen(server(pki), policy)
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert outcome.answer is None
    assert outcome.error is not None


@pytest_twisted.inlineCallbacks
def test_optional_client_certificate_missing(pki: PKI, listen) -> Iterator[object]:
    policy = TLSPolicy(client_ca=str(pki.ca_cert), require_client_cert=False)
    port = yield listen(server(pki), policy)
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert outcome.answer == b"cn:-"


@pytest_twisted.inlineCallbacks
def test_untrusted_client_certificate(pki: PKI, listen) -> Iterator[object]:
    policy = TLSPolicy(client_ca=str(pki.ca_cert), require_client_cert=False)
    port = yield listen(server(pki), policy)
    outcome = yield deferToThread(
        handshake,
        port.getHost().port,
        pki.ca_cert,
        certificate=(pki.other_client_cert, pki.other_client_key),
    )
    assert outcome.answer is None
    assert outcome.error is not None


@pytest_twisted.inlineCallbacks
def test_extra_cert_chain_sent(pki: PKI, listen) -> Iterator[object]:
    description = (
        f"ssl:0:interface=127.0.0.1:privateKey={pki.chained_server_key}"
        f":certKey={pki.chained_server_cert}:extraCertChain={pki.intermediate_cert}"
    )
    port = yield listen(description)
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert outcome.answer == b"cn:-"


@pytest_twisted.inlineCallbacks
def test_missing_chain_fails_verification(pki: PKI, listen) -> Iterator[object]:
    description = (
        f"ssl:0:interface=127.0.0.1:privateKey={pki.chained_server_key}"
        f":certKey={pki.chained_server_cert}"
    )
    port = yield listen(description)
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")


@pytest_twisted.inlineCallbacks
def test_chain_inside_cert_file(pki: PKI, listen, tmp_path: Path) -> Iterator[object]:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        pki.chained_server_cert.read_bytes() + pki.intermediate_cert.read_bytes()
    )
    description = (
        "ssl:port=0:interface=127.0.0.1"
        f":privateKey={pki.chained_server_key}:certKey={bundle}"
    )
    port = yield listen(description)
    outcome = yield deferToThread(handshake, port.getHost().port, pki.ca_cert)
    assert outcome.answer == b"cn:-"


def test_split_description_escapes() -> None:
    positional, keywords = split_description(
        r"ssl:8883:privateKey=C\:\\k\=1.pem:interface=::1"
    )
    assert positional == ["ssl", "8883", "", "1"]
    assert keywords == {"privateKey": "C:\\k=1.pem", "interface": ""}


def test_split_description_escaped_colons() -> None:
    _, keywords = split_description(r"ssl:8883:interface=\:\:1")
    assert keywords == {"interface": "::1"}


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (":sslmethod=TLSv1_METHOD", "use --tls-min-version"),
        (":colour=blue", "unknown key 'colour'"),
        (":backlog=many", "invalid backlog 'many'"),
    ],
)
def test_endpoint_argument_errors(pki: PKI, tail: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_tls_endpoint(reactor, server(pki) + tail, TLSPolicy())


def test_endpoint_needs_private_key() -> None:
    with pytest.raises(ConfigError, match="needs a port and privateKey"):
        build_tls_endpoint(reactor, "ssl:8883", TLSPolicy())


def test_endpoint_bad_port(pki: PKI) -> None:
    with pytest.raises(ConfigError, match="invalid port '88x'"):
        build_tls_endpoint(reactor, f"ssl:88x:privateKey={pki.server_key}", TLSPolicy())


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="private key file .* not found"):
        build_tls_endpoint(
            reactor, f"ssl:0:privateKey={tmp_path}/none.key", TLSPolicy()
        )


def test_key_without_certificate(pki: PKI) -> None:
    # certKey defaults to privateKey, which contains no certificate here.
    with pytest.raises(ConfigError, match="contains no PEM certificate"):
        build_tls_endpoint(reactor, f"ssl:0:privateKey={pki.server_key}", TLSPolicy())


def test_key_of_other_certificate(pki: PKI) -> None:
    with pytest.raises(ConfigError, match="cannot use the key"):
        build_certificate_options(
            str(pki.client_key), str(pki.server_cert), TLSPolicy()
        )


def test_encrypted_key_rejected(pki: PKI, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match="is encrypted"):
        build_certificate_options(str(encrypted), str(pki.server_cert), TLSPolicy())


def test_client_ca_without_certificate(pki: PKI) -> None:
    policy = TLSPolicy(client_ca=str(pki.server_key))
    with pytest.raises(
        ConfigError, match="^--tls-client-ca: .* contains no PEM certificate"
    ):
        build_certificate_options(str(pki.server_key), str(pki.server_cert), policy)


def test_pki_server_names(pki: PKI) -> None:
    certificate = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("private_key", "certificate"),
    [
        ("junk", "server"),
        ("server", "junk"),
        ("server", "client"),
        ("directory", "server"),
    ],
)
def test_file_errors_name_listener(
    pki: PKI, tmp_path: Path, private_key: str, certificate: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM\n")
    keys = {"junk": junk, "server": pki.server_key, "directory": tmp_path}
    certificates = {"junk": junk, "server": pki.server_cert, "client": pki.client_cert}
    description = (
        f"ssl:0:privateKey={keys[private_key]}:certKey={certificates[certificate]}"
    )
    with pytest.raises(ConfigError) as raised:
        build_tls_endpoint(reactor, description, TLSPolicy())
    assert raised.value.setting == "--listen"
    assert repr(description) in raised.value.message


def test_invalid_dh_parameters_named(pki: PKI, tmp_path: Path) -> None:
    parameters = tmp_path / "dh.pem"
    parameters.write_text("not PEM\n")
    description = server(pki) + f":dhParameters={parameters}"
    with pytest.raises(ConfigError) as raised:
        build_tls_endpoint(reactor, description, TLSPolicy())
    assert "invalid dhParameters file" in raised.value.message
    assert "cannot use the key" not in raised.value.message
    assert repr(description) in raised.value.message
