"""TLS listeners: ``ssl:`` endpoint strings with a minimum version and client CAs.

Twisted's own ``ssl:`` endpoint parser neither raises the minimum TLS version
nor verifies client certificates, so the service parses ``ssl:`` strings
itself, with the same syntax and keys (``port``, ``interface``, ``backlog``,
``privateKey``, ``certKey``, ``extraCertChain``, ``dhParameters``), and builds
the :class:`~twisted.internet.ssl.CertificateOptions` with:

- a minimum of TLS 1.2, or 1.3 when the operator asks for it;
- when a client CA file is set, a request for the client's certificate, a
  handshake that fails for a certificate those CAs did not sign and, when
  required, for a client that sends none.

The verified client certificate is what the transport's
``getPeerCertificate()`` returns, and the broker hands it to the
authenticator as ``AuthRequest.peer_certificate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.python.filepath import FilePath

from .config import ConfigError

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

_KNOWN_KEYS = (
    "port",
    "interface",
    "backlog",
    "privateKey",
    "certKey",
    "extraCertChain",
    "dhParameters",
)


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    """The TLS settings that apply to every ``ssl:`` listener."""

    min_version: str = "1.2"
    #: PEM file of the CAs that sign client certificates, or None to not ask.
    client_ca: str | None = None
    require_client_cert: bool = False


def is_tls_description(description: str) -> bool:
    """Return True for an ``ssl:`` endpoint string, which the service builds itself."""
    return description.split(":", 1)[0] == "ssl"


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """Split an endpoint string into positional and keyword arguments.

    The syntax is Twisted's: arguments are separated by ``:``, a keyword
    argument is ``key=value``, and a backslash makes the next character
    literal (``\\:`` is a colon inside a value).  The first positional
    argument is the endpoint type.
    """
    arguments: list[list[tuple[str, bool]]] = [[]]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            escaped = next(characters, None)
            if escaped is None:
                raise ValueError("the string ends with a lone backslash")
            arguments[-1].append((escaped, True))
        elif character == ":":
            arguments.append([])
        else:
            arguments[-1].append((character, False))

    positional: list[str] = []
    keywords: dict[str, str] = {}
    for argument in arguments:
        split_at = next(
            (
                i
                for i, (char, escaped) in enumerate(argument)
                if char == "=" and not escaped
            ),
            None,
        )
        text = "".join(char for char, _ in argument)
        if split_at is None:
            positional.append(text)
        else:
            key = "".join(char for char, _ in argument[:split_at])
            keywords[key] = "".join(char for char, _ in argument[split_at + 1 :])
    return positional, keywords


def _of(description: str) -> str:
    """Return " of 'DESCRIPTION'", which names the listener in an error message."""
    return f" of {description!r}" if description else ""


def _openssl_reason(error: Exception) -> str:
    """Return the reasons of an OpenSSL error queue, such as 'key values mismatch'."""
    queue = error.args[0] if isinstance(error, SSL.Error) and error.args else None
    if isinstance(queue, list):
        reasons = [entry[-1] for entry in queue if isinstance(entry, tuple) and entry]
        if reasons:
            return "; ".join(str(reason) for reason in reasons)
    return str(error)


def _read(path: str, what: str, description: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise ConfigError(
            "--listen", f"{what} file {path!r}{_of(description)} not found"
        ) from None
    except OSError as error:
        raise ConfigError(
            "--listen",
            f"cannot read {what} file {path!r}{_of(description)}: {error.strerror}",
        ) from None


def _load_certificates(
    data: bytes, path: str, setting: str, description: str = ""
) -> list[crypto.X509]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ConfigError(
            setting, f"{path!r}{_of(description)} contains no PEM certificate"
        )
    return [crypto.X509.from_cryptography(certificate) for certificate in certificates]


def _load_private_key(data: bytes, path: str, description: str) -> crypto.PKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            "--listen",
            f"private key {path!r}{_of(description)} is encrypted; give an "
            "unencrypted PEM key and protect it with file permissions",
        ) from None
    except ValueError:
        raise ConfigError(
            "--listen", f"{path!r}{_of(description)} contains no PEM private key"
        ) from None
    return crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]


def _check_dh_parameters(path: str, description: str) -> None:
    """Load the file the way Twisted will, so that a bad one is named at start-up."""
    _read(path, "dhParameters", description)
    try:
        SSL.Context(SSL.TLS_SERVER_METHOD).load_tmp_dh(path.encode())
    except SSL.Error as error:
        raise ConfigError(
            "--listen",
            f"invalid dhParameters file {path!r}{_of(description)} "
            f"({_openssl_reason(error)}); give PEM Diffie-Hellman parameters of "
            "at least 2048 bits, or leave dhParameters out to use ECDHE only",
        ) from None


def load_client_cas(path: str) -> list[crypto.X509]:
    """Load the CA certificates of ``--tls-client-ca``."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise ConfigError(
            "--tls-client-ca", f"cannot read {path!r}: {error.strerror}"
        ) from None
    return _load_certificates(data, path, "--tls-client-ca")


def build_certificate_options(
    private_key_path: str,
    certificate_path: str,
    policy: TLSPolicy,
    *,
    extra_chain_path: str | None = None,
    dh_parameters_path: str | None = None,
    description: str = "",
) -> ssl.CertificateOptions:
    """Build the server context factory of one TLS listener.

    Raises :class:`ConfigError` when a file is missing or unreadable, holds
    no key or certificate, or the key does not belong to the certificate.
    """
    key = _load_private_key(
        _read(private_key_path, "private key", description),
        private_key_path,
        description,
    )
    certificates = _load_certificates(
        _read(certificate_path, "certificate", description),
        certificate_path,
        "--listen",
        description,
    )
    # A certKey file may carry the chain after the server certificate.
    extra_chain = certificates[1:]
    if extra_chain_path is not None:
        data = _read(extra_chain_path, "extraCertChain", description)
        extra_chain += _load_certificates(
            data, extra_chain_path, "--listen", description
        )

    arguments: dict[str, Any] = {
        "privateKey": key,
        "certificate": certificates[0],
        "extraCertChain": extra_chain or None,
        "raiseMinimumTo": _VERSIONS[policy.min_version],
    }
    if dh_parameters_path is not None:
        _check_dh_parameters(dh_parameters_path, description)
        arguments["dhParameters"] = ssl.DiffieHellmanParameters.fromFile(
            FilePath(dh_parameters_path)
        )
    if policy.client_ca is not None:
        arguments["verify"] = True
        arguments["caCerts"] = load_client_cas(policy.client_ca)
        arguments["requireCertificate"] = policy.require_client_cert

    options = ssl.CertificateOptions(**arguments)
    try:
        options.getContext()
    except Exception as error:
        raise ConfigError(
            "--listen",
            f"cannot use the key {private_key_path!r} with the certificate "
            f"{certificate_path!r}{_of(description)}: {_openssl_reason(error)}",
        ) from None
    return options


def build_tls_endpoint(
    reactor: Any, description: str, policy: TLSPolicy
) -> SSL4ServerEndpoint:
    """Build the endpoint of an ``ssl:`` description with ``policy`` applied."""
    try:
        positional, keywords = split_description(description)
    except ValueError as error:
        raise ConfigError(
            "--listen", f"invalid endpoint {description!r}: {error}"
        ) from None

    unknown = sorted(set(keywords) - set(_KNOWN_KEYS))
    if unknown:
        hint = ""
        if "sslmethod" in unknown:
            hint = " (use --tls-min-version to choose TLS versions)"
        raise ConfigError(
            "--listen",
            f"unknown key {unknown[0]!r} in {description!r}{hint}; "
            f"ssl: endpoints take {', '.join(_KNOWN_KEYS)}",
        )
    if len(positional) > 2:
        raise ConfigError(
            "--listen",
            f"too many arguments in {description!r}; expected ssl:PORT:key=value...",
        )

    port_text = positional[1] if len(positional) == 2 else keywords.get("port")
    private_key = keywords.get("privateKey")
    if port_text is None or private_key is None:
        raise ConfigError(
            "--listen",
            f"{description!r} needs a port and privateKey, as in "
            "ssl:8883:privateKey=server.key:certKey=server.pem",
        )
    port = _number(port_text, "port", description, 0, 65535)
    backlog = _number(keywords.get("backlog", "50"), "backlog", description, 1, None)

    options = build_certificate_options(
        private_key,
        keywords.get("certKey", private_key),
        policy,
        extra_chain_path=keywords.get("extraCertChain"),
        dh_parameters_path=keywords.get("dhParameters"),
        description=description,
    )
    return SSL4ServerEndpoint(
        reactor, port, options, backlog=backlog, interface=keywords.get("interface", "")
    )


def _number(
    text: str, what: str, description: str, minimum: int, maximum: int | None
) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(
            "--listen",
            f"invalid {what} {text!r} in {description!r}; expected a whole number",
        )
    return number
