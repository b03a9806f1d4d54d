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

from tests.support.mosquitto_clients import MosquittoSub, mosquitto_pub
from tests.support.mqttjs import MQTTJSSession
from tests.support.oidc import OIDCProvider, start_oidc_provider, unverified_header
from tests.support.pahoclient import MQTTv5, MQTTv311, PahoClient, connect_properties
from tests.support.process import BrokerProcess, start_broker

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


# --- the broker, configured from the provider's discovery document -----------


def start_jwt_broker(provider: OIDCProvider) -> BrokerProcess:
    """Start a broker that trusts ``provider``: JWKS URL and issuer, nothing else."""
    metadata = provider.discovery()
    broker = start_broker(
        "--authenticator",
        "jwt",
        env={
            "JWT_JWKS_URL": metadata["jwks_uri"],
            "JWT_EXPECTED_ISSUER": metadata["issuer"],
        },
    )
    broker.wait_for_log(r"JWKS from \S+ fetched")
    return broker


@pytest.fixture(scope="module")
def shared_provider() -> Iterator[OIDCProvider]:
    with start_oidc_provider([DEVICE, OTHER]) as running:
        yield running


@pytest.fixture(scope="module")
def broker(shared_provider: OIDCProvider) -> Iterator[BrokerProcess]:
    with start_jwt_broker(shared_provider) as running:
        yield running


def legacy_args(broker: BrokerProcess, token: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(broker.port), "-u", "JWT", "-P", token]


def enhanced_args(broker: BrokerProcess, token: str) -> list[str]:
    return [
        "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5",
        "-D", "connect", "authentication-method", "JWT",
        "-D", "connect", "authentication-data", token,
    ]  # fmt: skip


def relay_with_mosquitto(
    subscriber_args: list[str], publisher_args: list[str], topic: str
) -> MosquittoSub:
    """Subscribe to ``topic``, publish one message to it, return the subscriber."""
    subscriber = MosquittoSub(
        [*subscriber_args, "-t", topic, "-v", "-C", "1", "-W", "30"]
    )
    with subscriber:
        assert subscriber.wait_connack() == 0
        assert subscriber.wait_subscribed() == [0]
        published = mosquitto_pub([*publisher_args, "-t", topic, "-m", "reading"])
        assert published.returncode == 0, published.stderr
        assert subscriber.wait_message() == f"{topic} reading"
    return subscriber


def test_mosquitto_legacy_flow(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    sub_token = device_token(shared_provider)
    pub_token = device_token(shared_provider, OTHER)
    relay_with_mosquitto(
        legacy_args(broker, sub_token), legacy_args(broker, pub_token), "plant/legacy"
    )


def test_mosquitto_v5_legacy_flow(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    token = device_token(shared_provider)
    args = [*legacy_args(broker, token), "-V", "mqttv5"]
    relay_with_mosquitto(args, args, "plant/v5-legacy")


def test_mosquitto_enhanced_auth(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    sub_token = device_token(shared_provider)
    pub_token = device_token(shared_provider, OTHER)
    relay_with_mosquitto(
        enhanced_args(broker, sub_token),
        enhanced_args(broker, pub_token),
        "plant/enhanced",
    )


def test_mosquitto_tampered_token_rejected(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    token = device_token(shared_provider)
    header, claims, signature = token.split(".")
    forged = f"{header}.{claims}.{signature[:-4]}AAAA"
    published = mosquitto_pub(
        [*legacy_args(broker, forged), "-t", "plant/x", "-m", "x"]
    )
    assert published.returncode != 0
    assert "bad user name or password" in published.stderr


def test_paho_v311_legacy(broker: BrokerProcess, shared_provider: OIDCProvider) -> None:
    client = PahoClient(broker.port, "paho-311", protocol=MQTTv311)
    client.client.username_pw_set("JWT", device_token(shared_provider))
    _, reason, _ = client.connect()
    try:
        assert reason == 0
        assert client.subscribe("plant/paho311", qos=1)[0] == 1
        client.publish("plant/paho311", b"21.5", qos=1)
        assert client.next_message().payload == b"21.5"
    finally:
        client.disconnect()


def test_paho_v5_enhanced_auth(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    client = PahoClient(broker.port, "paho-5", protocol=MQTTv5)
    token = device_token(shared_provider)
    properties = connect_properties(
        AuthenticationMethod="JWT", AuthenticationData=token.encode()
    )
    _, reason, connack_properties = client.connect(properties=properties)
    try:
        assert reason == 0
        assert connack_properties.AuthenticationMethod == "JWT"
        assert client.subscribe("plant/paho5", qos=1)[0] == 1
        client.publish("plant/paho5", b"7", qos=1)
        assert client.next_message().payload == b"7"
    finally:
        client.disconnect()


def test_paho_v5_unknown_key_rejected(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    # A second provider signs with a key that the broker's JWKS does not
    # contain, and names another issuer.
    with start_oidc_provider([DEVICE]) as stranger:
        token = device_token(stranger)
    client = PahoClient(broker.port, "paho-stranger", protocol=MQTTv5)
    properties = connect_properties(
        AuthenticationMethod="JWT", AuthenticationData=token.encode()
    )
    _, reason, _ = client.connect(properties=properties)
    client.client.loop_stop()
    assert reason.value in (0x86, 0x87)


def test_mqttjs_reauth_fresh_token(
    broker: BrokerProcess, shared_provider: OIDCProvider
) -> None:
    first = device_token(shared_provider)
    with MQTTJSSession(
        "127.0.0.1", broker.port, clientId="js-reauth", method="JWT", token=first
    ) as session:
        assert session.wait_for("connack")["reasonCode"] == 0
        session.send(op="subscribe", topic="plant/js/#", qos=1)
        assert session.wait_for("suback")["granted"] == [1]

        fresh = device_token(shared_provider)
        assert fresh != first
        session.send(op="reauth", token=fresh)
        auth = session.wait_for("auth")
        assert auth["reasonCode"] == 0
        assert auth["method"] == "JWT"

        session.send(op="publish", topic="plant/js/after", payload="still here", qos=1)
        message = session.wait_for("message")
        assert message["payload"] == "still here"
        assert [
            e for e in session.events if e["event"] in ("disconnect", "close")
        ] == []


# --- key rotation at the provider ---------------------------------------------


@pytest.fixture
def rotating() -> Iterator[tuple[OIDCProvider, BrokerProcess]]:
    with (
        start_oidc_provider([DEVICE]) as provider,
        start_jwt_broker(provider) as broker,
    ):
        yield provider, broker


def test_rotated_kid_after_one_refresh(
    rotating: tuple[OIDCProvider, BrokerProcess],
) -> None:
    provider, broker = rotating
    before = provider.jwks_requests()
    new_kid = provider.rotate()
    token = device_token(provider)
    assert unverified_header(token)["kid"] == new_kid
    relay_with_mosquitto(
        legacy_args(broker, token), legacy_args(broker, token), "rot/a"
    )
    assert provider.jwks_requests() == before + 1


def test_rotated_kid_fetched_once(rotating: tuple[OIDCProvider, BrokerProcess]) -> None:
    provider, broker = rotating
    before = provider.jwks_requests()
    provider.rotate()
    for _ in range(3):
        token = device_token(provider)
        published = mosquitto_pub(
            [*legacy_args(broker, token), "-t", "rot/b", "-m", "x"]
        )
        assert published.returncode == 0, published.stderr
    assert provider.jwks_requests() == before + 1


def test_old_kid_still_accepted(rotating: tuple[OIDCProvider, BrokerProcess]) -> None:
    provider, broker = rotating
    old_token = device_token(provider)
    provider.rotate()
    published = mosquitto_pub(
        [*legacy_args(broker, old_token), "-t", "rot/c", "-m", "x"]
    )
    assert published.returncode == 0, published.stderr


def test_reauth_across_rotation(rotating: tuple[OIDCProvider, BrokerProcess]) -> None:
    provider, broker = rotating
    with MQTTJSSession(
        "127.0.0.1",
        broker.port,
        clientId="js-rot",
        method="JWT",
        token=device_token(provider),
    ) as session:
        assert session.wait_for("connack")["reasonCode"] == 0
        session.send(op="subscribe", topic="rot/js", qos=1)
        assert session.wait_for("suback")["granted"] == [1]

        new_kid = provider.rotate()
        fresh = device_token(provider)
        assert unverified_header(fresh)["kid"] == new_kid
        session.send(op="reauth", token=fresh)
        assert session.wait_for("auth")["reasonCode"] == 0

        session.send(op="publish", topic="rot/js", payload="after rotation", qos=1)
        assert session.wait_for("message")["payload"] == "after rotation"
