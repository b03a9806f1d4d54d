"""Verification keys: loading static keys and JWKS documents into a key ring.

A :class:`KeyRing` is an immutable set of public keys (and, for static
configuration only, HMAC secrets), each with the JWS algorithms it may verify.
Which algorithms fit a key is decided here, once, when the key is loaded:

- RSA keys of at least 2048 bits: RS256, RS384, RS512, PS256, PS384, PS512.
- EC keys: ES256 on P-256, ES384 on P-384, ES512 on P-521 (RFC 7518 3.4).
- OKP Ed25519 keys: EdDSA (RFC 8037) and Ed25519 (RFC 9864).
- HMAC secrets of at least 32 bytes: HS256, plus HS384 and HS512 when the
  secret is at least as long as the hash output (RFC 7518 3.2).

A JWK's ``alg`` narrows that set to itself, and a ``use`` other than ``sig``
or ``key_ops`` without ``verify`` leaves the key usable for nothing.  So a
token can never be checked with a key of the wrong type: an RSA public key in
PEM form is always an RSA key, never the bytes of an HMAC secret.

This module is pure: no I/O beyond what its callers hand it, no logging.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

#: Every asymmetric JWS algorithm this broker verifies.
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_ALGORITHMS = frozenset({"EdDSA", "Ed25519"})
ASYMMETRIC_ALGORITHMS = (
    RSA_ALGORITHMS | frozenset(EC_ALGORITHMS.values()) | OKP_ALGORITHMS
)
#: HMAC algorithms and the shortest secret, in bytes, each may use.
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
ALL_ALGORITHMS = ASYMMETRIC_ALGORITHMS | frozenset(HMAC_ALGORITHMS)

MIN_RSA_KEY_SIZE = 2048
MIN_HMAC_SECRET_SIZE = HMAC_ALGORITHMS["HS256"]

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL
)
#: cryptography's names of the curves in EC_ALGORITHMS.
_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_SSH_PREFIXES = (b"ssh-", b"ecdsa-sha2-", b"sk-ssh-", b"sk-ecdsa-")


class KeyLoadError(ValueError):
    """A key or key set that cannot be used; the message explains why."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One key of a ring, with the algorithms it may verify."""

    key: Key
    kid: str | None
    algorithms: frozenset[str]

    @property
    def is_secret(self) -> bool:
        return isinstance(self.key, OctKey)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable set of verification keys, looked up by ``kid``.

    ``match_any_kid`` is set for statically configured keys that carry no
    ``kid`` of their own (a PEM key, an HMAC secret): such a key is a candidate
    for every token, whatever ``kid`` the token names.  Keys from a JWKS
    document never match a ``kid`` they do not carry.
    """

    keys: tuple[VerificationKey, ...]
    match_any_kid: bool = False
    _by_kid: Mapping[str, tuple[VerificationKey, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_kid: dict[str, list[VerificationKey]] = {}
        for entry in self.keys:
            if entry.kid is not None:
                by_kid.setdefault(entry.kid, []).append(entry)
        frozen = {kid: tuple(entries) for kid, entries in by_kid.items()}
        object.__setattr__(self, "_by_kid", frozen)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._by_kid)

    @property
    def algorithms(self) -> frozenset[str]:
        """Return every algorithm at least one key of the ring may verify."""
        return frozenset().union(*(entry.algorithms for entry in self.keys))

    def knows(self, kid: str | None) -> bool:
        """Return whether a token naming ``kid`` has any key to try here."""
        if kid is None or self.match_any_kid:
            return bool(self.keys)
        return kid in self._by_kid

    def candidates(self, kid: str | None, algorithm: str) -> list[VerificationKey]:
        """Return the keys to try, in order, for a token's ``kid`` and ``alg``.

        A token with a ``kid`` gets the keys with that ``kid``; a token
        without one gets every key.  Keys whose algorithms do not include
        ``algorithm`` are left out.
        """
        if kid is None or self.match_any_kid:
            entries: Iterable[VerificationKey] = self.keys
        else:
            entries = self._by_kid.get(kid, ())
        return [entry for entry in entries if algorithm in entry.algorithms]


def _check_rsa_size(size: int) -> None:
    if size < MIN_RSA_KEY_SIZE:
        raise KeyLoadError(
            f"RSA key of {size} bits is too short; at least "
            f"{MIN_RSA_KEY_SIZE} bits are required"
        )


def _check_secret_size(size: int) -> None:
    if size < MIN_HMAC_SECRET_SIZE:
        raise KeyLoadError(
            f"HMAC secret of {size} bytes is too short; at least "
            f"{MIN_HMAC_SECRET_SIZE} bytes are required (RFC 7518 3.2)"
        )


def algorithms_for_key(key: Key) -> frozenset[str]:
    """Return the JWS algorithms ``key`` may verify, after its ``alg``, ``use``
    and ``key_ops`` members.

    Raises :class:`KeyLoadError` for a key type or curve this broker does not
    verify with, and for an RSA key shorter than 2048 bits.
    """
    if isinstance(key, RSAKey):
        _check_rsa_size(key.public_key.key_size)
        algorithms = RSA_ALGORITHMS
    elif isinstance(key, ECKey):
        curve = key.curve_name
        if curve not in EC_ALGORITHMS:
            raise KeyLoadError(f"EC curve {curve!r} is not supported")
        algorithms = frozenset({EC_ALGORITHMS[curve]})
    elif isinstance(key, OKPKey):
        if key.curve_name != "Ed25519":
            raise KeyLoadError(f"OKP curve {key.curve_name!r} is not supported")
        algorithms = OKP_ALGORITHMS
    elif isinstance(key, OctKey):
        size = len(key.raw_value)
        _check_secret_size(size)
        algorithms = frozenset(
            name for name, minimum in HMAC_ALGORITHMS.items() if size >= minimum
        )
    else:  # pragma: no cover - joserfc has no other key types
        raise KeyLoadError(f"key type {type(key).__name__} is not supported")

    use = key.get("use")
    if use is not None and use != "sig":
        return frozenset()
    key_ops = key.get("key_ops")
    if key_ops is not None and "verify" not in key_ops:
        return frozenset()
    pinned = key.get("alg")
    if pinned is not None:
        return algorithms & {str(pinned)}
    return algorithms


# --- static keys ---


def load_key_text(text: str) -> KeyRing:
    """Load ``JWT_VERIFICATION_KEY``: PEM text, a JWK or JWKS in JSON, or an
    HMAC secret (the UTF-8 bytes of the text).

    A value that starts like PEM, JSON or an OpenSSH key but does not parse is
    an error, never an HMAC secret.  PEM pasted into an environment variable
    with literal ``\\n`` sequences in place of line breaks is accepted.
    """
    stripped = text.strip()
    if stripped.startswith("-----BEGIN") and "\n" not in stripped:
        stripped = stripped.replace("\\n", "\n")
        return _load_structured(stripped.encode())
    if stripped.startswith(("-----BEGIN", "{")) or _looks_like_ssh(stripped.encode()):
        return _load_structured(stripped.encode())
    return _secret_ring(text.encode("utf-8"))


def load_key_base64(text: str) -> KeyRing:
    """Load ``JWT_VERIFICATION_KEY_BASE64``: base64 (standard or URL-safe
    alphabet, padding optional) of PEM, DER, a JWK or JWKS, or a raw secret."""
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise KeyLoadError(f"value is not valid base64 ({error})") from None
    if not data:
        raise KeyLoadError("value decodes to no bytes")
    return load_key_bytes(data)


def load_key_bytes(data: bytes, *, strip_newline: bool = False) -> KeyRing:
    """Load key material from bytes: PEM, DER, a JWK or JWKS, or a raw secret.

    With ``strip_newline`` one trailing line break is removed from a raw
    secret, as text editors add one to the files they save.
    """
    head = data.lstrip()
    if head.startswith((b"-----BEGIN", b"{")) or _looks_like_ssh(head):
        return _load_structured(head.rstrip())
    der_key = _load_der(data)
    if der_key is not None:
        return KeyRing((_public_entry(der_key),), match_any_kid=True)
    if strip_newline:
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
    return _secret_ring(data)


def _looks_like_ssh(data: bytes) -> bool:
    return data.startswith(_SSH_PREFIXES)


def _load_structured(data: bytes) -> KeyRing:
    if _looks_like_ssh(data):
        raise KeyLoadError(
            "OpenSSH public keys are not supported; convert one to PEM with "
            "'ssh-keygen -e -m PKCS8 -f KEY.pub'"
        )
    if data.startswith(b"{"):
        try:
            document = json.loads(data)
        except ValueError as error:
            raise KeyLoadError(f"value is not valid JSON ({error})") from None
        if isinstance(document, dict) and "keys" in document:
            return parse_jwks_document(document, allow_secrets=True).ring
        return KeyRing((_jwk_entry(document, allow_secrets=True),), match_any_kid=True)
    return _load_pem_blocks(data)


def _load_pem_blocks(data: bytes) -> KeyRing:
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise KeyLoadError("value starts like PEM but has no complete PEM block")
    entries = []
    for block in blocks:
        kind = block.split(b"-----")[1].decode()
        if "PRIVATE" in kind:
            raise KeyLoadError(
                f"PEM block {kind!r} is a private key; configure the public key "
                "('openssl pkey -in KEY -pubout' prints it)"
            )
        public_key: Any
        try:
            if "CERTIFICATE" in kind:
                public_key = x509.load_pem_x509_certificate(block).public_key()
            else:
                public_key = serialization.load_pem_public_key(block)
        except ValueError as error:
            raise KeyLoadError(
                f"PEM block {kind!r} cannot be parsed ({error})"
            ) from None
        entries.append(_public_entry(public_key))
    return KeyRing(tuple(entries), match_any_kid=True)


def _load_der(data: bytes) -> Any:
    for loader in (serialization.load_der_public_key, _load_der_certificate_key):
        try:
            return loader(data)
        except ValueError:
            continue
    return None


def _load_der_certificate_key(data: bytes) -> Any:
    return x509.load_der_x509_certificate(data).public_key()


def _public_entry(public_key: Any) -> VerificationKey:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key: Key
    if isinstance(public_key, rsa.RSAPublicKey):
        _check_rsa_size(public_key.key_size)
        key = RSAKey.import_key(pem)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_CURVES:
            raise KeyLoadError(
                f"EC curve {public_key.curve.name!r} is not supported; use P-256, "
                "P-384 or P-521"
            )
        key = ECKey.import_key(pem)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        key = OKPKey.import_key(pem)
    else:
        raise KeyLoadError(
            f"public key type {type(public_key).__name__} is not supported; "
            "use RSA, EC P-256/P-384/P-521 or Ed25519"
        )
    return _entry(key, kid=None)


def _secret_ring(secret: bytes) -> KeyRing:
    _check_secret_size(len(secret))
    try:
        key = OctKey.import_key(secret)
    except ValueError as error:
        raise KeyLoadError(f"value cannot be an HMAC secret ({error})") from None
    return KeyRing((_entry(key, kid=None),), match_any_kid=True)


def _entry(key: Key, kid: str | None) -> VerificationKey:
    algorithms = algorithms_for_key(key)
    if not algorithms:
        raise KeyLoadError(
            "key is not usable for verifying signatures (use, key_ops or alg)"
        )
    return VerificationKey(key=key, kid=kid, algorithms=algorithms)


# --- JWKS documents --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedKeySet:
    """The usable keys of a JWKS document and why the others were skipped."""

    ring: KeyRing
    #: One line per skipped key: its ``kid`` (or position) and the reason.
    skipped: tuple[str, ...] = ()


def parse_jwks(data: bytes) -> ParsedKeySet:
    """Parse a JWKS document fetched from an identity provider.

    Only public keys are taken: ``oct`` keys are skipped (a secret has no
    place in a published key set), and private members of a key are dropped.
    Keys of unsupported types or curves, and unusable keys, are skipped with a
    reason.  Raises :class:`KeyLoadError` when the document is not a JWKS or
    no key is usable, so a broken document never replaces good keys.
    """
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise KeyLoadError(f"JWKS document is not valid JSON ({error})") from None
    return parse_jwks_document(document, allow_secrets=False)


def parse_jwks_document(document: Any, *, allow_secrets: bool) -> ParsedKeySet:
    """Parse an already decoded JWKS document; see :func:`parse_jwks`."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyLoadError("JWKS document is not a JSON object with a 'keys' list")
    entries: list[VerificationKey] = []
    skipped: list[str] = []
    for position, member in enumerate(document["keys"]):
        label = _member_label(member, position)
        try:
            entries.append(_jwk_entry(member, allow_secrets=allow_secrets))
        except KeyLoadError as error:
            skipped.append(f"{label}: {error}")
    if not entries:
        reasons = "; ".join(skipped) if skipped else "the 'keys' list is empty"
        raise KeyLoadError(f"JWKS document has no usable key ({reasons})")
    match_any = allow_secrets and all(entry.kid is None for entry in entries)
    return ParsedKeySet(
        KeyRing(tuple(entries), match_any_kid=match_any), tuple(skipped)
    )


def _member_label(member: Any, position: int) -> str:
    if isinstance(member, dict) and isinstance(member.get("kid"), str):
        return f"key {member['kid']!r}"
    return f"key #{position}"


def _jwk_entry(member: Any, *, allow_secrets: bool) -> VerificationKey:
    if not isinstance(member, dict):
        raise KeyLoadError("JWK is not a JSON object")
    kty = member.get("kty")
    if kty == "oct" and not allow_secrets:
        raise KeyLoadError("symmetric ('oct') keys are not accepted from a JWKS URL")
    kid = member.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeyLoadError("'kid' is not a string")
    key_class: type[Key]
    if kty == "RSA":
        key_class = RSAKey
    elif kty == "EC":
        key_class = ECKey
    elif kty == "OKP":
        key_class = OKPKey
    elif kty == "oct":
        key_class = OctKey
    else:
        raise KeyLoadError(f"key type {kty!r} is not supported")
    try:
        with warnings.catch_warnings():
            # joserfc warns about short keys; algorithms_for_key rejects them.
            warnings.simplefilter("ignore", SecurityWarning)
            key = key_class.import_key(member)
        if key.is_private and not isinstance(key, OctKey):
            key = key_class.import_key(key.as_dict(private=False))
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise KeyLoadError(f"JWK cannot be imported ({error})") from None
    return _entry(key, kid=kid)


def describe_ring(ring: KeyRing) -> Sequence[str]:
    """Return one line per key for logs: ``kid``, type and algorithms."""
    lines = []
    for entry in ring.keys:
        kind = entry.key.key_type
        lines.append(
            f"{entry.kid or '(no kid)'} {kind} {','.join(sorted(entry.algorithms))}"
        )
    return lines
