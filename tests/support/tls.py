"""Make a test PKI with ``cryptography``: CAs, server and client certificates.

:func:`make_pki` writes PEM files into a folder and returns their paths::

    pki = make_pki(tmp_path)
    listen = f"ssl:0:privateKey={pki.server_key}:certKey={pki.server_cert}"
    client.tls_set(ca_certs=str(pki.ca_cert))

The PKI has a root CA that signs the server certificate and the client
certificate directly, an intermediate CA under the root that signs a second
server certificate (to test ``extraCertChain``), and an unrelated CA with a
client certificate of its own (a client the broker must reject).  Server
certificates name ``localhost``, ``127.0.0.1`` and ``::1``.  Keys are EC P-256
and unencrypted; certificates are valid from one hour ago for ten days.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, in memory."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files :func:`make_pki` wrote."""

    directory: Path
    #: Root CA certificate: the trust anchor for clients and for client certs.
    ca_cert: Path
    ca_key: Path
    #: Server certificate signed by the root, and its key.
    server_cert: Path
    server_key: Path
    #: Intermediate CA certificate (signed by the root).
    intermediate_cert: Path
    #: Server certificate signed by the intermediate, without the chain, and its key.
    chained_server_cert: Path
    chained_server_key: Path
    #: Client certificate signed by the root, and its key; its CN is "device-1".
    client_cert: Path
    client_key: Path
    #: A CA the broker does not trust, and a client certificate it signed.
    other_ca_cert: Path
    other_client_cert: Path
    other_client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mqttauth tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alternative_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue(
    common_name: str,
    issuer: Issued | None = None,
    *,
    is_ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> Issued:
    """Create a key and its certificate, signed by ``issuer`` or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_key = key if issuer is None else issuer.key
    issuer_name = _name(common_name) if issuer is None else issuer.certificate.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if server_names:
        builder = builder.add_extension(
            _subject_alternative_names(server_names), critical=False
        )
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    certificate = builder.sign(signer_key, hashes.SHA256())
    return Issued(certificate, key)


def write_certificate(path: Path, *certificates: x509.Certificate) -> Path:
    """Write ``certificates`` to ``path`` as concatenated PEM blocks."""
    path.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    )
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """Write ``key`` to ``path`` as unencrypted PKCS#8 PEM, mode 0600."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def make_pki(directory: Path) -> PKI:
    """Create the test PKI described in the module docstring under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = issue("mqttauth test root CA", is_ca=True)
    server = issue("localhost", root, server_names=SERVER_NAMES)
    intermediate = issue("mqttauth test intermediate CA", root, is_ca=True)
    chained_server = issue("localhost", intermediate, server_names=SERVER_NAMES)
    client = issue("device-1", root, client=True)
    other_ca = issue("unrelated CA", is_ca=True)
    other_client = issue("intruder", other_ca, client=True)
    return PKI(
        directory=directory,
        ca_cert=write_certificate(directory / "ca.pem", root.certificate),
        ca_key=write_key(directory / "ca.key", root.key),
        server_cert=write_certificate(directory / "server.pem", server.certificate),
        server_key=write_key(directory / "server.key", server.key),
        intermediate_cert=write_certificate(
            directory / "intermediate.pem", intermediate.certificate
        ),
        chained_server_cert=write_certificate(
            directory / "chained-server.pem", chained_server.certificate
        ),
        chained_server_key=write_key(
            directory / "chained-server.key", chained_server.key
        ),
        client_cert=write_certificate(directory / "client.pem", client.certificate),
        client_key=write_key(directory / "client.key", client.key),
        other_ca_cert=write_certificate(
            directory / "other-ca.pem", other_ca.certificate
        ),
        other_client_cert=write_certificate(
            directory / "other-client.pem", other_client.certificate
        ),
        other_client_key=write_key(directory / "other-client.key", other_client.key),
    )
