"""Static key loading and JWKS parsing."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwk

from mqttauth.jwt.keys import (
    KeyLoadError,
    load_key_base64,
    load_key_bytes,
    load_key_text,
    parse_jwks,
)
from tests.support.jwks import public_jwk


def pem_of(key: jwk.Key) -> str:
    return key.as_pem(private=False).decode()


def self_signed_certificate(
    private_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )


def test_rsa_pem_gives_rsa_algorithms(rsa_key: jwk.RSAKey) -> None:
    ring = load_key_text(pem_of(rsa_key))
    assert ring.algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


@pytest.mark.parametrize(
    ("curve", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
def test_ec_pem_gives_curve_algorithm(
    ec_keys: dict[str, jwk.ECKey], curve: str, alg: str
) -> None:
    assert load_key_text(pem_of(ec_keys[curve])).algorithms == {alg}


def test_ed25519_pem_gives_eddsa(ed25519_key: jwk.OKPKey) -> None:
    assert load_key_text(pem_of(ed25519_key)).algorithms == {"EdDSA", "Ed25519"}


def test_pem_with_escaped_newlines_loads(rsa_key: jwk.RSAKey) -> None:
    text = pem_of(rsa_key).strip().replace("\n", "\\n")
    assert load_key_text(text).algorithms >= {"RS256"}


def test_static_pem_matches_any_kid(rsa_key: jwk.RSAKey) -> None:
    ring = load_key_text(pem_of(rsa_key))
    assert len(ring.candidates("whatever", "RS256")) == 1


def test_several_pem_blocks_load(
    rsa_key: jwk.RSAKey, ec_keys: dict[str, jwk.ECKey]
) -> None:
    ring = load_key_text(pem_of(rsa_key) + pem_of(ec_keys["P-256"]))
    assert len(ring) == 2


def test_certificate_pem_loads() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = self_signed_certificate(private_key).public_bytes(serialization.Encoding.PEM)
    assert load_key_text(pem.decode()).algorithms == {"ES256"}


def test_private_key_pem_rejected() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyLoadError, match="private key"):
        load_key_text(pem.decode())


def test_broken_pem_never_becomes_secret(rsa_key: jwk.RSAKey) -> None:
    text = pem_of(rsa_key).replace("M", "!", 3)
    with pytest.raises(KeyLoadError):
        load_key_text(text)


def test_truncated_pem_rejected(rsa_key: jwk.RSAKey) -> None:
    with pytest.raises(KeyLoadError, match="no complete PEM block"):
        load_key_text(pem_of(rsa_key)[:200])


def test_short_rsa_key_rejected() -> None:
    public = rsa.generate_private_key(65537, 1024).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyLoadError, match="2048"):
        load_key_text(pem.decode())


def test_dsa_key_rejected() -> None:
    public = dsa.generate_private_key(2048).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyLoadError, match="not supported"):
        load_key_text(pem.decode())


@pytest.mark.parametrize(
    "curve", [ec.SECP224R1(), ec.BrainpoolP256R1(), ec.SECP256K1()]
)
def test_unsupported_ec_curve_rejected(curve: ec.EllipticCurve) -> None:
    public = ec.generate_private_key(curve).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyLoadError, match="not supported"):
        load_key_text(pem.decode())


def test_ssh_key_rejected(rsa_key: jwk.RSAKey) -> None:
    with pytest.raises(KeyLoadError, match="ssh-keygen"):
        load_key_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@host")


def test_secret_gives_hmac_algorithms() -> None:
    assert load_key_text("s" * 64).algorithms == {"HS256", "HS384", "HS512"}


def test_secret_of_32_bytes_only_hs256() -> None:
    assert load_key_text("s" * 32).algorithms == {"HS256"}


def test_short_secret_rejected() -> None:
    with pytest.raises(KeyLoadError, match="at least 32 bytes"):
        load_key_text("short-secret")


def test_jwk_json_loads(rsa_key: jwk.RSAKey) -> None:
    ring = load_key_text(json.dumps(public_jwk(rsa_key, "k1")))
    assert ring.knows("k1")


def test_jwks_json_matches_kid(rsa_key: jwk.RSAKey) -> None:
    ring = load_key_text(json.dumps({"keys": [public_jwk(rsa_key, "k1")]}))
    assert not ring.knows("k2")


def test_invalid_json_never_becomes_secret() -> None:
    with pytest.raises(KeyLoadError, match="JSON"):
        load_key_text('{"kty": "RSA", ' + "x" * 40)


def test_base64_of_pem_loads(rsa_key: jwk.RSAKey) -> None:
    text = base64.b64encode(pem_of(rsa_key).encode()).decode()
    assert "RS256" in load_key_base64(text).algorithms


def test_base64_of_der_loads(ec_keys: dict[str, jwk.ECKey]) -> None:
    der = ec_keys["P-256"].as_der(private=False)
    assert load_key_base64(base64.b64encode(der).decode()).algorithms == {"ES256"}


def test_base64_urlsafe_secret_loads() -> None:
    secret = bytes(range(200, 248))
    text = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    assert load_key_base64(text).algorithms == {"HS256", "HS384"}


def test_base64_invalid_rejected() -> None:
    with pytest.raises(KeyLoadError, match="base64"):
        load_key_base64("not base64 at all!")


def test_key_file_secret_drops_newline() -> None:
    ring = load_key_bytes(b"k" * 32 + b"\n", strip_newline=True)
    assert ring.keys[0].key.raw_value == b"k" * 32


def test_key_file_der_loads(rsa_key: jwk.RSAKey) -> None:
    assert "RS256" in load_key_bytes(rsa_key.as_der(private=False)).algorithms


def test_jwks_skips_oct_keys(rsa_key: jwk.RSAKey) -> None:
    document = {
        "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}, public_jwk(rsa_key, "k1")]
    }
    parsed = parse_jwks(json.dumps(document).encode())
    assert not parsed.ring.knows("s")


def test_jwks_reports_skipped_key(rsa_key: jwk.RSAKey) -> None:
    document = {"keys": [{"kty": "PQC", "kid": "future"}, public_jwk(rsa_key, "k1")]}
    parsed = parse_jwks(json.dumps(document).encode())
    assert parsed.skipped[0].startswith("key 'future'")


def test_jwks_drops_private_members() -> None:
    private = jwk.ECKey.generate_key("P-256")
    document = {"keys": [dict(private.as_dict(private=True), kid="k1")]}
    entry = parse_jwks(json.dumps(document).encode()).ring.keys[0]
    assert not entry.key.is_private


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"keys": {}}',
        b'{"keys": []}',
        b'{"keys": [{"kty": "oct", "k": "AA"}]}',
    ],
    ids=["not-json", "array", "keys-object", "empty", "only-oct"],
)
def test_jwks_without_usable_keys_rejected(body: bytes) -> None:
    with pytest.raises(KeyLoadError):
        parse_jwks(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["kty", "kid", "n", "e", "crv", "x", "y", "use", "alg", "k"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_random_jwks_raise_only_key_load_error(members: list[object]) -> None:
    try:
        parse_jwks(json.dumps({"keys": members}).encode())
    except KeyLoadError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_key_text_raises_only_key_load_error(text: str) -> None:
    try:
        load_key_text(text)
    except KeyLoadError:
        pass
