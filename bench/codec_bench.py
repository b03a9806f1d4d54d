"""Measure PUBLISH decode and encode rates of the MQTT codec on one core.

Prints one JSON line per figure: the operation, QoS, protocol level, the
number of packets, and packets per second by wall clock and by this
process's CPU time (the CPU figure is steadier on a shared machine). Each
figure is the median of ``--repeats`` timed rounds.

Run: python3 bench/codec_bench.py [--packets N] [--repeats R]
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mqttauth.mqtt.codec import Decoder, encode, encode_publish  # noqa: E402
from mqttauth.mqtt.packets import Publish  # noqa: E402

TOPIC = "sensors/device-0017/temperature"
PAYLOAD = bytes(range(64))
#: Twisted (26.10) reads a TCP socket 64 KiB at a time (FileDescriptor.bufferSize).
CHUNK_SIZE = 65_536


def publish_stream(qos: int, level: int, count: int) -> list[bytes]:
    """Encode ``count`` PUBLISH packets and cut the stream into TCP reads."""
    packets = [
        encode_publish(
            TOPIC,
            PAYLOAD,
            qos,
            False,
            False,
            (i % 65_535) + 1 if qos else None,
            b"",
            level,
        )
        for i in range(count)
    ]
    stream = b"".join(packets)
    return [stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE)]


def time_round(work: Callable[[], int]) -> tuple[float, float, int]:
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    count = work()
    return time.perf_counter() - wall_start, time.process_time() - cpu_start, count


def decode_work(chunks: list[bytes], level: int) -> Callable[[], int]:
    def work() -> int:
        decoder = Decoder(protocol_level=level)
        feed = decoder.feed
        next_packet = decoder.next_packet
        count = 0
        for chunk in chunks:
            feed(chunk)
            while next_packet() is not None:
                count += 1
        return count

    return work


def encode_publish_work(qos: int, level: int, count: int) -> Callable[[], int]:
    def work() -> int:
        packet_id = 1 if qos else None
        for _ in range(count):
            encode_publish(TOPIC, PAYLOAD, qos, False, False, packet_id, b"", level)
        return count

    return work


def encode_work(qos: int, level: int, count: int) -> Callable[[], int]:
    packet = Publish(TOPIC, PAYLOAD, qos, packet_id=1 if qos else None)

    def work() -> int:
        for _ in range(count):
            encode(packet, level)
        return count

    return work


def report(
    name: str, qos: int, level: int, work: Callable[[], int], repeats: int
) -> None:
    wall_rates = []
    cpu_rates = []
    count = 0
    for _ in range(repeats):
        wall, cpu, count = time_round(work)
        wall_rates.append(count / wall)
        cpu_rates.append(count / cpu if cpu > 0 else float("nan"))
    print(
        json.dumps(
            {
                "benchmark": name,
                "qos": qos,
                "protocol_level": level,
                "payload_bytes": len(PAYLOAD),
                "packets": count,
                "packets_per_second": round(statistics.median(wall_rates)),
                "cpu_packets_per_second": round(statistics.median(cpu_rates)),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packets", type=int, default=200_000, help="packets per round"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed rounds per figure"
    )
    arguments = parser.parse_args()
    count = arguments.packets
    for level in (4, 5):
        for qos in (0, 1):
            chunks = publish_stream(qos, level, count)
            report("decode", qos, level, decode_work(chunks, level), arguments.repeats)
            report(
                "encode_publish",
                qos,
                level,
                encode_publish_work(qos, level, count),
                arguments.repeats,
            )
            report(
                "encode", qos, level, encode_work(qos, level, count), arguments.repeats
            )


if __name__ == "__main__":
    main()
