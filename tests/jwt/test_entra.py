"""Entra ID v2 access-token shapes through the Entra shorthand settings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from joserfc import jwk
from twisted.internet.task import Clock

from mqttauth.jwt.keys import parse_jwks_document
from mqttauth.jwt.settings import OPTIONS, JWTSettings, parse_settings
from mqttauth.jwt.validation import TokenError, TokenValidator, VerifiedToken
from tests.jwt.conftest import NOW
from tests.support.jwks import b64url, public_jwk, sign_token

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
API_APP = "00001111-aaaa-2222-bbbb-3333cccc4444"
CLIENT_APP = "11112222-bbbb-3333-cccc-4444dddd5555"
OBJECT_ID = "22223333-cccc-4444-dddd-5555eeee6666"
V2_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
KID = "L1KfKFI_jnXbwWc22xZxw1sUHH0"


def entra_settings(**env: Any) -> JWTSettings:
    env.setdefault("JWT_ENTRA_ID_TENANT_ID", TENANT)
    env.setdefault("JWT_AUDIENCE", API_APP)
    env.setdefault("JWT_ORGANIZATION_CLAIM", "azp")
    env.setdefault("JWT_GROUPS_CLAIM_NAME", "roles")
    by_env = {option.env: option for option in OPTIONS}
    values: dict[str, Any] = {"data_dir": None}
    for name, raw in env.items():
        option = by_env[name]
        values[option.name.replace("-", "_")] = option.coerce(raw)
    return parse_settings(values)


def entra_claims(**overrides: Any) -> dict[str, Any]:
    """Return claims shaped like an app-only Entra ID v2 access token."""
    claims: dict[str, Any] = {
        "aud": API_APP,
        "iss": V2_ISSUER,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3540,
        "aio": b64url(uuid.uuid4().bytes),
        "azp": CLIENT_APP,
        "azpacr": "1",
        "idtyp": "app",
        "oid": OBJECT_ID,
        "rh": "0.AAAA" + b64url(uuid.uuid4().bytes),
        "roles": ["Telemetry.Write", "Alerts.Read"],
        "sub": OBJECT_ID,
        "tid": TENANT,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "2.0",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def entra_token(key: jwk.Key, **overrides: Any) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5t": KID, "kid": KID}
    return sign_token(header, entra_claims(**overrides), key)


def verify(
    key: jwk.Key, text: str, settings: JWTSettings | None = None
) -> VerifiedToken:
    settings = settings or entra_settings()
    # Entra's JWKS entries also carry x5t, x5c and issuer; none of them matter.
    entry = public_jwk(key, KID, use="sig", x5t=KID, x5c=["MIIC"], issuer=V2_ISSUER)
    ring = parse_jwks_document({"keys": [entry]}, allow_secrets=False).ring
    validator = TokenValidator(settings.policy)
    parsed = validator.parse(text)
    return validator.verify(
        parsed, ring.candidates(parsed.key_id, parsed.algorithm), NOW
    )


def reason_of(key: jwk.Key, text: str) -> str:
    with pytest.raises(TokenError) as caught:
        verify(key, text)
    return caught.value.reason


def test_entra_token_accepted(rsa_key: jwk.RSAKey) -> None:
    assert verify(rsa_key, entra_token(rsa_key)).principal == OBJECT_ID


def test_entra_azp_is_organization(rsa_key: jwk.RSAKey) -> None:
    assert verify(rsa_key, entra_token(rsa_key)).organization == CLIENT_APP


def test_entra_roles_are_groups(rsa_key: jwk.RSAKey) -> None:
    groups = verify(rsa_key, entra_token(rsa_key)).groups
    assert groups == ("Telemetry.Write", "Alerts.Read")


def test_entra_tid_and_ver_in_attributes(rsa_key: jwk.RSAKey) -> None:
    attributes = verify(rsa_key, entra_token(rsa_key)).claims
    assert (attributes["tid"], attributes["ver"]) == (TENANT, "2.0")


def test_entra_api_uri_audience_rejected(rsa_key: jwk.RSAKey) -> None:
    text = entra_token(rsa_key, aud=f"api://{API_APP}")
    assert reason_of(rsa_key, text) == "wrong_audience"


def test_entra_v1_issuer_rejected(rsa_key: jwk.RSAKey) -> None:
    text = entra_token(rsa_key, iss=f"https://sts.windows.net/{TENANT}/", ver="1.0")
    assert reason_of(rsa_key, text) == "wrong_issuer"


def test_entra_other_tenant_rejected(rsa_key: jwk.RSAKey) -> None:
    other = "99998888-0000-cccc-1111-dddd2222eeee"
    text = entra_token(rsa_key, iss=f"https://login.microsoftonline.com/{other}/v2.0")
    assert reason_of(rsa_key, text) == "wrong_issuer"


def test_entra_missing_oid_rejected(rsa_key: jwk.RSAKey) -> None:
    assert reason_of(rsa_key, entra_token(rsa_key, oid=None)) == "missing_principal"


def test_entra_graph_audience_rejected(rsa_key: jwk.RSAKey) -> None:
    # Microsoft Graph's application id: a token for Graph is not for the broker.
    text = entra_token(rsa_key, aud="00000003-0000-0000-c000-000000000000")
    assert reason_of(rsa_key, text) == "wrong_audience"


def test_entra_nonce_header_ignored(rsa_key: jwk.RSAKey) -> None:
    header = {"typ": "JWT", "nonce": "abc", "alg": "RS256", "kid": KID}
    text = sign_token(header, entra_claims(), rsa_key)
    assert verify(rsa_key, text).principal == OBJECT_ID


def test_entra_single_role_string(rsa_key: jwk.RSAKey) -> None:
    text = entra_token(rsa_key, roles="Telemetry.Write")
    assert verify(rsa_key, text).groups == ("Telemetry.Write",)


def test_entra_sub_principal_when_set(rsa_key: jwk.RSAKey) -> None:
    settings = entra_settings(JWT_PRINCIPAL_CLAIM="sub")
    text = entra_token(rsa_key, sub="pairwise-subject")
    assert verify(rsa_key, text, settings).principal == "pairwise-subject"


def test_entra_settings_build_authenticator() -> None:
    from mqttauth.jwt.authenticator import JWTAuthenticator

    authenticator = JWTAuthenticator(entra_settings(), Clock(), http_client=object())
    assert authenticator.key_source is not None
    assert authenticator.key_source.url.endswith(f"/{TENANT}/discovery/v2.0/keys")
