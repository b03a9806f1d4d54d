"""TokenValidator: one test per header, signature and claim rule."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwk

from mqttauth.jwt.keys import ASYMMETRIC_ALGORITHMS, KeyRing, parse_jwks_document
from mqttauth.jwt.validation import (
    TokenError,
    TokenValidator,
    ValidationPolicy,
    VerifiedToken,
    normalize_type,
)
from tests.jwt.conftest import AUDIENCE, ISSUER, NOW, claims, token
from tests.support.jwks import b64url, public_jwk, sign_hs256_with_bytes, sign_token

POLICY = ValidationPolicy(
    algorithms=ASYMMETRIC_ALGORITHMS,
    issuer=ISSUER,
    audiences=(AUDIENCE,),
    leeway=30,
)


def ring_of(*pairs: tuple[jwk.Key, str]) -> KeyRing:
    keys = [public_jwk(key, kid) for key, kid in pairs]
    return parse_jwks_document({"keys": keys}, allow_secrets=False).ring


def check(
    text: str, ring: KeyRing, policy: ValidationPolicy = POLICY, now: float = NOW
) -> VerifiedToken:
    validator = TokenValidator(policy)
    parsed = validator.parse(text)
    return validator.verify(
        parsed, ring.candidates(parsed.key_id, parsed.algorithm), now
    )


def reason_of(
    text: str, ring: KeyRing, policy: ValidationPolicy = POLICY, now: float = NOW
) -> str:
    with pytest.raises(TokenError) as caught:
        check(text, ring, policy, now)
    return caught.value.reason


@pytest.fixture(scope="module")
def ring(rsa_key: jwk.RSAKey) -> KeyRing:
    return ring_of((rsa_key, "k1"))


# --- accepted tokens ---


def test_valid_token_gives_principal(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    verified = check(token(rsa_key), ring)
    assert verified.principal == "device-1"


def test_valid_token_expiry_includes_leeway(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    verified = check(token(rsa_key), ring)
    assert verified.expires_at == NOW + 600 + 30


def test_valid_token_claims_in_attributes(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    verified = check(token(rsa_key), ring)
    assert dict(verified.claims) == claims()


def test_valid_token_reports_kid(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key), ring).key_id == "k1"


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_algorithms_accepted(rsa_key: jwk.RSAKey, ring: KeyRing, alg: str) -> None:
    assert check(token(rsa_key, alg), ring).principal == "device-1"


@pytest.mark.parametrize(
    ("curve", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
def test_ec_algorithms_accepted(
    ec_keys: dict[str, jwk.ECKey], curve: str, alg: str
) -> None:
    key = ec_keys[curve]
    assert check(token(key, alg), ring_of((key, "k1"))).principal == "device-1"


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_algorithms_accepted(ed25519_key: jwk.OKPKey, alg: str) -> None:
    ring = ring_of((ed25519_key, "k1"))
    assert check(token(ed25519_key, alg), ring).principal == "device-1"


def test_ec_key_of_other_curve_not_candidate(ec_keys: dict[str, jwk.ECKey]) -> None:
    ring = ring_of((ec_keys["P-256"], "k1"))
    assert ring.candidates("k1", "ES384") == []


def test_token_without_kid_tries_every_key(
    rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey
) -> None:
    ring = ring_of((other_rsa_key, "a"), (rsa_key, "b"))
    assert check(token(rsa_key, kid=None), ring).key_id is None


def test_kid_selects_key(rsa_key: jwk.RSAKey, other_rsa_key: jwk.RSAKey) -> None:
    ring = ring_of((other_rsa_key, "k1"), (rsa_key, "k2"))
    assert reason_of(token(rsa_key, kid="k1"), ring) == "bad_signature"


# --- algorithm rules ---


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(ring: KeyRing, alg: str) -> None:
    text = sign_token({"alg": alg, "kid": "k1"}, claims(), None)
    assert reason_of(text, ring) == "unsigned_token"


def test_alg_none_never_allowed_in_policy() -> None:
    with pytest.raises(ValueError):
        TokenValidator(ValidationPolicy(algorithms=frozenset({"none", "RS256"})))


def test_alg_outside_allow_list_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, algorithms=frozenset({"RS256"}))
    assert reason_of(token(rsa_key, "PS256"), ring, policy) == "unsupported_algorithm"


def test_hs256_with_rsa_public_key_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    pem = rsa_key.as_pem(private=False)
    text = sign_hs256_with_bytes({"alg": "HS256", "kid": "k1"}, claims(), pem)
    assert reason_of(text, ring) == "unsupported_algorithm"


def test_rsa_key_never_candidate_for_hs256(ring: KeyRing) -> None:
    assert ring.candidates("k1", "HS256") == []


def test_hs256_with_rsa_public_key_fails_even_if_allowed(
    rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    policy = replace(POLICY, algorithms=frozenset({"HS256", "RS256"}))
    pem = rsa_key.as_pem(private=False)
    text = sign_hs256_with_bytes({"alg": "HS256", "kid": "k1"}, claims(), pem)
    validator = TokenValidator(policy)
    parsed = validator.parse(text)
    with pytest.raises(TokenError) as caught:
        validator.verify(parsed, ring.keys, NOW)
    assert caught.value.reason == "bad_signature"


def test_jwk_with_other_alg_not_candidate(rsa_key: jwk.RSAKey) -> None:
    document = {"keys": [public_jwk(rsa_key, "k1", alg="RS512")]}
    ring = parse_jwks_document(document, allow_secrets=False).ring
    assert ring.candidates("k1", "RS256") == []


def test_jwk_for_encryption_not_usable(rsa_key: jwk.RSAKey) -> None:
    document = {
        "keys": [public_jwk(rsa_key, "enc", use="enc"), public_jwk(rsa_key, "k1")]
    }
    ring = parse_jwks_document(document, allow_secrets=False).ring
    assert not ring.knows("enc")


# --- headers that carry keys are ignored ---


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://attacker.example/keys"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["not-a-certificate"]},
        {"jwk": {"kty": "oct", "k": "AAAA"}},
        {"jku": 17},
    ],
    ids=["jku", "x5u", "x5c", "jwk", "jku-not-url"],
)
def test_key_headers_ignored_for_trusted_key(
    rsa_key: jwk.RSAKey, ring: KeyRing, extra: dict[str, Any]
) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1", **extra}, claims(), rsa_key)
    assert check(text, ring).principal == "device-1"


def test_embedded_jwk_does_not_make_attacker_key_trusted(
    other_rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    header = {"alg": "RS256", "kid": "k1", "jwk": public_jwk(other_rsa_key, "k1")}
    text = sign_token(header, claims(), other_rsa_key)
    assert reason_of(text, ring) == "bad_signature"


def test_embedded_x5c_does_not_make_attacker_key_trusted(
    other_rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    header = {
        "alg": "RS256",
        "kid": "k1",
        "x5c": ["MIIB"],
        "x5u": "https://x.example/c",
    }
    text = sign_token(header, claims(), other_rsa_key)
    assert reason_of(text, ring) == "bad_signature"


# --- other header rules ---


def test_crit_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    header = {
        "alg": "RS256",
        "kid": "k1",
        "crit": ["urn:example:x"],
        "urn:example:x": 1,
    }
    text = sign_token(header, claims(), rsa_key)
    assert reason_of(text, ring) == "unsupported_critical_header"


def test_crit_b64_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    header = {"alg": "RS256", "kid": "k1", "crit": ["b64"], "b64": False}
    text = sign_token(header, claims(), rsa_key)
    assert reason_of(text, ring) == "unsupported_critical_header"


def test_unencoded_payload_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1", "b64": False}, claims(), rsa_key)
    assert reason_of(text, ring) == "malformed_token"


def test_unknown_header_ignored(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1", "nonce": "x"}, claims(), rsa_key)
    assert check(text, ring).principal == "device-1"


def test_token_over_size_limit_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = token(rsa_key, padding="x" * 400)
    policy = replace(POLICY, max_token_size=len(text) - 1)
    assert reason_of(text, ring, policy) == "token_too_large"


def test_token_at_size_limit_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = token(rsa_key, padding="x" * 400)
    policy = replace(POLICY, max_token_size=len(text))
    assert check(text, ring, policy).principal == "device-1"


def test_size_limit_checked_before_parsing() -> None:
    validator = TokenValidator(replace(POLICY, max_token_size=128))
    with pytest.raises(TokenError) as caught:
        validator.parse(b"\xff" * 129)
    assert caught.value.reason == "token_too_large"


@pytest.mark.parametrize(
    "typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/jwt"]
)
def test_typ_accepted(rsa_key: jwk.RSAKey, ring: KeyRing, typ: str) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1", "typ": typ}, claims(), rsa_key)
    assert check(text, ring).principal == "device-1"


def test_typ_absent_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1"}, claims(), rsa_key)
    assert check(text, ring).principal == "device-1"


@pytest.mark.parametrize("typ", ["JWS", "secevent+jwt", "dpop+jwt", 7])
def test_typ_rejected(rsa_key: jwk.RSAKey, ring: KeyRing, typ: Any) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1", "typ": typ}, claims(), rsa_key)
    assert reason_of(text, ring) == "unsupported_type"


def test_typ_allowed_list_is_policy(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, allowed_types=frozenset({normalize_type("at+jwt")}))
    assert reason_of(token(rsa_key), ring, policy) == "unsupported_type"


def test_kid_not_string_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": 1}, claims(), rsa_key)
    assert reason_of(text, ring) == "malformed_token"


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.",
        "e30.e30.",
        "W10.e30.",
        "eyJhbGciOiJSUzI1NiJ9=.e30.",
    ],
    ids=[
        "one-part",
        "two-parts",
        "four-parts",
        "bad-base64",
        "no-alg",
        "array",
        "padding",
    ],
)
def test_malformed_token_rejected(ring: KeyRing, text: str) -> None:
    assert reason_of(text, ring) == "malformed_token"


@pytest.mark.parametrize("position", [0, 1, 2])
def test_junk_character_in_part_rejected(
    rsa_key: jwk.RSAKey, ring: KeyRing, position: int
) -> None:
    parts = token(rsa_key).split(".")
    parts[position] = parts[position][:5] + "!" + parts[position][5:]
    assert reason_of(".".join(parts), ring) == "malformed_token"


def test_duplicate_header_member_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    good = token(rsa_key)
    header = '{"alg":"RS256","kid":"k1","alg":"RS256"}'
    from tests.support.jwks import b64url

    text = b64url(header.encode()) + "." + good.split(".", 1)[1]
    assert reason_of(text, ring) == "malformed_token"


def test_deeply_nested_header_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    # Nesting deeper than Python's recursion limit makes json raise
    # RecursionError, which must not escape as anything but TokenError.
    good = token(rsa_key)
    header = '{"alg":"RS256","kid":"k1","x":' + "[" * 5000 + "]" * 5000 + "}"
    text = b64url(header.encode()) + "." + good.split(".", 1)[1]
    assert reason_of(text, ring) == "malformed_token"


# --- signature ---


def test_changed_payload_bad_signature(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    header, _, signature = token(rsa_key).split(".")
    other = token(rsa_key, sub="device-2").split(".")[1]
    assert reason_of(f"{header}.{other}.{signature}", ring) == "bad_signature"


def test_wrong_key_bad_signature(other_rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(other_rsa_key), ring) == "bad_signature"


def test_empty_signature_bad_signature(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = token(rsa_key).rsplit(".", 1)[0] + "."
    assert reason_of(text, ring) == "bad_signature"


# --- date claims ---


def test_exp_missing_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, exp=None), ring) == "missing_claim"


def test_exp_missing_accepted_when_optional(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, require_exp=False)
    assert check(token(rsa_key, exp=None), ring, policy).expires_at is None


def test_expired_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, exp=NOW - 31), ring) == "expired_token"


def test_expired_at_leeway_edge_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, exp=NOW - 30), ring) == "expired_token"


def test_expired_within_leeway_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key, exp=NOW - 29), ring).principal == "device-1"


def test_nbf_future_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, nbf=NOW + 31), ring) == "not_yet_valid"


def test_nbf_within_leeway_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key, nbf=NOW + 30), ring).principal == "device-1"


def test_iat_future_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, iat=NOW + 31), ring) == "issued_in_future"


def test_iat_within_leeway_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key, iat=NOW + 30), ring).principal == "device-1"


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_string_date_rejected(rsa_key: jwk.RSAKey, ring: KeyRing, name: str) -> None:
    text = token(rsa_key, **{name: str(claims()[name])})
    assert reason_of(text, ring) == "invalid_claim"


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_bool_date_rejected(rsa_key: jwk.RSAKey, ring: KeyRing, name: str) -> None:
    assert reason_of(token(rsa_key, **{name: True}), ring) == "invalid_claim"


def test_huge_exp_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, exp=10**400), ring) == "invalid_claim"


def test_fractional_exp_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key, exp=NOW + 0.5), ring).expires_at == NOW + 30.5


def test_fractional_exp_past_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    # exp plus the leeway is NOW + 0.5, which has passed at NOW + 0.7.
    text = token(rsa_key, exp=NOW - 29.5)
    assert reason_of(text, ring, now=NOW + 0.7) == "expired_token"


def test_nan_exp_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1"}, '{"sub":"d","exp":NaN}', rsa_key)
    assert reason_of(text, ring, replace(POLICY, issuer=None, audiences=())) == (
        "invalid_payload"
    )


# --- issuer and audience ---


def test_issuer_mismatch_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert (
        reason_of(token(rsa_key, iss="https://other.example/"), ring) == "wrong_issuer"
    )


def test_issuer_without_trailing_slash_rejected(
    rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    assert reason_of(token(rsa_key, iss=ISSUER.rstrip("/")), ring) == "wrong_issuer"


def test_issuer_other_case_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, iss=ISSUER.upper()), ring) == "wrong_issuer"


def test_issuer_missing_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, iss=None), ring) == "missing_claim"


def test_issuer_reason_names_both(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    with pytest.raises(TokenError) as caught:
        check(token(rsa_key, iss="https://other.example/"), ring)
    assert "https://other.example/" in caught.value.description
    assert ISSUER in caught.value.description


@pytest.mark.parametrize(
    "aud", ["mqtt", "mqtt-broker-2", "xmqtt-broker", "MQTT-BROKER"]
)
def test_audience_substring_rejected(
    rsa_key: jwk.RSAKey, ring: KeyRing, aud: str
) -> None:
    assert reason_of(token(rsa_key, aud=aud), ring) == "wrong_audience"


def test_audience_list_with_match_accepted(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = token(rsa_key, aud=["other", AUDIENCE])
    assert check(text, ring).principal == "device-1"


def test_audience_list_without_match_rejected(
    rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    text = token(rsa_key, aud=["other", "mqtt-broker-2"])
    assert reason_of(text, ring) == "wrong_audience"


def test_audience_empty_list_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, aud=[]), ring) == "wrong_audience"


def test_audience_missing_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, aud=None), ring) == "missing_claim"


def test_audience_not_checked_when_unset(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, audiences=())
    assert check(token(rsa_key, aud="anything"), ring, policy).principal == "device-1"


def test_second_configured_audience_accepted(
    rsa_key: jwk.RSAKey, ring: KeyRing
) -> None:
    policy = replace(POLICY, audiences=("first", AUDIENCE))
    assert check(token(rsa_key), ring, policy).principal == "device-1"


# --- identity fields ---


def test_missing_principal_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert reason_of(token(rsa_key, sub=None), ring) == "missing_principal"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_principal_rejected(
    rsa_key: jwk.RSAKey, ring: KeyRing, value: str
) -> None:
    assert reason_of(token(rsa_key, sub=value), ring) == "missing_principal"


def test_non_string_principal_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, principal_claim="device_id")
    assert reason_of(token(rsa_key, device_id=42), ring, policy) == "invalid_principal"


def test_principal_claim_is_policy(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, principal_claim="oid")
    assert check(token(rsa_key, oid="object-1"), ring, policy).principal == "object-1"


def test_principal_kept_literally(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    assert check(token(rsa_key, sub="a/#/+"), ring).principal == "a/#/+"


def test_groups_from_list(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, groups_claim="roles")
    verified = check(token(rsa_key, roles=["r1", "r2", "r1"]), ring, policy)
    assert verified.groups == ("r1", "r2")


def test_groups_from_single_string(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, groups_claim="roles")
    assert check(token(rsa_key, roles="r1"), ring, policy).groups == ("r1",)


def test_groups_missing_empty(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, groups_claim="roles")
    assert check(token(rsa_key), ring, policy).groups == ()


def test_groups_of_numbers_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, groups_claim="roles")
    assert reason_of(token(rsa_key, roles=[1, 2]), ring, policy) == "invalid_claim"


def test_organization_from_claim(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, organization_claim="azp")
    assert check(token(rsa_key, azp="app-1"), ring, policy).organization == "app-1"


def test_organization_missing_none(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, organization_claim="azp")
    assert check(token(rsa_key), ring, policy).organization is None


def test_organization_not_string_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    policy = replace(POLICY, organization_claim="azp")
    assert reason_of(token(rsa_key, azp={"a": 1}), ring, policy) == "invalid_claim"


def test_duplicate_claim_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    body = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    text = sign_token({"alg": "RS256", "kid": "k1"}, body, rsa_key)
    assert reason_of(text, ring) == "invalid_payload"


def test_claims_not_object_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1"}, "[1, 2]", rsa_key)
    assert reason_of(text, ring) == "invalid_payload"


def test_deeply_nested_claims_rejected(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    nested = '{"sub":"d","x":' + "[" * 5000 + "]" * 5000 + "}"
    text = sign_token({"alg": "RS256", "kid": "k1"}, nested, rsa_key)
    assert reason_of(text, ring) == "invalid_payload"


def test_description_never_contains_token(rsa_key: jwk.RSAKey, ring: KeyRing) -> None:
    text = token(rsa_key, exp=NOW - 100)
    with pytest.raises(TokenError) as caught:
        check(text, ring)
    assert text.split(".")[1] not in caught.value.description


# --- properties ---


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_token_error(data: bytes) -> None:
    validator = TokenValidator(POLICY)
    try:
        validator.parse(data)
    except TokenError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["exp", "nbf", "iat", "sub", "iss", "aud", "roles"]),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats()
            | st.text(max_size=5),
            lambda children: st.lists(children, max_size=3),
            max_leaves=5,
        ),
    )
)
def test_random_claims_raise_only_token_error(
    rsa_key: jwk.RSAKey, ring: KeyRing, body: dict[str, Any]
) -> None:
    text = sign_token({"alg": "RS256", "kid": "k1"}, json.dumps(body), rsa_key)
    try:
        check(text, ring, replace(POLICY, groups_claim="roles"))
    except TokenError:
        pass
