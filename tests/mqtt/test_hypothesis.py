"""Properties over generated packets and generated garbage."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqttauth.mqtt.codec import Decoder, decode_properties, encode, encode_properties
from mqttauth.mqtt.constants import PacketType
from mqttauth.mqtt.errors import MQTTError
from mqttauth.mqtt.packets import Connect, Packet

from .strategies import packets, properties_for

LEVELS = st.sampled_from([4, 5])
DECODER_LEVELS = st.sampled_from([None, 4, 5])

# The machine is shared, so a slow example is not a failure.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_all(data: bytes, level: int | None) -> list[Packet]:
    decoder = Decoder(protocol_level=level)
    decoder.feed(data)
    decoded = []
    while (packet := decoder.next_packet()) is not None:
        decoded.append(packet)
    return decoded


def decode_garbage(data: bytes, level: int | None, chunk: int) -> None:
    """Decode ``data`` in ``chunk``-byte pieces; let only MQTTError out."""
    decoder = Decoder(protocol_level=level)
    try:
        for offset in range(0, len(data), chunk):
            decoder.feed(data[offset : offset + chunk])
            while decoder.next_packet() is not None:
                pass
    except MQTTError:
        pass


@relaxed
@given(st.data(), LEVELS)
def test_packet_roundtrip(data: st.DataObject, level: int) -> None:
    packet = data.draw(packets(level))
    assert decode_all(encode(packet, level), level) == [packet]


@relaxed
@given(st.data(), LEVELS)
def test_connect_roundtrip_server_side(data: st.DataObject, level: int) -> None:
    packet = data.draw(packets(level).filter(lambda p: isinstance(p, Connect)))
    assert decode_all(encode(packet, level), None) == [packet]


@relaxed
@given(st.data(), LEVELS, st.lists(st.integers(1, 50), min_size=1))
def test_stream_split_anywhere(
    data: st.DataObject, level: int, sizes: list[int]
) -> None:
    stream_packets = data.draw(st.lists(packets(level), min_size=1, max_size=6))
    stream = b"".join(encode(packet, level) for packet in stream_packets)
    decoder = Decoder(protocol_level=level)
    decoded = []
    offset = 0
    index = 0
    while offset < len(stream):
        size = sizes[index % len(sizes)]
        decoder.feed(stream[offset : offset + size])
        offset += size
        index += 1
        while (packet := decoder.next_packet()) is not None:
            decoded.append(packet)
    assert decoded == stream_packets


@relaxed
@given(
    st.sampled_from(
        [*range(1, 16), 0]  # every packet type value, and the Will Properties
    ).flatmap(properties_for)
)
def test_properties_roundtrip(properties: dict[int, object]) -> None:
    assert decode_properties(encode_properties(properties)) == properties


@relaxed
@given(st.binary(max_size=300), DECODER_LEVELS, st.integers(1, 64))
def test_random_bytes_raise_mqtt_errors(
    data: bytes, level: int | None, chunk: int
) -> None:
    decode_garbage(data, level, chunk)


@relaxed
@given(st.sampled_from(range(16)), st.binary(max_size=64), LEVELS)
def test_random_body_raise_mqtt_errors(first: int, body: bytes, level: int) -> None:
    # A valid fixed header of each type, so the body decoders see garbage.
    for flags in range(16):
        header = bytes(((first << 4) | flags, len(body)))
        decode_garbage(header + body, level, len(body) + 2)


@relaxed
@given(st.binary(max_size=64))
def test_random_properties_raise_mqtt_errors(data: bytes) -> None:
    try:
        decode_properties(data)
    except MQTTError:
        pass


@st.composite
def mutations(draw: st.DrawFn, level: int) -> bytes:
    packet = draw(packets(level))
    data = bytearray(encode(packet, level))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut", "set"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data.insert(position, draw(st.integers(0, 255)))
        elif action == "delete" and data:
            del data[position]
        elif action == "cut":
            del data[position:]
    return bytes(data)


@relaxed
@given(st.data(), LEVELS, st.integers(1, 16))
def test_mutated_packets_raise_mqtt_errors(
    data: st.DataObject, level: int, chunk: int
) -> None:
    mutated = data.draw(mutations(level))
    decode_garbage(mutated, level, chunk)
    decode_garbage(mutated, None, chunk)


@relaxed
@given(st.data(), LEVELS)
def test_reencode_decoded_mutation(data: st.DataObject, level: int) -> None:
    # Whatever a mutated packet decodes to must encode to bytes that decode
    # to the same packet: the decoder accepts only what it can represent.
    mutated = data.draw(mutations(level))
    try:
        decoded = decode_all(mutated, level)
    except MQTTError:
        return
    for packet in decoded:
        if packet.packet_type == PacketType.CONNECT:
            continue
        assert decode_all(encode(packet, level), level) == [packet]
