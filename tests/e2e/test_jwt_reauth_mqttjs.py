"""Re-authentication with a real MQTT 5 client, mqtt.js, across a token swap.

mqtt.js connects with Enhanced Authentication (method ``JWT``) and a token
that expires in a few seconds, subscribes, and runs a QoS 2 publish that is
still in flight when it sends AUTH 0x19 with a second token.  The broker
answers AUTH 0x00, the QoS 2 flow completes, and the subscription keeps
delivering after the first token's expiry has passed.  No third token comes,
so when the second one expires the broker sends DISCONNECT 0x87 with a
Reason String and closes the connection.

The broker runs as ``twistd mqttauth --authenticator jwt`` with a static
key and no leeway, so expiry happens at the tokens' ``exp``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwk, jwt

from tests.support.mqttjs import MQTTJSSession
from tests.support.process import BrokerProcess, start_broker

pytestmark = pytest.mark.e2e

ISSUER = "https://idp.example.com/"
AUDIENCE = "mqtt-broker"
#: Seconds the first token lives; long enough for connect, subscribe and one
#: QoS 2 round trip of a Node.js client on a loaded machine.
FIRST_LIFETIME = 8
#: Seconds the second token lives beyond the first one's expiry.
SECOND_EXTRA = 6


@pytest.fixture(scope="module")
def signing_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048)


@pytest.fixture(scope="module")
def broker(signing_key: jwk.RSAKey) -> Iterator[BrokerProcess]:
    env = {
        "JWT_VERIFICATION_KEY": signing_key.as_pem(private=False).decode(),
        "JWT_EXPECTED_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_LEEWAY": "0",
    }
    with start_broker("--authenticator", "jwt", env=env) as running:
        yield running


def make_token(key: jwk.Key, exp: int, **claims: Any) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "device-7", "exp": exp, **claims}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, payload, key)


def wait_past(moment: float) -> None:
    """Let time pass until ``moment`` (POSIX seconds), for a real expiry."""
    while time.time() <= moment:
        time.sleep(min(0.2, max(0.0, moment - time.time()) + 0.01))


def test_mqttjs_reauth_then_expiry(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    first_exp = int(time.time()) + FIRST_LIFETIME
    second_exp = first_exp + SECOND_EXTRA
    first = make_token(signing_key, first_exp)
    second = make_token(signing_key, second_exp)

    with MQTTJSSession(
        "127.0.0.1", broker.port, clientId="mqttjs-reauth", method="JWT", token=first
    ) as session:
        connack = session.wait_for("connack")
        assert connack["reasonCode"] == 0
        assert connack["method"] == "JWT"
        session.send(op="subscribe", topic="reauth/js/#", qos=2)
        assert session.wait_for("suback")["granted"] == [2]

        # A QoS 2 publish whose PUBREC/PUBREL/PUBCOMP exchange overlaps AUTH.
        session.send(op="publish", topic="reauth/js/during", payload="during", qos=2)
        session.send(op="reauth", token=second)
        auth = session.wait_for("auth")
        assert auth["reasonCode"] == 0
        assert auth["method"] == "JWT"
        assert session.wait_for("pubcomp")["reasonCode"] == 0
        assert session.wait_for("message", topic="reauth/js/during")["qos"] == 2

        # The first token's expiry passes; the subscription carries on.
        wait_past(first_exp + 1)
        session.send(op="publish", topic="reauth/js/after", payload="after", qos=2)
        assert session.wait_for("pubcomp")["reasonCode"] == 0
        assert (
            session.wait_for("message", topic="reauth/js/after")["payload"] == "after"
        )
        assert not [e for e in session.events if e["event"] == "disconnect"]

        # No further token: the second expiry ends the session.
        disconnect = session.wait_for("disconnect", timeout=SECOND_EXTRA + 20)
        assert disconnect["reasonCode"] == 0x87
        assert disconnect["reasonString"]
        session.wait_for("close")
    assert time.time() >= second_exp


def test_mqttjs_legacy_connack_has_no_method(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key, int(time.time()) + 600)
    with MQTTJSSession(
        "127.0.0.1",
        broker.port,
        clientId="mqttjs-legacy",
        username="JWT",
        password=token,
    ) as session:
        connack = session.wait_for("connack")
        assert connack["reasonCode"] == 0
        assert connack["method"] is None
        session.send(op="end")


def test_mqttjs_bad_token_gets_connack(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key, int(time.time()) - 60)
    with MQTTJSSession(
        "127.0.0.1", broker.port, clientId="mqttjs-bad", method="JWT", token=token
    ) as session:
        connack = session.wait_for("connack")
        assert connack["reasonCode"] == 0x87
        session.wait_for("close")
