"""The incremental decoder: splits, buffering and the packet size limit."""

import random

import pytest

from mqttauth.mqtt.codec import MAX_PACKET_SIZE_LIMIT, Decoder, encode
from mqttauth.mqtt.errors import PacketTooLargeError
from mqttauth.mqtt.packets import Connect, Packet, Pingreq, Publish

from .samples import SAMPLES_3_1_1, SAMPLES_5_0


def drain(decoder: Decoder) -> list[Packet]:
    packets = []
    while (packet := decoder.next_packet()) is not None:
        packets.append(packet)
    return packets


def stream_for(level: int) -> tuple[bytes, list[Packet]]:
    connect = Connect("client", protocol_level=level)
    samples = SAMPLES_3_1_1 if level == 4 else SAMPLES_5_0
    packets = [connect, *samples]
    return b"".join(encode(packet, level) for packet in packets), packets


@pytest.mark.parametrize("level", [4, 5])
def test_stream_all_at_once(level: int) -> None:
    data, packets = stream_for(level)
    decoder = Decoder()
    decoder.feed(data)
    assert drain(decoder) == packets


@pytest.mark.parametrize("level", [4, 5])
def test_stream_byte_by_byte(level: int) -> None:
    data, packets = stream_for(level)
    decoder = Decoder()
    decoded = []
    for index in range(len(data)):
        decoder.feed(data[index : index + 1])
        decoded.extend(drain(decoder))
    assert decoded == packets


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("seed", range(5))
def test_stream_random_splits(level: int, seed: int) -> None:
    data, packets = stream_for(level)
    chooser = random.Random(seed)
    decoder = Decoder()
    decoded = []
    offset = 0
    while offset < len(data):
        size = chooser.randint(1, 40)
        decoder.feed(data[offset : offset + size])
        offset += size
        decoded.extend(drain(decoder))
    assert decoded == packets


def test_feed_without_pull_keeps_order() -> None:
    data, packets = stream_for(5)
    decoder = Decoder()
    for index in range(0, len(data), 7):
        decoder.feed(data[index : index + 7])
    assert drain(decoder) == packets


def test_feed_accepts_bytearray_and_memoryview() -> None:
    data = encode(Publish("t", b"x", 1, packet_id=4), 4)
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytearray(data[:3]))
    decoder.feed(memoryview(data)[3:])
    assert decoder.next_packet() == Publish("t", b"x", 1, packet_id=4)


def test_feed_empty_chunk() -> None:
    decoder = Decoder(protocol_level=4)
    decoder.feed(b"")
    assert decoder.next_packet() is None


def test_partial_packet_waits() -> None:
    data = encode(Publish("t", b"payload"), 4)
    decoder = Decoder(protocol_level=4)
    decoder.feed(data[:-1])
    assert decoder.next_packet() is None


def test_payload_is_bytes() -> None:
    decoder = Decoder(protocol_level=4)
    decoder.feed(bytearray(encode(Publish("t", b"payload"), 4)))
    packet = decoder.next_packet()
    assert isinstance(packet, Publish)
    assert type(packet.payload) is bytes


def test_limit_default() -> None:
    assert Decoder().max_packet_size == MAX_PACKET_SIZE_LIMIT == 268_435_460


def test_limit_checked_before_body() -> None:
    decoder = Decoder(max_packet_size=1024, protocol_level=5)
    # The header announces 1,023 body bytes, so the packet has 1,026 bytes.
    # Only the header is sent.
    decoder.feed(bytes.fromhex("30ff07"))
    with pytest.raises(PacketTooLargeError):
        decoder.next_packet()


@pytest.mark.parametrize("size", [20, 200, 20_000])
def test_limit_counts_fixed_header(size: int) -> None:
    packet = encode(Publish("t", b"x" * size), 4)
    decoder = Decoder(max_packet_size=len(packet) - 1, protocol_level=4)
    decoder.feed(packet)
    with pytest.raises(PacketTooLargeError):
        decoder.next_packet()


@pytest.mark.parametrize("size", [20, 200, 20_000])
def test_limit_allows_exact_size(size: int) -> None:
    packet = encode(Publish("t", b"x" * size), 4)
    decoder = Decoder(max_packet_size=len(packet), protocol_level=4)
    decoder.feed(packet)
    assert decoder.next_packet() == Publish("t", b"x" * size)


def test_limit_writable() -> None:
    decoder = Decoder()
    decoder.feed(encode(Connect("c"), 5))
    decoder.next_packet()
    decoder.max_packet_size = 10
    decoder.feed(encode(Publish("topic", b"x" * 10), 5))
    with pytest.raises(PacketTooLargeError):
        decoder.next_packet()


def test_level_writable() -> None:
    decoder = Decoder()
    decoder.protocol_level = 4
    decoder.feed(bytes.fromhex("c000"))
    assert decoder.next_packet() == Pingreq()


def test_second_connect_keeps_level() -> None:
    decoder = Decoder()
    decoder.feed(encode(Connect("a", protocol_level=4), 4))
    decoder.feed(encode(Connect("b"), 5))
    second = drain(decoder)[1]
    assert second == Connect("b")
    assert decoder.protocol_level == 4


def count_merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    merge = Decoder._merge_pending

    def counting_merge(self: Decoder) -> None:
        calls.append(1)
        merge(self)

    monkeypatch.setattr(Decoder, "_merge_pending", counting_merge)
    return calls


def test_large_packet_joined_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # One 100 kB packet in 1-byte chunks: the chunks wait in a list and are
    # joined when the packet is complete, plus once per header byte.
    calls = count_merges(monkeypatch)
    data = encode(Publish("t", b"x" * 100_000), 4)
    decoder = Decoder(protocol_level=4)
    for index in range(len(data)):
        decoder.feed(data[index : index + 1])
        packet = decoder.next_packet()
    assert packet == Publish("t", b"x" * 100_000)
    assert len(calls) <= 5


def test_many_packets_no_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many small packets in one chunk are sliced from the chunk in place.
    calls = count_merges(monkeypatch)
    packet = encode(Publish("t", b"x" * 10, 1, packet_id=1), 4)
    decoder = Decoder(protocol_level=4)
    decoder.feed(packet * 10_000)
    assert len(drain(decoder)) == 10_000
    assert calls == []
