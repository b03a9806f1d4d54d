"""mqttauth against a real OpenID Connect provider: npm oidc-provider 8.

The provider (tests/js/oidc_server.mjs) runs on loopback and issues RS256 JWT
access tokens (typ at+jwt) with the client-credentials grant.  The broker is
configured only with the provider's jwks_uri and issuer, as an operator would
copy them from the discovery document.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from joserfc import jwk, jwt

from tests.support.oidc import OIDCProvider, start_oidc_provider, unverified_header

pytestmark = pytest.mark.e2e

DEVICE = {"client_id": "device-1", "client_secret": "device-1-secret", "claims": {}}
OTHER = {"client_id": "device-2", "client_secret": "device-2-secret", "claims": {}}


@pytest.fixture
def provider() -> Iterator[OIDCProvider]:
    with start_oidc_provider([DEVICE, OTHER]) as running:
        yield running


def device_token(provider: OIDCProvider, client: dict = DEVICE) -> str:
    return provider.token(client["client_id"], client["client_secret"])


def fetch_jwks(provider: OIDCProvider) -> jwk.KeySet:
    with urllib.request.urlopen(
        provider.discovery()["jwks_uri"], timeout=15
    ) as response:
        return jwk.KeySet.import_key_set(json.loads(response.read()))


def test_provider_token_header(provider: OIDCProvider) -> None:
    header = unverified_header(device_token(provider))
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == provider.kid


def test_provider_token_verifies(provider: OIDCProvider) -> None:
    token = jwt.decode(
        device_token(provider), fetch_jwks(provider), algorithms=["RS256"]
    )
    assert token.claims["iss"] == provider.issuer
    assert token.claims["sub"] == DEVICE["client_id"]
    assert token.claims["aud"] == "urn:mqttauth:broker"


def test_provider_discovery_names_jwks(provider: OIDCProvider) -> None:
    metadata = provider.discovery()
    assert metadata["issuer"] == provider.issuer
    assert metadata["jwks_uri"].startswith(provider.issuer + "/")


def test_provider_rotation_serves_new_key(provider: OIDCProvider) -> None:
    old_kid = provider.kid
    new_kid = provider.rotate()
    kids = [key.kid for key in fetch_jwks(provider)]
    assert new_kid != old_kid
    assert kids == [new_kid, old_kid]
    assert unverified_header(device_token(provider))["kid"] == new_kid


def test_provider_counts_jwks_requests(provider: OIDCProvider) -> None:
    before = provider.jwks_requests()
    fetch_jwks(provider)
    assert provider.jwks_requests() == before + 1
