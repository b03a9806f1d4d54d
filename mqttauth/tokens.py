"""Sign JWTs for devices: the development key and ``python -m mqttauth token``.

The development key is an EC P-256 private key that ``twistd mqttauth --dev``
creates in its data directory and publishes as a JWKS document.  A token
signed here with that key, the development issuer and the development audience
is accepted by a development broker.  ``--key FILE`` signs with any PEM
private key instead, for brokers configured with that key's public half or
with a JWKS that contains it.

This module is the lower layer of :mod:`mqttauth.dev` and imports no Twisted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc import jwk, jwt

from mqttauth.jwt.keys import HMAC_ALGORITHMS as MIN_SECRET_SIZES

#: ``iss`` of development tokens; the development broker expects exactly this.
DEV_ISSUER = "urn:mqttauth:dev"
#: ``aud`` of development tokens; the development broker expects exactly this.
DEV_AUDIENCE = "mqttauth-dev"
#: Claim that carries the organization, the ACL's ``{organization}``.
DEV_ORGANIZATION_CLAIM = "org"
#: Claim that carries the list of groups, the ACL's ``{group}`` values.
DEV_GROUPS_CLAIM = "groups"
#: File name of the development signing key inside the data directory.
DEV_KEY_FILENAME = "dev-signing-key.pem"
#: Algorithm of the development key.
DEV_ALGORITHM = "ES256"

#: Algorithms each kind of private key can sign with; the first is the default.
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
EC_ALGORITHM_BY_CURVE = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
OKP_ALGORITHMS = {
    "Ed25519": ("Ed25519", "EdDSA"),
    "Ed448": ("Ed448", "EdDSA"),
}


class KeyFileError(Exception):
    """A key file is missing, unreadable, not a private key, or unfit for its use."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key ready to sign, with the JWS algorithm and key id to use."""

    key: jwk.Key
    algorithm: str
    #: ``kid`` header value, or ``None`` for no ``kid`` header.
    key_id: str | None

    def public_jwk(self) -> dict[str, Any]:
        """Return the public JWK with ``kid``, ``alg`` and ``use``, as a JWKS entry.

        Raises :class:`KeyFileError` for an HMAC secret, which has no public half.
        """
        if isinstance(self.key, jwk.OctKey):
            raise KeyFileError("an HMAC secret has no public key to publish")
        document = dict(self.key.as_dict(private=False))
        document.update({"alg": self.algorithm, "use": "sig"})
        if self.key_id is not None:
            document["kid"] = self.key_id
        return document


def default_dev_data_dir() -> Path:
    """Return the development data directory: ``$XDG_DATA_HOME/mqttauth-dev``.

    ``XDG_DATA_HOME`` defaults to ``~/.local/share``, as the XDG Base Directory
    specification defines.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mqttauth-dev"


def dev_key_path(data_dir: Path) -> Path:
    """Return where the development signing key lives in ``data_dir``."""
    return data_dir / DEV_KEY_FILENAME


def create_dev_key(data_dir: Path) -> bool:
    """Create the development signing key in ``data_dir`` unless one exists.

    Returns True when a key was created.  The key is written with mode 0600
    through ``O_EXCL``, so an existing key is never overwritten, even by a
    second process racing this one.  ``data_dir`` is created with mode 0700
    when missing.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(
            dev_key_path(data_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as stream:
        stream.write(pem)
    return True


def load_dev_key(data_dir: Path) -> SigningKey:
    """Load the development signing key from ``data_dir``.

    Its ``kid`` is the key's RFC 7638 thumbprint, which the development JWKS
    uses too.  Raises :class:`KeyFileError` when the key does not exist yet.
    """
    path = dev_key_path(data_dir)
    if not path.exists():
        raise KeyFileError(
            f"no development key at {str(path)!r}: start 'twistd -n mqttauth --dev' "
            f"once to create it, pass --data-dir, or sign with --key FILE"
        )
    return load_key_file(path, DEV_ALGORITHM)


def load_key_file(
    path: Path, algorithm: str | None = None, key_id: str | None = None
) -> SigningKey:
    """Load a PEM private key (or, for HS* algorithms, a secret) from ``path``.

    ``algorithm`` defaults from the key: RS256 for RSA, ES256/ES384/ES512 by
    curve for EC, Ed25519 or Ed448 for EdDSA keys.  For HS256, HS384 and
    HS512 the file's bytes, without one trailing newline, are the secret.
    ``key_id`` defaults to the public key's RFC 7638 thumbprint (none for an
    HMAC secret).  Raises :class:`KeyFileError` with the reason.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise KeyFileError(
            f"cannot read key file {str(path)!r}: {error.strerror}"
        ) from None
    if algorithm in HMAC_ALGORITHMS:
        secret = data[:-1] if data.endswith(b"\n") else data
        if not secret:
            raise KeyFileError(f"key file {str(path)!r} is empty")
        # The broker rejects shorter secrets (RFC 7518 3.2: at least the hash
        # size), so it could never verify such a token.
        minimum = MIN_SECRET_SIZES[algorithm]
        if len(secret) < minimum:
            raise KeyFileError(
                f"{algorithm} needs a secret of at least {minimum} bytes, but "
                f"{str(path)!r} contains {len(secret)}"
            )
        return SigningKey(jwk.OctKey.import_key(secret), algorithm, key_id)

    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(
            f"key file {str(path)!r} is not an unencrypted PEM private key ({error}); "
            f"for an HMAC secret pass --alg HS256"
        ) from None
    key, algorithms = _import_private_key(private_key, data, path)
    chosen = algorithm or algorithms[0]
    if chosen not in algorithms:
        raise KeyFileError(
            f"algorithm {chosen!r} does not fit the key in {str(path)!r}; "
            f"expected one of {', '.join(algorithms)}"
        )
    if key_id is None:
        key_id = key.thumbprint()
    return SigningKey(key, chosen, key_id)


def _import_private_key(
    private_key: Any, pem: bytes, path: Path
) -> tuple[jwk.Key, tuple[str, ...]]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return jwk.RSAKey.import_key(pem), RSA_ALGORITHMS
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        curve = private_key.curve.name
        if curve not in EC_ALGORITHM_BY_CURVE:
            raise KeyFileError(
                f"EC curve {curve!r} of {str(path)!r} is not supported; "
                f"use P-256, P-384 or P-521"
            )
        return jwk.ECKey.import_key(pem), (EC_ALGORITHM_BY_CURVE[curve],)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return jwk.OKPKey.import_key(pem), OKP_ALGORITHMS["Ed25519"]
    if isinstance(private_key, ed448.Ed448PrivateKey):
        return jwk.OKPKey.import_key(pem), OKP_ALGORITHMS["Ed448"]
    raise KeyFileError(
        f"key type {type(private_key).__name__} of {str(path)!r} is not supported; "
        f"use an RSA, EC or Ed25519 private key"
    )


def build_claims(
    *,
    subject: str,
    now: float,
    ttl: int,
    issuer: str | None = None,
    audiences: Sequence[str] = (),
    groups: Sequence[str] = (),
    organization: str | None = None,
    extra: Mapping[str, Any] | None = None,
    groups_claim: str = DEV_GROUPS_CLAIM,
    organization_claim: str = DEV_ORGANIZATION_CLAIM,
) -> dict[str, Any]:
    """Return the claims of a token for ``subject``, valid ``ttl`` seconds from ``now``.

    ``aud`` is a string for one audience and a list for several, and is left
    out for none.  ``groups`` always becomes a list, so a single group reads
    the same as several.  ``extra`` claims are applied last and replace any
    claim of the same name (``exp`` included, to make an expired token).
    """
    issued_at = int(now)
    claims: dict[str, Any] = {}
    if issuer is not None:
        claims["iss"] = issuer
    claims["sub"] = subject
    if len(audiences) == 1:
        claims["aud"] = audiences[0]
    elif audiences:
        claims["aud"] = list(audiences)
    claims["iat"] = issued_at
    claims["exp"] = issued_at + ttl
    claims["jti"] = uuid.uuid4().hex
    if groups:
        claims[groups_claim] = list(groups)
    if organization is not None:
        claims[organization_claim] = organization
    if extra:
        claims.update(extra)
    return claims


def sign_token(signing_key: SigningKey, claims: Mapping[str, Any]) -> str:
    """Return the compact JWS of ``claims``, with ``typ: JWT``, ``alg`` and ``kid``."""
    header: dict[str, Any] = {"typ": "JWT", "alg": signing_key.algorithm}
    if signing_key.key_id is not None:
        header["kid"] = signing_key.key_id
    return jwt.encode(
        header, dict(claims), signing_key.key, algorithms=[signing_key.algorithm]
    )


def sign_dev_token(
    data_dir: Path,
    subject: str,
    *,
    ttl: int = 3600,
    groups: Sequence[str] = (),
    organization: str | None = None,
    now: float | None = None,
) -> str:
    """Return a token that a development broker using ``data_dir`` accepts."""
    claims = build_claims(
        subject=subject,
        now=time.time() if now is None else now,
        ttl=ttl,
        issuer=DEV_ISSUER,
        audiences=[DEV_AUDIENCE],
        groups=groups,
        organization=organization,
    )
    return sign_token(load_dev_key(data_dir), claims)


def _parse_claim(text: str) -> tuple[str, Any]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _parse_subject(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a non-empty name, got {text!r}, because the broker rejects "
            "a token whose principal is empty"
        )
    return text


def _parse_ttl(text: str) -> int:
    try:
        ttl = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole seconds, got {text!r}"
        ) from None
    if ttl <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds, got {ttl}"
        )
    return ttl


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m mqttauth token``."""
    parser = argparse.ArgumentParser(
        prog="python -m mqttauth token",
        description=(
            "Sign a JWT and print it.  Without --key it signs with the development "
            "key of 'twistd mqttauth --dev', and iss and aud default to what the "
            "development broker expects."
        ),
    )
    parser.add_argument(
        "--sub",
        required=True,
        type=_parse_subject,
        metavar="NAME",
        help="subject, the principal ({username})",
    )
    parser.add_argument(
        "--groups",
        action="append",
        default=[],
        metavar="GROUP[,GROUP...]",
        help=f"groups for the {DEV_GROUPS_CLAIM!r} claim (repeatable, comma-separated)",
    )
    parser.add_argument(
        "--org",
        "--organization",
        dest="organization",
        help=f"organization for the {DEV_ORGANIZATION_CLAIM!r} claim",
    )

    parser.add_argument(
        "--ttl",
        type=_parse_ttl,
        default=3600,
        metavar="SECONDS",
        help="seconds until exp (default 3600)",
    )
    parser.add_argument(
        "--aud", action="append", default=None, help="audience; repeatable for a list"
    )
    parser.add_argument("--iss", help="issuer")

    parser.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="PEM private key (or HMAC secret with --alg HS*) to sign with",
    )
    parser.add_argument(
        "--alg",
        help="JWS algorithm (default: from the key type; ES256 for the dev key)",
    )
    parser.add_argument(
        "--kid", help="kid header (default: the key's RFC 7638 thumbprint; '' for none)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"development data directory (default {default_dev_data_dir()})",
    )

    parser.add_argument(
        "--claim",
        action="append",
        type=_parse_claim,
        default=[],
        metavar="NAME=VALUE",
        help='extra claim; VALUE is read as JSON when it parses (5, true, ["a"]), '
        "else as a string; replaces a claim of the same name",
    )
    parser.add_argument(
        "--groups-claim",
        default=DEV_GROUPS_CLAIM,
        metavar="NAME",
        help="name of the groups claim",
    )
    parser.add_argument(
        "--org-claim",
        default=DEV_ORGANIZATION_CLAIM,
        metavar="NAME",
        help="name of the organization claim",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``python -m mqttauth token``: print one signed JWT on standard output."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    key_id = None if args.kid is None else (args.kid or None)
    try:
        if args.key is not None:
            signing_key = load_key_file(args.key, args.alg, key_id)
            issuer, audiences = args.iss, args.aud or []
        else:
            if args.alg not in (None, DEV_ALGORITHM):
                parser.error(f"the development key signs with {DEV_ALGORITHM} only")
            signing_key = load_dev_key(args.data_dir or default_dev_data_dir())
            if args.kid is not None:
                signing_key = SigningKey(signing_key.key, signing_key.algorithm, key_id)
            issuer = DEV_ISSUER if args.iss is None else args.iss
            audiences = [DEV_AUDIENCE] if args.aud is None else args.aud
    except KeyFileError as error:
        print(f"python -m mqttauth token: {error}", file=sys.stderr)
        return 1

    groups = [group for value in args.groups for group in value.split(",") if group]
    claims = build_claims(
        subject=args.sub,
        now=time.time(),
        ttl=args.ttl,
        issuer=issuer,
        audiences=audiences,
        groups=groups,
        organization=args.organization,
        extra=dict(args.claim),
        groups_claim=args.groups_claim,
        organization_claim=args.org_claim,
    )
    print(sign_token(signing_key, claims))
    return 0
