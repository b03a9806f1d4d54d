"""The MQTT 5.0 property table and property encoding."""

import pytest

from mqttauth.mqtt.codec import decode_properties, encode_properties
from mqttauth.mqtt.constants import PacketType as T
from mqttauth.mqtt.constants import PropertyId as P
from mqttauth.mqtt.errors import MalformedPacketError, ProtocolError
from mqttauth.mqtt.properties import (
    PROPERTIES,
    WILL_PROPERTIES,
    PropertyType,
)

W = WILL_PROPERTIES
ACKS = {T.PUBACK, T.PUBREC, T.PUBREL, T.PUBCOMP}

# MQTT 5.0 table 2-4, typed in from the specification: identifier, data
# type, and the packets (W for Will Properties) that may carry it.
TABLE = {
    0x01: (PropertyType.BYTE, {T.PUBLISH, W}),
    0x02: (PropertyType.FOUR_BYTE_INTEGER, {T.PUBLISH, W}),
    0x03: (PropertyType.UTF8_STRING, {T.PUBLISH, W}),
    0x08: (PropertyType.UTF8_STRING, {T.PUBLISH, W}),
    0x09: (PropertyType.BINARY_DATA, {T.PUBLISH, W}),
    0x0B: (PropertyType.VARIABLE_BYTE_INTEGER, {T.PUBLISH, T.SUBSCRIBE}),
    0x11: (PropertyType.FOUR_BYTE_INTEGER, {T.CONNECT, T.CONNACK, T.DISCONNECT}),
    0x12: (PropertyType.UTF8_STRING, {T.CONNACK}),
    0x13: (PropertyType.TWO_BYTE_INTEGER, {T.CONNACK}),
    0x15: (PropertyType.UTF8_STRING, {T.CONNECT, T.CONNACK, T.AUTH}),
    0x16: (PropertyType.BINARY_DATA, {T.CONNECT, T.CONNACK, T.AUTH}),
    0x17: (PropertyType.BYTE, {T.CONNECT}),
    0x18: (PropertyType.FOUR_BYTE_INTEGER, {W}),
    0x19: (PropertyType.BYTE, {T.CONNECT}),
    0x1A: (PropertyType.UTF8_STRING, {T.CONNACK}),
    0x1C: (PropertyType.UTF8_STRING, {T.CONNACK, T.DISCONNECT}),
    0x1F: (
        PropertyType.UTF8_STRING,
        {T.CONNACK, *ACKS, T.SUBACK, T.UNSUBACK, T.DISCONNECT, T.AUTH},
    ),
    0x21: (PropertyType.TWO_BYTE_INTEGER, {T.CONNECT, T.CONNACK}),
    0x22: (PropertyType.TWO_BYTE_INTEGER, {T.CONNECT, T.CONNACK}),
    0x23: (PropertyType.TWO_BYTE_INTEGER, {T.PUBLISH}),
    0x24: (PropertyType.BYTE, {T.CONNACK}),
    0x25: (PropertyType.BYTE, {T.CONNACK}),
    0x26: (
        PropertyType.UTF8_STRING_PAIR,
        {
            T.CONNECT,
            T.CONNACK,
            T.PUBLISH,
            W,
            *ACKS,
            T.SUBSCRIBE,
            T.SUBACK,
            T.UNSUBSCRIBE,
            T.UNSUBACK,
            T.DISCONNECT,
            T.AUTH,
        },
    ),
    0x27: (PropertyType.FOUR_BYTE_INTEGER, {T.CONNECT, T.CONNACK}),
    0x28: (PropertyType.BYTE, {T.CONNACK}),
    0x29: (PropertyType.BYTE, {T.CONNACK}),
    0x2A: (PropertyType.BYTE, {T.CONNACK}),
}


def test_table_has_every_property() -> None:
    assert set(PROPERTIES) == set(TABLE)


def test_property_ids_complete() -> None:
    assert {int(identifier) for identifier in P} == set(TABLE)


@pytest.mark.parametrize("identifier", sorted(TABLE), ids=hex)
def test_property_type(identifier: int) -> None:
    assert PROPERTIES[identifier].data_type is TABLE[identifier][0]


@pytest.mark.parametrize("identifier", sorted(TABLE), ids=hex)
def test_property_packets(identifier: int) -> None:
    assert PROPERTIES[identifier].allowed_in == TABLE[identifier][1]


@pytest.mark.parametrize("identifier", sorted(TABLE), ids=hex)
def test_property_repeats(identifier: int) -> None:
    expected: set[int] = set()
    if identifier == P.USER_PROPERTY:
        expected = TABLE[identifier][1]
    elif identifier == P.SUBSCRIPTION_IDENTIFIER:
        expected = {T.PUBLISH}
    assert PROPERTIES[identifier].repeatable_in == expected


def test_property_name() -> None:
    assert PROPERTIES[P.MAXIMUM_QOS].name == "Maximum QoS"


ALL_PROPERTIES = {
    P.PAYLOAD_FORMAT_INDICATOR: 1,
    P.MESSAGE_EXPIRY_INTERVAL: 4_294_967_295,
    P.CONTENT_TYPE: "application/json",
    P.RESPONSE_TOPIC: "reply/ü",
    P.CORRELATION_DATA: b"\x00\xff",
    P.SUBSCRIPTION_IDENTIFIER: [1, 127, 128, 268_435_455],
    P.SESSION_EXPIRY_INTERVAL: 0,
    P.ASSIGNED_CLIENT_IDENTIFIER: "auto",
    P.SERVER_KEEP_ALIVE: 65_535,
    P.AUTHENTICATION_METHOD: "JWT",
    P.AUTHENTICATION_DATA: b"",
    P.REQUEST_PROBLEM_INFORMATION: 0,
    P.WILL_DELAY_INTERVAL: 1,
    P.REQUEST_RESPONSE_INFORMATION: 1,
    P.RESPONSE_INFORMATION: "info",
    P.SERVER_REFERENCE: "other:1883",
    P.REASON_STRING: "",
    P.RECEIVE_MAXIMUM: 1,
    P.TOPIC_ALIAS_MAXIMUM: 0,
    P.TOPIC_ALIAS: 1,
    P.MAXIMUM_QOS: 0,
    P.RETAIN_AVAILABLE: 1,
    P.USER_PROPERTY: [("a", "1"), ("a", "2"), ("", "")],
    P.MAXIMUM_PACKET_SIZE: 1,
    P.WILDCARD_SUBSCRIPTION_AVAILABLE: 0,
    P.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 1,
    P.SHARED_SUBSCRIPTION_AVAILABLE: 0,
}


def test_properties_roundtrip() -> None:
    assert decode_properties(encode_properties(ALL_PROPERTIES)) == ALL_PROPERTIES


def test_properties_empty() -> None:
    assert encode_properties({}) == b""


def test_decode_properties_empty() -> None:
    assert decode_properties(b"") == {}


def test_user_property_order_kept() -> None:
    pairs = [("z", "1"), ("a", "2"), ("z", "3")]
    decoded = decode_properties(encode_properties({P.USER_PROPERTY: pairs}))
    assert decoded[P.USER_PROPERTY] == pairs


def test_subscription_identifier_int_accepted() -> None:
    encoded = encode_properties({P.SUBSCRIPTION_IDENTIFIER: 300})
    assert encoded.hex() == "0bac02"


def test_encode_property_bytes() -> None:
    encoded = encode_properties({P.TOPIC_ALIAS: 258, P.CONTENT_TYPE: "a"})
    assert encoded.hex() == "23010203000161"


@pytest.mark.parametrize(
    "properties",
    [
        {0x7F: 1},
        {P.TOPIC_ALIAS: 65_536},
        {P.PAYLOAD_FORMAT_INDICATOR: 256},
        {P.MESSAGE_EXPIRY_INTERVAL: -1},
        {P.SUBSCRIPTION_IDENTIFIER: [268_435_456]},
        {P.CONTENT_TYPE: "a\x00"},
        {P.CONTENT_TYPE: "\ud800"},
        {P.CORRELATION_DATA: b"x" * 65_536},
    ],
    ids=repr,
)
def test_encode_invalid_value(properties: dict[int, object]) -> None:
    with pytest.raises(ValueError):
        encode_properties(properties)


def test_decode_unknown_identifier() -> None:
    with pytest.raises(MalformedPacketError):
        decode_properties(b"\x00")


def test_decode_repeated_property() -> None:
    with pytest.raises(ProtocolError):
        decode_properties(bytes.fromhex("230001230002"))


def test_decode_cut_off_value() -> None:
    with pytest.raises(MalformedPacketError):
        decode_properties(bytes.fromhex("0200"))
