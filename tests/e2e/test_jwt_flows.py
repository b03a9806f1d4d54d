"""The jwt authenticator in a real broker process, byte by byte.

``twistd mqttauth --authenticator jwt`` runs with a static RSA key (the
``JWT_*`` variables), and a raw-packet client checks the CONNACK and
DISCONNECT bytes of the legacy flow on 3.1.1 and 5.0, of Enhanced
Authentication, of re-authentication and of token expiry.  A second broker
points at a JWKS URL that refuses connections, for 0x88 Server unavailable.

Tokens are signed with the real time, so expiry tests wait for the broker's
own timer; the leeway is 0 and their tokens live for two seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc import jwk, jwt

from mqttauth.mqtt.constants import MQTT_3_1_1, MQTT_5_0, PropertyId, ReasonCode
from mqttauth.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Will,
)
from tests.support.process import BrokerProcess, start_broker
from tests.support.rawclient import ConnectionClosedError, RawClient

pytestmark = pytest.mark.e2e

ISSUER = "https://idp.example.com/"
AUDIENCE = "mqtt-broker"


@pytest.fixture(scope="module")
def signing_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048)


def make_token(key: jwk.Key, lifetime: float = 600, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "device-1",
        "iat": now,
        "exp": now + lifetime,
    }
    claims.update(overrides)
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


@pytest.fixture(scope="module")
def broker(signing_key: jwk.RSAKey) -> Iterator[BrokerProcess]:
    env = {
        "JWT_VERIFICATION_KEY": signing_key.as_pem(private=False).decode(),
        "JWT_EXPECTED_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_LEEWAY": "0",
        "JWT_AUTHENTICATION_METHODS": "JWT,CUSTOM-JWT",
    }
    with start_broker("--authenticator", "jwt", env=env) as running:
        yield running


def closed_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def keyless_broker() -> Iterator[BrokerProcess]:
    env = {"JWT_JWKS_URL": f"http://127.0.0.1:{closed_port()}/keys"}
    with start_broker("--authenticator", "jwt", env=env) as running:
        running.wait_for_log("JWKS fetch from")
        yield running


def client(broker: BrokerProcess, level: int = MQTT_5_0) -> RawClient:
    return RawClient(broker.port, protocol_level=level)


def connack_bytes(broker: BrokerProcess, level: int, **fields: Any) -> bytes:
    """Send a 3.1.1 CONNECT and return the four CONNACK bytes."""
    with client(broker, level) as raw:
        raw.send(Connect("raw-311", protocol_level=level, **fields))
        return raw.receive_bytes(4)


def rejected_connack(raw: RawClient, **fields: Any) -> Connack:
    """Return the CONNACK of a CONNECT that must fail, after checking the close."""
    connack = raw.connect("raw-client", **fields)
    assert raw.expect_closed() == b""
    return connack


def enhanced(token: str, method: str = "JWT") -> dict[int, Any]:
    return {
        PropertyId.AUTHENTICATION_METHOD: method,
        PropertyId.AUTHENTICATION_DATA: token.encode(),
    }


def reauth(token: str, method: str = "JWT") -> Auth:
    return Auth(ReasonCode.RE_AUTHENTICATE, enhanced(token, method))


def receive_through(raw: RawClient, last: Callable[[Packet], bool]) -> list[Packet]:
    """Return the packets received up to and including the first ``last`` one."""
    packets = [raw.receive()]
    while not last(packets[-1]):
        packets.append(raw.receive())
    return packets


# --- MQTT 3.1.1 legacy flow ---


def test_v311_token_accepted(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    data = connack_bytes(
        broker, MQTT_3_1_1, username="JWT", password=make_token(signing_key).encode()
    )
    assert data == b"\x20\x02\x00\x00"


def test_v311_expired_token_return_code_4(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key, lifetime=-60)
    data = connack_bytes(broker, MQTT_3_1_1, username="JWT", password=token.encode())
    assert data == b"\x20\x02\x00\x04"


def test_v311_wrong_username_return_code_4(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key)
    data = connack_bytes(
        broker, MQTT_3_1_1, username="device-1", password=token.encode()
    )
    assert data == b"\x20\x02\x00\x04"


def test_v311_no_credentials_return_code_5(broker: BrokerProcess) -> None:
    assert connack_bytes(broker, MQTT_3_1_1) == b"\x20\x02\x00\x05"


def test_v311_failure_closes_after_connack(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker, MQTT_3_1_1) as raw:
        connack = raw.connect("raw-311", username="JWT", password=b"not-a-token")
        assert connack.reason_code == 4
        assert raw.expect_closed() == b""


def test_v311_keys_unavailable_return_code_3(
    keyless_broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key)
    data = connack_bytes(
        keyless_broker, MQTT_3_1_1, username="JWT", password=token.encode()
    )
    assert data == b"\x20\x02\x00\x03"


# --- MQTT 5.0 legacy flow ---


def test_v5_legacy_accepted(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    with client(broker) as raw:
        connack = raw.connect(username="JWT", password=make_token(signing_key).encode())
    assert connack.reason_code == ReasonCode.SUCCESS


def test_v5_legacy_connack_has_no_method(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        connack = raw.connect(username="JWT", password=make_token(signing_key).encode())
    assert PropertyId.AUTHENTICATION_METHOD not in connack.properties


def test_v5_legacy_bad_token_0x86(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key, iss="https://other.example/")
    with client(broker) as raw:
        connack = rejected_connack(raw, username="JWT", password=token.encode())
    assert connack.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert "issuer" in connack.properties[PropertyId.REASON_STRING]


# --- MQTT 5.0 Enhanced Authentication ---


def test_enhanced_connack_echoes_method(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        connack = raw.connect(properties=enhanced(make_token(signing_key)))
    assert connack.reason_code == ReasonCode.SUCCESS
    assert connack.properties[PropertyId.AUTHENTICATION_METHOD] == "JWT"


def test_enhanced_added_method_echoed(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        connack = raw.connect(
            properties=enhanced(make_token(signing_key), "CUSTOM-JWT")
        )
    assert connack.properties[PropertyId.AUTHENTICATION_METHOD] == "CUSTOM-JWT"


def test_enhanced_other_method_0x8c(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        connack = rejected_connack(
            raw, properties=enhanced(make_token(signing_key), "OAUTH2-JWT")
        )
    assert connack.reason_code == ReasonCode.BAD_AUTHENTICATION_METHOD


def test_enhanced_bad_signature_0x87(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    other = jwk.RSAKey.generate_key(2048)
    with client(broker) as raw:
        connack = rejected_connack(raw, properties=enhanced(make_token(other)))
    assert connack.reason_code == ReasonCode.NOT_AUTHORIZED
    assert "signature" in connack.properties[PropertyId.REASON_STRING]


def test_enhanced_expired_reason_string(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        connack = rejected_connack(
            raw, properties=enhanced(make_token(signing_key, lifetime=-5))
        )
    assert "expired" in connack.properties[PropertyId.REASON_STRING]


def test_enhanced_reason_string_left_out_past_maximum_packet_size(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    token = make_token(signing_key, lifetime=-5)
    properties = {**enhanced(token), PropertyId.MAXIMUM_PACKET_SIZE: 16}
    with client(broker) as raw:
        connack = rejected_connack(raw, properties=properties)
    assert PropertyId.REASON_STRING not in connack.properties


def test_keys_unavailable_0x88(
    keyless_broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(keyless_broker) as raw:
        connack = rejected_connack(raw, properties=enhanced(make_token(signing_key)))
    assert connack.reason_code == ReasonCode.SERVER_UNAVAILABLE
    assert "not available yet" in connack.properties[PropertyId.REASON_STRING]


@pytest.mark.parametrize(
    ("level", "fields"),
    [
        (MQTT_3_1_1, {}),
        (MQTT_3_1_1, {"username": "JWT", "password": b"x.y.z"}),
        (MQTT_5_0, {}),
        (MQTT_5_0, {"username": "JWT", "password": b"x.y.z"}),
        (MQTT_5_0, {"username": "someone", "password": b"x.y.z"}),
        (MQTT_5_0, {"properties": enhanced("x.y.z")}),
        (MQTT_5_0, {"properties": enhanced("x.y.z", "SCRAM-SHA-256")}),
        (MQTT_5_0, {"properties": {PropertyId.AUTHENTICATION_METHOD: "JWT"}}),
    ],
    ids=[
        "311-none",
        "311-garbage",
        "5-none",
        "5-garbage",
        "5-username",
        "5-enhanced-garbage",
        "5-other-method",
        "5-no-data",
    ],
)
def test_every_failure_gets_connack_before_close(
    broker: BrokerProcess, level: int, fields: dict[str, Any]
) -> None:
    with client(broker, level) as raw:
        connack = raw.connect("raw-client", **fields)
        assert connack.reason_code != ReasonCode.SUCCESS
        assert raw.expect_closed() == b""


# --- re-authentication ---


def connected(broker: BrokerProcess, token: str, **fields: Any) -> RawClient:
    raw = client(broker)
    connack = raw.connect("reauth-client", properties=enhanced(token), **fields)
    assert connack.reason_code == ReasonCode.SUCCESS
    return raw


def test_reauth_answered_with_auth_success(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with connected(broker, make_token(signing_key)) as raw:
        raw.send(reauth(make_token(signing_key, lifetime=1200)))
        answer = raw.receive()
    assert answer == Auth(ReasonCode.SUCCESS, {PropertyId.AUTHENTICATION_METHOD: "JWT"})


def test_reauth_spans_qos2_flow(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    with connected(broker, make_token(signing_key)) as raw:
        raw.send(Subscribe(1, [Subscription("reauth/raw/#", qos=2)]))
        assert isinstance(raw.receive(), Suback)
        raw.send(Publish("reauth/raw/a", b"across", qos=2, packet_id=7))
        before = receive_through(raw, lambda packet: packet == Pubrec(7))
        raw.send(reauth(make_token(signing_key, lifetime=1200)))
        raw.send(Pubrel(7))
        after = receive_through(raw, lambda packet: packet == Pubcomp(7))
        if not any(isinstance(packet, Auth) for packet in after):
            after += receive_through(raw, lambda packet: isinstance(packet, Auth))
    packets = before + after
    auth = next(packet for packet in after if isinstance(packet, Auth))
    assert auth.reason_code == ReasonCode.SUCCESS
    assert any(isinstance(p, Publish) and p.payload == b"across" for p in packets)


def test_reauth_bad_token_disconnects(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with connected(broker, make_token(signing_key)) as raw:
        raw.send(reauth(make_token(signing_key, lifetime=-5)))
        packet = raw.receive()
        assert raw.expect_closed() == b""
    assert isinstance(packet, Disconnect)
    assert packet.reason_code == ReasonCode.NOT_AUTHORIZED
    assert "expired" in packet.properties[PropertyId.REASON_STRING]


def test_reauth_other_principal_disconnects(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with connected(broker, make_token(signing_key)) as raw:
        raw.send(reauth(make_token(signing_key, sub="device-2")))
        packet = raw.receive()
        assert raw.expect_closed() == b""
    assert packet == Disconnect(
        ReasonCode.NOT_AUTHORIZED,
        {PropertyId.REASON_STRING: "Re-authentication must keep the same principal"},
    )


def test_reauth_other_method_protocol_error(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with connected(broker, make_token(signing_key)) as raw:
        raw.send(reauth(make_token(signing_key), method="CUSTOM-JWT"))
        packet = raw.receive()
    assert isinstance(packet, Disconnect)
    assert packet.reason_code == ReasonCode.PROTOCOL_ERROR


def test_auth_from_legacy_client_protocol_error(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with client(broker) as raw:
        raw.connect(username="JWT", password=make_token(signing_key).encode())
        raw.send(reauth(make_token(signing_key)))
        packet = raw.receive()
    assert isinstance(packet, Disconnect)
    assert packet.reason_code == ReasonCode.PROTOCOL_ERROR


# --- expiry ---


def test_expiry_disconnects_v5(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    with connected(broker, make_token(signing_key, lifetime=2)) as raw:
        packet = raw.receive(timeout=15)
        assert raw.expect_closed() == b""
    assert isinstance(packet, Disconnect)
    assert packet.reason_code == ReasonCode.NOT_AUTHORIZED
    assert PropertyId.REASON_STRING in packet.properties


def test_expiry_closes_v311(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    token = make_token(signing_key, lifetime=2)
    with client(broker, MQTT_3_1_1) as raw:
        raw.connect("expiring-311", username="JWT", password=token.encode())
        assert raw.expect_closed(timeout=15) == b""


def test_expiry_publishes_will(broker: BrokerProcess, signing_key: jwk.RSAKey) -> None:
    with connected(broker, make_token(signing_key, sub="watcher")) as watcher:
        watcher.send(Subscribe(1, [Subscription("wills/expired", qos=1)]))
        assert isinstance(watcher.receive(), Suback)
        will = Will("wills/expired", b"gone", qos=1)
        with client(broker) as dying:
            dying.connect(
                "dying",
                properties=enhanced(make_token(signing_key, lifetime=2)),
                will=will,
            )
            assert isinstance(dying.receive(timeout=15), Disconnect)
        message = watcher.receive(timeout=15)
    assert isinstance(message, Publish)
    assert message.payload == b"gone"


def test_failed_connect_keeps_connected_client(
    broker: BrokerProcess, signing_key: jwk.RSAKey
) -> None:
    with connected(broker, make_token(signing_key)) as first:
        with client(broker) as second:
            second.connect("reauth-client", properties=enhanced("bad.token.here"))
            assert second.expect_closed() == b""
        first.send(reauth(make_token(signing_key)))
        try:
            answer = first.receive()
        except ConnectionClosedError:
            pytest.fail("the failed CONNECT of the same client id closed the first one")
    assert isinstance(answer, Auth)
