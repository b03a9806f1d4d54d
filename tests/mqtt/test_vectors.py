"""Byte-exact vectors worked out by hand from the MQTT 3.1.1 and 5.0 texts."""

import pytest

from mqttauth.mqtt.codec import Decoder, encode, encode_publish
from mqttauth.mqtt.constants import PropertyId as P
from mqttauth.mqtt.errors import MalformedPacketError, PacketTooLargeError
from mqttauth.mqtt.packets import Connect, Packet, Pingreq, Publish, Will
from mqttauth.mqtt.varint import (
    decode_variable_byte_integer,
    encode_variable_byte_integer,
    variable_byte_integer_size,
)

VBI_VECTORS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2097151, "ffff7f"),
    (2097152, "80808001"),
    (268435455, "ffffff7f"),
]


@pytest.mark.parametrize(("value", "encoded"), VBI_VECTORS)
def test_vbi_encode(value: int, encoded: str) -> None:
    assert encode_variable_byte_integer(value).hex() == encoded


@pytest.mark.parametrize(("value", "encoded"), VBI_VECTORS)
def test_vbi_decode(value: int, encoded: str) -> None:
    data = bytes.fromhex(encoded)
    assert decode_variable_byte_integer(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize(("value", "encoded"), VBI_VECTORS)
def test_vbi_size(value: int, encoded: str) -> None:
    assert variable_byte_integer_size(value) == len(encoded) // 2


@pytest.mark.parametrize("value", [-1, 268435456])
def test_vbi_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        encode_variable_byte_integer(value)


@pytest.mark.parametrize(("value", "encoded"), VBI_VECTORS[1:])
def test_remaining_length_header(value: int, encoded: str) -> None:
    # A PUBLISH header announcing ``value`` body bytes: the decoder reads
    # the length and waits for the body, which is never sent.
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytes.fromhex("30" + encoded))
    assert decoder.next_packet() is None


@pytest.mark.parametrize(("value", "encoded"), VBI_VECTORS[1:])
def test_remaining_length_limit(value: int, encoded: str) -> None:
    decoder = Decoder(max_packet_size=value, protocol_level=4)
    decoder.feed(bytes.fromhex("30" + encoded))
    with pytest.raises(PacketTooLargeError):
        decoder.next_packet()


def test_remaining_length_zero() -> None:
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytes.fromhex("c000"))
    assert decoder.next_packet() == Pingreq()


PUBLISH_HEADERS = [
    (127, "307f"),
    (128, "308001"),
    (16383, "30ff7f"),
    (16384, "30808001"),
    (2097152, "3080808001"),
]


@pytest.mark.parametrize(("length", "header"), PUBLISH_HEADERS)
def test_encode_publish_header(length: int, header: str) -> None:
    # Topic "t" takes 3 bytes, so the payload fills the rest of ``length``.
    payload = b"x" * (length - 3)
    data = encode_publish("t", payload, 0, False, False, None, b"", 4)
    assert data[: len(header) // 2 + 3].hex() == header + "000174"


@pytest.mark.parametrize(("length", "header"), PUBLISH_HEADERS)
def test_encode_header(length: int, header: str) -> None:
    payload = b"x" * (length - 3)
    data = encode(Publish("t", payload), 4)
    assert data[: len(header) // 2 + 3].hex() == header + "000174"


@pytest.mark.parametrize(("length", "header"), PUBLISH_HEADERS)
def test_decode_header(length: int, header: str) -> None:
    payload = b"x" * (length - 3)
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytes.fromhex(header + "000174") + payload)
    assert decoder.next_packet() == Publish("t", payload)


def test_vbi_nonminimal_accepted_3_1_1() -> None:
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytes.fromhex("c08000"))
    assert decoder.next_packet() == Pingreq()


def test_vbi_nonminimal_connect_3_1_1() -> None:
    body = bytes.fromhex("00044d5154540402003c000163")
    decoder = Decoder()
    decoder.feed(bytes([0x10, 0x80 | len(body), 0x00]) + body)
    assert decoder.next_packet() == Connect("c", protocol_level=4)


def test_vbi_nonminimal_connect_5_0() -> None:
    body = bytes.fromhex("00044d5154540502003c00000163")
    decoder = Decoder()
    decoder.feed(bytes([0x10, 0x80 | len(body), 0x00]) + body)
    with pytest.raises(MalformedPacketError):
        decoder.next_packet()


# A 5.0 CONNECT with every property CONNECT may carry, and a will that
# carries every will property. Lengths are counted by hand.
CONNECT_5_HEX = (
    "10" "65"  # CONNECT, Remaining Length 101
    "00044d515454"  # protocol name "MQTT"
    "05"  # protocol level 5
    "ee"  # user name, password, will retain, will QoS 1, will, clean start
    "003c"  # keep alive 60
    "26"  # property length 38
    "1100000e10"  # Session Expiry Interval 3600
    "210014"  # Receive Maximum 20
    "2700001000"  # Maximum Packet Size 4096
    "22000a"  # Topic Alias Maximum 10
    "1901"  # Request Response Information 1
    "1700"  # Request Problem Information 0
    "2600016b000176"  # User Property ("k", "v")
    "1500034a5754"  # Authentication Method "JWT"
    "1600020102"  # Authentication Data 01 02
    "00026331"  # client id "c1"
    "22"  # will property length 34
    "1800000005"  # Will Delay Interval 5
    "0101"  # Payload Format Indicator 1
    "020000003c"  # Message Expiry Interval 60
    "03000474657874"  # Content Type "text"
    "08000172"  # Response Topic "r"
    "090001aa"  # Correlation Data aa
    "260001610001" "62"  # User Property ("a", "b")
    "000177"  # will topic "w"
    "00026279"  # will payload "by"
    "000175"  # user name "u"
    "000170"  # password "p"
)  # fmt: skip

CONNECT_5 = Connect(
    "c1",
    protocol_level=5,
    clean_start=True,
    keep_alive=60,
    username="u",
    password=b"p",
    will=Will(
        "w",
        b"by",
        qos=1,
        retain=True,
        properties={
            P.WILL_DELAY_INTERVAL: 5,
            P.PAYLOAD_FORMAT_INDICATOR: 1,
            P.MESSAGE_EXPIRY_INTERVAL: 60,
            P.CONTENT_TYPE: "text",
            P.RESPONSE_TOPIC: "r",
            P.CORRELATION_DATA: b"\xaa",
            P.USER_PROPERTY: [("a", "b")],
        },
    ),
    properties={
        P.SESSION_EXPIRY_INTERVAL: 3600,
        P.RECEIVE_MAXIMUM: 20,
        P.MAXIMUM_PACKET_SIZE: 4096,
        P.TOPIC_ALIAS_MAXIMUM: 10,
        P.REQUEST_RESPONSE_INFORMATION: 1,
        P.REQUEST_PROBLEM_INFORMATION: 0,
        P.USER_PROPERTY: [("k", "v")],
        P.AUTHENTICATION_METHOD: "JWT",
        P.AUTHENTICATION_DATA: b"\x01\x02",
    },
)


def test_connect_5_length_counted() -> None:
    data = bytes.fromhex(CONNECT_5_HEX)
    assert data[1] == len(data) - 2


def test_connect_5_decode() -> None:
    decoder = Decoder()
    decoder.feed(bytes.fromhex(CONNECT_5_HEX))
    assert decoder.next_packet() == CONNECT_5


def test_connect_5_encode() -> None:
    assert encode(CONNECT_5, 5).hex() == CONNECT_5_HEX


# Short packets. The second uses the PUBLISH variable header of MQTT 5.0
# figure 3-9 (topic "a/b", Packet Identifier 10, no properties).
SHORT_VECTORS: list[tuple[int, str, Packet]] = [
    (4, "30070003612f626869", Publish("a/b", b"hi")),
    (5, "320a0003612f62000a006869", Publish("a/b", b"hi", 1, packet_id=10)),
    (4, "3d070003612f620001", Publish("a/b", b"", 2, True, True, 1)),
    (4, "c000", Pingreq()),
]


@pytest.mark.parametrize(("level", "encoded", "packet"), SHORT_VECTORS)
def test_short_vector_decode(level: int, encoded: str, packet: Packet) -> None:
    decoder = Decoder(protocol_level=level)
    decoder.feed(bytes.fromhex(encoded))
    assert decoder.next_packet() == packet


@pytest.mark.parametrize(("level", "encoded", "packet"), SHORT_VECTORS)
def test_short_vector_encode(level: int, encoded: str, packet: Packet) -> None:
    assert encode(packet, level).hex() == encoded


def test_publish_nonminimal_length_3_1_1() -> None:
    # Remaining Length 7 written in two bytes (87 00), which 3.1.1 allows;
    # the packets after it must still be found at the right offset.
    data = bytes.fromhex("3087000003612f626869") + bytes.fromhex("c000") * 200
    decoder = Decoder(protocol_level=4)
    decoder.feed(data)
    assert decoder.next_packet() == Publish("a/b", b"hi")
    assert decoder.next_packet() == Pingreq()
