import pytest

from mqttauth.mqtt.codec import Decoder, encode, encode_properties, encode_publish
from mqttauth.mqtt.packets import (
    Auth,
    Connect,
    Packet,
    Puback,
    Publish,
    Subscribe,
    Unsubscribe,
    Will,
)

from .samples import SAMPLES_3_1_1, SAMPLES_5_0


def decode_all(data: bytes, level: int | None) -> list[Packet]:
    decoder = Decoder(protocol_level=level)
    decoder.feed(data)
    packets = []
    while (packet := decoder.next_packet()) is not None:
        packets.append(packet)
    return packets


@pytest.mark.parametrize("packet", SAMPLES_3_1_1, ids=repr)
def test_roundtrip_3_1_1(packet: Packet) -> None:
    assert decode_all(encode(packet, 4), 4) == [packet]


@pytest.mark.parametrize("packet", SAMPLES_5_0, ids=repr)
def test_roundtrip_5_0(packet: Packet) -> None:
    assert decode_all(encode(packet, 5), 5) == [packet]


@pytest.mark.parametrize("level", [4, 5])
def test_connect_sets_decoder_level(level: int) -> None:
    decoder = Decoder()
    decoder.feed(encode(Connect("c", protocol_level=level), level))
    decoder.next_packet()
    assert decoder.protocol_level == level


@pytest.mark.parametrize("level", [4, 5])
def test_stream_of_every_type(level: int) -> None:
    samples = SAMPLES_3_1_1 if level == 4 else SAMPLES_5_0
    stream = b"".join(encode(packet, level) for packet in samples)
    assert decode_all(stream, level) == samples


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_encode_publish_matches_encode(level: int, qos: int) -> None:
    packet_id = 9 if qos else None
    packet = Publish("t/x", b"p" * 200, qos, True, qos > 0, packet_id)
    fast = encode_publish("t/x", b"p" * 200, qos, True, qos > 0, packet_id, b"", level)
    assert fast == encode(packet, level)


def test_encode_publish_carries_properties() -> None:
    properties = {0x23: 4, 0x26: [("k", "v")]}
    fast = encode_publish(
        "t", b"p", 1, False, False, 3, encode_properties(properties), 5
    )
    assert decode_all(fast, 5) == [
        Publish("t", b"p", 1, packet_id=3, properties=properties)
    ]


@pytest.mark.parametrize(
    ("qos", "dup", "packet_id"),
    [
        (1, False, None),
        (2, False, 0),
        (1, False, 65536),
        (0, True, None),
        (3, False, 1),
        (-1, False, 1),
    ],
)
def test_encode_publish_invalid(qos: int, dup: bool, packet_id: int | None) -> None:
    with pytest.raises(ValueError):
        encode_publish("t", b"", qos, False, dup, packet_id, b"", 4)


def test_encode_publish_long_topic() -> None:
    with pytest.raises(ValueError):
        encode_publish("t" * 65536, b"", 0, False, False, None, b"", 5)


@pytest.mark.parametrize("topic", ["a\x00", "\ud800"])
def test_encode_invalid_topic(topic: str) -> None:
    with pytest.raises(ValueError):
        encode(Publish(topic), 5)


@pytest.mark.parametrize(
    "packet",
    [
        Publish("t", qos=1),
        Subscribe(1, []),
        Unsubscribe(1, []),
        Puback(0),
        Connect("c", password=b"p"),
        Connect("c", will=Will("w", b"", qos=3)),
    ],
    ids=repr,
)
def test_encode_invalid_packet_3_1_1(packet: Packet) -> None:
    with pytest.raises(ValueError):
        encode(packet, 4)


def test_encode_auth_on_3_1_1() -> None:
    with pytest.raises(ValueError):
        encode(Auth(), 4)


def test_encode_not_a_packet() -> None:
    with pytest.raises(ValueError):
        encode("PUBLISH", 4)  # type: ignore[arg-type]
